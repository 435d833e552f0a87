"""The server's hot paths keep their meaning: peaks in blocks, reads beside a writer, key cache."""

from __future__ import annotations

import asyncio
import math
import wave
from pathlib import Path

import numpy as np
from sqlalchemy import select, text

from pipecat_roark.server import schema
from pipecat_roark.server.database import open_database, read_engine
from pipecat_roark.server.peaks import MAX_BINS, compute_peaks
from pipecat_roark.server.state import KnownKeys


def _reference_peaks(samples: np.ndarray, bin_frames: int) -> list[list[int]]:
    """Bin by bin, the slow obvious way."""
    lanes = []
    for channel in range(samples.shape[1]):
        column = np.abs(samples[:, channel].astype(np.int32))
        lanes.append(
            [
                min(int(column[start : start + bin_frames].max()) * 255 // 32767, 255)
                for start in range(0, len(column), bin_frames)
            ]
        )
    return lanes


def test_peaks_read_in_blocks_match_bin_by_bin_peaks(tmp_path: Path) -> None:
    # Long enough for several read blocks, a bin width that does not divide a block, a
    # partial last bin, and the most negative sample (whose absolute value overflows int16).
    rate = 16000
    frames = 3_000_001
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal((frames, 2)) * 4000).clip(-32768, 32767).astype("<i2")
    samples[123_457, 0] = -32768
    samples[frames - 1, 1] = 32767
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())

    peaks = compute_peaks(path)

    bin_frames = max(rate // 100, math.ceil(frames / MAX_BINS))
    expected = _reference_peaks(samples, bin_frames)
    assert [lane["peaks"] for lane in peaks["lanes"]] == expected
    assert max(expected[0]) == 255
    assert expected[1][-1] == 255


async def test_a_read_does_not_wait_for_a_writer_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    async with open_database(url) as engine:
        reader = read_engine(engine)
        async with engine.begin() as writer:
            await writer.execute(
                text("INSERT INTO projects (id, name, created_at) VALUES ('p1', 'one', :now)"),
                {"now": "2026-01-01 00:00:00"},
            )

            async def read() -> list[str]:
                async with reader.connect() as connection:
                    rows = await connection.execute(select(schema.projects.c.name))
                    return [row.name for row in rows]

            # The writer holds SQLite's write lock; a read that asked for it would wait
            # out the 30 s busy timeout. The reader sees what was committed: nothing yet.
            assert await asyncio.wait_for(read(), timeout=10) == []
        assert await asyncio.wait_for(read(), timeout=10) == ["one"]


def test_known_keys_forget_after_their_time_and_stay_bounded() -> None:
    keys = KnownKeys(seconds=60, size=2)
    keys.put("hash-a", "project-a")
    assert keys.get("hash-a") == "project-a"
    assert keys.get("hash-unknown") is None
    keys.put("hash-b", "project-b")
    keys.put("hash-c", "project-c")  # full: the old entries go
    assert keys.get("hash-a") is None
    assert keys.get("hash-c") == "project-c"

    expired = KnownKeys(seconds=-1)
    expired.put("hash-a", "project-a")
    assert expired.get("hash-a") is None
