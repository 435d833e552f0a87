"""Benchmark 2: the observer's memory over a 60-minute call at accelerated pace.

One worker plays an hour-long synthetic call with this project's observer and, at every
simulated minute, once the pipeline and the observers have caught up (running faster than
real time must not leave a backlog in the queues that would pass for growth), reads the
process's RSS, peak RSS and the bytes its allocators hold (``benchmarks.memory``).
``tracemalloc`` makes every allocation several times dearer, so a second, shorter call traces
a window of minutes and names the lines whose memory grew.

``python -m benchmarks.long_call_memory [--smoke] [--results DIR]``
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import cli
from benchmarks.backend import CallReceipt, running
from benchmarks.report import Report, table
from benchmarks.runner import lines, run_worker
from benchmarks.worker import Spec

__all__ = ["main"]

NAME = "long_call_memory"
_MB = 1e6
_GOAL_MB = 10.0


@dataclass(frozen=True)
class Size:
    minutes: int
    speed: float
    settled_minute: int
    """Growth is counted from this minute on: the first minutes fill buffers and caches."""
    traced_minutes: int
    trace_from: int
    parallel: bool = False


# The traced call runs beside the hour: memory is read at quiescent points, so sharing
# the machine changes how long they take, not what they read.
FULL = Size(minutes=60, speed=60.0, settled_minute=5, traced_minutes=7, trace_from=2, parallel=True)
SMOKE = Size(minutes=1, speed=60.0, settled_minute=0, traced_minutes=2, trace_from=0, parallel=True)


async def _run(size: Size) -> tuple[dict[str, Any], dict[str, Any], dict[str, str], str]:
    line = lines()[0]
    python = line.ours or ""
    with tempfile.TemporaryDirectory(prefix="roark-bench-") as workdir:
        async with running() as backend:

            def spec(tag: str, minutes: int, **kwargs: Any) -> Spec:
                return Spec(
                    variant="ours",
                    base_url=backend.url,
                    minutes=minutes,
                    speed=size.speed,
                    memory=True,
                    catch_up=True,
                    spool_dir=str(Path(workdir) / tag),
                    call_prefix=f"memory-{tag}",
                    **kwargs,
                )

            budget = 120 + 6 * size.minutes * 60 / size.speed
            hour = run_worker(python, spec("hour", size.minutes), timeout=budget)
            traced = run_worker(
                python,
                spec(
                    "traced",
                    size.traced_minutes,
                    trace_from=size.trace_from,
                    trace_to=size.traced_minutes,
                ),
                timeout=budget,
            )
            if size.parallel:
                hour_out, traced_out = await asyncio.gather(hour, traced)
            else:
                hour_out = await hour
                traced_out = await traced
            call = hour_out.calls[0]
            delivered = _delivered(call, backend.receipt(call["call_id"]))
    versions = {"Pipecat": hour_out.pipecat, "this project": hour_out.observer or "?"}
    return call, traced_out.calls[0], versions, delivered


def _delivered(call: dict[str, Any], receipt: CallReceipt) -> str:
    stats = call.get("delivery") or {}
    return (
        f"The backend received {receipt.chunks} chunks ({receipt.chunk_bytes / _MB:.0f} MB) "
        f"during the call, then call-ended{'' if receipt.complete else ' (incomplete)'}; "
        f"requests sent {stats.get('sent', '?')}, spooled {stats.get('spooled', '?')}, "
        f"dropped {stats.get('dropped', '?')}."
    )


def _series(call: dict[str, Any]) -> str:
    rows = [
        [
            str(sample["minute"]),
            f"{sample['rss'] / _MB:.1f}",
            f"{sample['peak_rss'] / _MB:.1f}",
            f"{sample['heap'] / _MB:.1f}",
        ]
        for sample in call["memory"]["samples"]
    ]
    return table(["minute", "RSS MB", "peak RSS MB", "heap MB"], rows)


def _growth(call: dict[str, Any], size: Size) -> tuple[float, float, float]:
    samples = {s["minute"]: s for s in call["memory"]["samples"]}
    first, last = samples[size.settled_minute], samples[max(samples)]
    return (
        (last["rss"] - first["rss"]) / _MB,
        (last["peak_rss"] - first["peak_rss"]) / _MB,
        (last["heap"] - first["heap"]) / _MB,
    )


def _traced(call: dict[str, Any], size: Size) -> str:
    traced = [s for s in call["memory"]["samples"] if s["traced"] is not None]
    if len(traced) < 2:
        return "The traced call was too short to show growth."
    start, end = traced[0], traced[-1]
    minutes = end["minute"] - start["minute"]
    per_minute = (end["traced"] - start["traced"]) / max(1, minutes)
    rows = [[s["minute"], f"{s['traced'] / 1e3:.0f}"] for s in traced]
    sites = [
        [f"`{site['site']}`", f"{site['bytes'] / 1e3:.1f}", str(site["blocks"])]
        for site in call["memory"]["growth_sites"]
    ]
    return "\n\n".join(
        [
            f"### tracemalloc, minutes {start['minute']}-{end['minute']} of a "
            f"{size.traced_minutes}-minute call",
            table(["minute", "traced KB"], rows),
            f"Growth from minute {start['minute']} to {end['minute']}: "
            f"{per_minute / 1e3:.1f} KB per minute, **{per_minute * 60 / _MB:.1f} MB per hour** "
            "at that rate. Where it grew most:",
            table(["allocated at", "KB", "blocks"], sites) if sites else "(nothing grew)",
        ]
    )


def _report(
    hour: dict[str, Any],
    traced: dict[str, Any],
    versions: dict[str, str],
    delivered: str,
    size: Size,
) -> Report:
    rss, peak, heap = _growth(hour, size)
    verdict = "met" if max(rss, heap) < _GOAL_MB else "missed"
    report = Report(
        NAME,
        "Observer memory over a long call",
        f"A {size.minutes}-minute synthetic call (the one of `observer_cost`) with this "
        f"project's observer, at {size.speed:g}x real time, against a backend on 127.0.0.1. "
        "At every simulated minute, once the pipeline and the observer have caught up, the "
        "worker collects garbage and reads its RSS, its peak RSS and *heap*: the bytes "
        "Python's allocators hold for live objects (pymalloc blocks plus the C heap, where "
        "audio lives). The whole process is measured: Pipecat, the pipeline and the observer.",
        versions=versions,
    )
    report.add(
        f"## Growth from minute {size.settled_minute} to {size.minutes}",
        f"- RSS: **{rss:+.1f} MB**; peak RSS: {peak:+.1f} MB; heap: **{heap:+.1f} MB** "
        f"(goal: flat after the first minutes, < {_GOAL_MB:.0f} MB over the hour: {verdict}).",
        delivered,
        _traced(traced, size),
        "## Every minute",
        _series(hour),
    )
    return report


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    hour, traced, versions, delivered = await _run(size)
    return _report(hour, traced, versions, delivered, size)


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
