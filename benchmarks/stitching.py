"""Benchmark 5: stitching a 60-minute stereo call: seconds of audio per second of CPU, memory.

A server state on SQLite + folder (``app.open_state``, in this process) ingests one call the
way the routes do (call-started, then per 256 KiB chunk the presign row, the blob and the
upload row, then call-ended), then the stitch job runs as a replica's worker runs it
(``stitcher.run_stitch_job``): list the chunks, write the WAV, store it, compute and store the
waveform peaks, record the result. Measured around the job: CPU time of the process (every
thread), wall time, and memory: the peak RSS during the job (the kernel's high-water mark,
reset before it) over the RSS before, and, in one more run, ``tracemalloc``'s peak.

The chunks are fresh in the page cache, as a call's chunks are when it has just ended.

``python -m benchmarks.stitching [--smoke] [--results DIR] [--set minutes=10]``
"""

from __future__ import annotations

import gc
import resource
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import cli
from benchmarks.report import Report, median, server_versions, spread, table

__all__ = ["main"]

NAME = "stitching"
RATE = 16000
CHANNELS = 2
CHUNK_BYTES = 256 * 1024
GOAL = 1000.0
_MB = 1024 * 1024


@dataclass(frozen=True)
class Size:
    minutes: float
    repeats: int


FULL = Size(minutes=60, repeats=3)
SMOKE = Size(minutes=0.5, repeats=1)


@dataclass
class Run:
    cpu: float
    wall: float
    rss_before: int
    rss_peak: int
    traced_peak: int | None = None


def _speech_block() -> bytes:
    """One chunk of speech-like stereo PCM (noise in syllable-rate bursts), reused."""
    import numpy as np

    rng = np.random.default_rng(7)
    frames = CHUNK_BYTES // (2 * CHANNELS)
    t = np.arange(frames) / RATE
    envelope = np.abs(np.sin(2 * np.pi * 3.5 * t)) ** 1.5
    voice = rng.standard_normal((frames, CHANNELS)) * envelope[:, None] * 6000
    return np.clip(voice, -32767, 32767).astype("<i2").tobytes()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _ingest(state: Any, minutes: float) -> tuple[str, int]:
    """One call of ``minutes`` minutes, stored as the ingest routes store it."""
    from pipecat_roark.server.auth import ensure_project
    from pipecat_roark.server.blobs import chunk_key
    from pipecat_roark.server.calls import (
        record_call_ended,
        record_call_started,
        record_chunk_requested,
        record_chunk_uploaded,
    )
    from pipecat_roark.wire import CallEnded, CallStarted

    async with state.engine.begin() as connection:
        project = await ensure_project(connection, "stitching")
    started = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)
    ended = started + timedelta(minutes=minutes)
    call_id = "stitch-60min"
    async with state.engine.begin() as connection:
        await record_call_started(
            connection,
            project,
            CallStarted(
                event="call-started",
                pipecatCallId=call_id,
                eventTimestamp=started.isoformat(),
                agentId="bench",
            ),
        )
    block = _speech_block()
    total = int(minutes * 60 * RATE) * CHANNELS * 2
    for index, offset in enumerate(range(0, total, CHUNK_BYTES)):
        data = block[: min(CHUNK_BYTES, total - offset)]
        async with state.engine.begin() as connection:
            call = await record_chunk_requested(connection, project, call_id, index, 900, 2.0)
        size = await state.blobs.write_stream(chunk_key(call.id, index), _one(data))
        async with state.engine.begin() as connection:
            await record_chunk_uploaded(connection, call.id, index, size)
    async with state.engine.begin() as connection:
        await record_call_ended(
            connection,
            project,
            CallEnded(
                event="call-ended",
                pipecatCallId=call_id,
                eventTimestamp=ended.isoformat(),
                callStartedAt=started.isoformat(),
                callEndedAt=ended.isoformat(),
                callEndedReason="client-disconnected",
                recordingSampleRate=RATE,
                recordingNumChannels=CHANNELS,
            ),
        )
    return call.id, total


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status: ``VmRSS`` (resident now) or
    ``VmHWM`` (its peak, which ``_reset_high_water`` resets; ``ru_maxrss`` cannot be)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_high_water() -> None:
    # Linux: "5" resets the peak RSS (VmHWM) to the current RSS.
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _stitch(state: Any, call_id: str, *, traced: bool) -> Run:
    """Ask for the call to be stitched again and run the job, as a worker would."""
    from sqlalchemy import update

    from pipecat_roark.server import schema
    from pipecat_roark.server.database import utcnow
    from pipecat_roark.server.jobs import claim_job, enqueue_stitch
    from pipecat_roark.server.stitcher import run_stitch_job

    async with state.engine.begin() as connection:
        # The same chunks would be recognised and skipped: forget the last stitch.
        await connection.execute(
            update(schema.calls).where(schema.calls.c.id == call_id).values(stitch_fingerprint=None)
        )
        await enqueue_stitch(connection, call_id, utcnow())
    async with state.begin() as connection:
        job = await claim_job(connection, state.replica_id, 600)
    if job is None or job.call_id != call_id:
        raise RuntimeError(f"the stitch job was not claimed: {job}")
    gc.collect()
    if traced:
        tracemalloc.start()
    _reset_high_water()
    rss_before, cpu_before, started = _status_bytes("VmRSS"), _cpu(), time.perf_counter()
    await run_stitch_job(state, job)
    peak = _status_bytes("VmHWM")
    run = Run(_cpu() - cpu_before, time.perf_counter() - started, rss_before, peak)
    if traced:
        run.traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return run


