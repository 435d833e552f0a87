"""Waveform peaks of a stitched recording, computed once and kept beside it as JSON.

The dashboard draws its two lanes (user = left channel, bot = right) from these, so the
browser never decodes the WAV. The stitcher writes them whenever it writes the recording;
a recording stitched without them gets them on first request.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import wave
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from .blobs import BlobNotFound, BlobStore, call_prefix

__all__ = ["MAX_BINS", "compute_peaks", "ensure_peaks", "peaks_key", "save_peaks"]

MAX_BINS = 8000
"""Bins per lane at most: a long call gets wider bins, not a bigger file."""
_MIN_BIN_MS = 10
_BLOCK_FRAMES = 1 << 18
"""Frames read at a time, whatever the bin width: memory stays bounded for any call."""
_LANE_LABELS = {1: ("mixed",), 2: ("user", "bot")}


def peaks_key(call_id: str) -> str:
    return f"{call_prefix(call_id)}peaks.json"


def compute_peaks(path: Path) -> dict[str, Any]:
    """The largest absolute sample per bin and channel (0..255), read block by block."""
    with wave.open(str(path), "rb") as reader:
        rate = reader.getframerate()
        channels = reader.getnchannels()
        frames = reader.getnframes()
        if reader.getsampwidth() != 2:
            raise ValueError("peaks: only 16-bit PCM recordings are supported")
        bin_frames = max(rate * _MIN_BIN_MS // 1000, math.ceil(frames / MAX_BINS), 1)
        block_frames = bin_frames * max(1, _BLOCK_FRAMES // bin_frames)
        lanes: list[list[int]] = [[] for _ in range(channels)]
        while data := reader.readframes(block_frames):
            samples = np.frombuffer(data, dtype="<i2")
            count = len(samples) // channels
            block = samples[: count * channels].reshape(count, channels)
            whole = count // bin_frames * bin_frames
            highest = [_bin_peaks(block[:whole], bin_frames)]
            if whole < count:
                highest.append(_bin_peaks(block[whole:], count - whole))
            scaled = np.minimum(np.concatenate(highest) * 255 // 32767, 255)
            for channel in range(channels):
                lanes[channel].extend(scaled[:, channel].tolist())
    labels = _LANE_LABELS.get(channels, tuple(f"channel {i + 1}" for i in range(channels)))
    return {
        "version": 1,
        "sampleRate": rate,
        "channels": channels,
        "frames": frames,
        "durationMs": frames * 1000 // rate if rate else 0,
        "binFrames": bin_frames,
        "binMs": bin_frames * 1000 / rate if rate else 0,
        "lanes": [
            {"channel": index, "label": labels[index], "peaks": lane}
            for index, lane in enumerate(lanes)
        ],
    }


def _bin_peaks(block: np.ndarray, bin_frames: int) -> np.ndarray:
    """The largest absolute sample of each bin and channel: (frames, channels) -> (bins, channels).

    The frames must be whole bins. Each channel is made contiguous first, so the reductions
    run along memory rather than across the interleaved channels (many times faster).
    """
    frames, channels = block.shape
    if not frames:
        return np.zeros((0, channels), dtype=np.int32)
    lanes = np.ascontiguousarray(block.T).reshape(channels, frames // bin_frames, bin_frames)
    highest: np.ndarray = np.maximum(
        lanes.max(axis=2).astype(np.int32), -lanes.min(axis=2).astype(np.int32)
    )
    transposed: np.ndarray = highest.T
    return transposed


async def _one_piece(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def save_peaks(blobs: BlobStore, call_id: str, wav: Path) -> dict[str, Any] | None:
    """Compute and store the peaks of a recording; None (logged) if that fails.

    A failure here never fails the stitch: the peaks are computed again on first request.
    """
    try:
        peaks = await asyncio.to_thread(compute_peaks, wav)
        data = json.dumps(peaks, separators=(",", ":")).encode()
        await blobs.write_stream(peaks_key(call_id), _one_piece(data))
    except Exception as exc:
        logger.bind(call_id=call_id).warning("waveform peaks not stored: {!r}", exc)
        return None
    return peaks


async def _read_json(blobs: BlobStore, key: str) -> dict[str, Any]:
    parts: list[bytes] = []
    async with aclosing(blobs.read(key)) as pieces:
        async for piece in pieces:
            parts.append(piece)
    peaks: dict[str, Any] = json.loads(b"".join(parts))
    return peaks


async def ensure_peaks(blobs: BlobStore, call_id: str, recording_key: str) -> dict[str, Any]:
    """The stored peaks, or ones computed now from the recording (and stored)."""
    try:
        return await _read_json(blobs, peaks_key(call_id))
    except BlobNotFound:
        pass
    local = blobs.local_path(recording_key)
    if local is not None:
        if not local.is_file():
            raise BlobNotFound(recording_key)
        peaks = await save_peaks(blobs, call_id, local)
        return peaks if peaks is not None else await asyncio.to_thread(compute_peaks, local)
    with tempfile.TemporaryDirectory(prefix="roark-peaks-") as folder:
        path = Path(folder) / "recording.wav"
        with path.open("wb") as file:
            async with aclosing(blobs.read(recording_key)) as pieces:
                async for piece in pieces:
                    await asyncio.to_thread(file.write, piece)
        peaks = await save_peaks(blobs, call_id, path)
        return peaks if peaks is not None else await asyncio.to_thread(compute_peaks, path)
