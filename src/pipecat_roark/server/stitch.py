"""Join a call's PCM chunks into one WAV, chunk by chunk, never the whole call in memory.

``plan_stitch`` is pure: from the chunks present (index -> size) and the indexes the
client asked to upload, it decides what goes where, which chunks are missing, and how much
silence stands in for each. ``write_wav`` follows a plan, streaming blobs into the file.
"""

from __future__ import annotations

import asyncio
import wave
from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blobs import BlobStore

__all__ = ["SAMPLE_WIDTH", "Gap", "Part", "StitchPlan", "plan_stitch", "write_wav"]

SAMPLE_WIDTH = 2  # 16-bit PCM, as the protocol fixes
_SILENCE_PIECE = 64 * 1024


@dataclass(frozen=True)
class Part:
    """One stretch of the recording: a chunk's bytes (``key``) or silence (``key`` None)."""

    chunk_index: int
    key: str | None
    nbytes: int


@dataclass(frozen=True)
class Gap:
    """A missing chunk; ``silence_bytes`` is None when its length cannot be known."""

    chunk_index: int
    silence_bytes: int | None


@dataclass(frozen=True)
class StitchPlan:
    parts: list[Part]
    gaps: list[Gap]
    issues: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(part.nbytes for part in self.parts)


def plan_stitch(
    present: Mapping[int, tuple[str, int]],
    requested: Iterable[int],
    *,
    frame_bytes: int,
    max_chunk_bytes: int,
) -> StitchPlan:
    """Order the chunks; fill a missing one with silence the size of a full chunk.

    Every chunk but the last is a full buffer, so a missing chunk before the last one is as
    long as the full chunks present (when they agree); the last chunk's length is unknown.
    Bytes past the last whole frame of a chunk are dropped and reported.
    """
    issues: list[dict[str, Any]] = []
    usable: dict[int, tuple[str, int]] = {}
    for index, (key, size) in present.items():
        if size > max_chunk_bytes:
            issues.append({"chunkIndex": index, "problem": "too_large", "bytes": size})
            continue
        usable[index] = (key, size)

    indexes = set(present) | set(requested)
    if not indexes:
        return StitchPlan(parts=[], gaps=[], issues=issues)
    last = max(indexes)
    full_sizes = Counter(size for index, (_, size) in usable.items() if index != last)
    full_size = _whole_frames(next(iter(full_sizes)), frame_bytes) if len(full_sizes) == 1 else None

    parts: list[Part] = []
    gaps: list[Gap] = []
    for index in range(last + 1):
        if index in usable:
            key, size = usable[index]
            whole = _whole_frames(size, frame_bytes)
            if whole != size:
                issues.append(
                    {"chunkIndex": index, "problem": "partial_frame", "droppedBytes": size - whole}
                )
            parts.append(Part(index, key, whole))
            continue
        silence = full_size if index != last else None
        gaps.append(Gap(index, silence))
        if silence:
            parts.append(Part(index, None, silence))
    return StitchPlan(parts=parts, gaps=gaps, issues=issues)


def _whole_frames(size: int, frame_bytes: int) -> int:
    return size - size % frame_bytes


async def write_wav(
    plan: StitchPlan, blobs: BlobStore, *, sample_rate: int, channels: int, path: Path
) -> int:
    """Write the planned recording to ``path``; return the number of frames written."""
    writer = await asyncio.to_thread(wave.open, str(path), "wb")
    written = 0
    try:
        writer.setnchannels(channels)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(sample_rate)
        for part in plan.parts:
            written += await _write_part(writer, part, blobs)
    finally:
        await asyncio.to_thread(writer.close)
    return written // (channels * SAMPLE_WIDTH)


async def _write_part(writer: wave.Wave_write, part: Part, blobs: BlobStore) -> int:
    remaining = part.nbytes
    if part.key is None:
        while remaining:
            piece = bytes(min(remaining, _SILENCE_PIECE))
            await asyncio.to_thread(writer.writeframesraw, piece)
            remaining -= len(piece)
        return part.nbytes
    async with aclosing(blobs.read(part.key)) as pieces:
        async for piece in pieces:
            piece = piece[:remaining]
            await asyncio.to_thread(writer.writeframesraw, piece)
            remaining -= len(piece)
            if not remaining:
                break
    if remaining:
        # The blob shrank since it was listed; keep the timeline by padding with silence.
        await asyncio.to_thread(writer.writeframesraw, bytes(remaining))
    return part.nbytes