async def _check(state: Any, call_id: str, frames: int, stitches: int) -> None:
    from sqlalchemy import select

    from pipecat_roark.server import schema

    async with state.engine.connect() as connection:
        row = (
            await connection.execute(
                select(schema.calls.c.stitch_count, schema.calls.c.recording_duration_ms).where(
                    schema.calls.c.id == call_id
                )
            )
        ).one()
    expected_ms = frames * 1000 // RATE
    if row.stitch_count != stitches or row.recording_duration_ms != expected_ms:
        raise RuntimeError(f"the stitch did not complete: {row} (wanted {expected_ms} ms)")


async def _measure_runs(size: Size, workdir: Path) -> tuple[list[Run], Run, int]:
    from loguru import logger

    from pipecat_roark.server.app import open_state
    from pipecat_roark.server.settings import ServerSettings

    logger.disable("pipecat_roark")  # the server's own log lines are not the benchmark's
    settings = ServerSettings(data_dir=workdir / "data", run_workers=False)
    async with open_state(settings) as state:
        call_id, total = await _ingest(state, size.minutes)
        frames = total // (CHANNELS * 2)
        runs = []
        for number in range(size.repeats):
            runs.append(await _stitch(state, call_id, traced=False))
            await _check(state, call_id, frames, number + 1)
        traced = await _stitch(state, call_id, traced=True)
        await _check(state, call_id, frames, size.repeats + 1)
    return runs, traced, total


def _report(size: Size, runs: list[Run], traced: Run, total: int) -> Report:
    audio = total / (RATE * CHANNELS * 2)
    per_cpu = [audio / run.cpu for run in runs]
    per_wall = [audio / run.wall for run in runs]
    growth = [(run.rss_peak - run.rss_before) / _MB for run in runs]
    report = Report(
        NAME,
        "Stitching a long call",
        f"One {size.minutes:g}-minute 16 kHz stereo call ({total / _MB:.0f} MB of PCM in "
        f"{-(-total // CHUNK_BYTES)} chunks of {CHUNK_BYTES // 1024} KiB) stored on SQLite + "
        "folder as the ingest routes store it, then stitched by the worker's own job "
        "(`stitcher.run_stitch_job`): the WAV written, stored, its waveform peaks computed "
        "and stored, the result recorded. CPU is the process's (every thread) over the job; "
        f"*RSS growth* is the job's peak RSS over the RSS before it. {size.repeats} runs, "
        "median (min-max); `tracemalloc` in one more run (it slows allocations, so its run "
        "is not timed).",
        versions=server_versions(numpy=metadata.version("numpy")),
    )
    report.add(
        table(
            ["figure", "value"],
            [
                ["audio per CPU second (x real time)", f"**{spread(per_cpu, digits=0)}**"],
                ["audio per wall second (x real time)", spread(per_wall, digits=0)],
                ["CPU s per stitch", spread([run.cpu for run in runs], digits=2)],
                ["wall s per stitch", spread([run.wall for run in runs], digits=2)],
                ["call size MB", f"{total / _MB:.0f}"],
                ["peak RSS growth MB", spread(growth, digits=1)],
                ["tracemalloc peak MB", f"{(traced.traced_peak or 0) / _MB:.1f}"],
            ],
        ),
        f"- Goal: ≥ {GOAL:.0f}x real time per CPU second: "
        f"{'met' if median(per_cpu) >= GOAL else 'missed'} ({median(per_cpu):.0f}x); memory "
        f"bounded: the peak RSS grows by {max(growth):.1f} MB for a {total / _MB:.0f} MB call "
        f"({max(growth) / (total / _MB) * 100:.1f}% of it).",
    )
    return report


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    with tempfile.TemporaryDirectory(prefix="roark-stitch-bench-") as workdir:
        runs, traced, total = await _measure_runs(size, Path(workdir))
    return _report(size, runs, traced, total)


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
