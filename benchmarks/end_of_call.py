"""Benchmark 3: how long after the EndFrame leaves the output transport the backend has the
complete call (every chunk, then call-ended), for 1-minute and 60-minute calls.

The worker notes ``time.monotonic()`` as the EndFrame leaves the output transport; the
backend, in the parent process on 127.0.0.1, notes it as call-ended has been received. Both
read the machine's one monotonic clock. Every simulated minute and before the EndFrame the
worker waits until the pipeline, the observer and its uploads have caught up, so the delay
is the observer's end of call, not a backlog that running faster than real time left.

``python -m benchmarks.end_of_call [--smoke] [--results DIR]``
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import cli
from benchmarks.backend import BenchBackend, running
from benchmarks.report import Report, percentile, table
from benchmarks.runner import lines, run_worker
from benchmarks.worker import Spec

__all__ = ["main"]

NAME = "end_of_call"
_GOAL_MS = 250.0


@dataclass(frozen=True)
class Batch:
    """``calls`` calls of ``minutes`` minutes with one observer, in one worker."""

    variant: str
    minutes: float
    calls: int
    speed: float


@dataclass(frozen=True)
class Size:
    batches: tuple[Batch, ...]
    parallel: bool = False


FULL = Size(
    (
        Batch("ours", 1, 16, 30.0),
        Batch("ours", 60, 1, 60.0),
        Batch("roark-0.2.5", 1, 8, 30.0),
    )
)
SMOKE = Size((Batch("ours", 0.05, 2, 60.0), Batch("ours", 0.1, 1, 60.0)), parallel=True)
_LABELS = {"ours": "this project", "roark-0.2.5": "pipecat-roark 0.2.5"}


@dataclass
class Outcome:
    batch: Batch
    delays: list[float] = field(default_factory=list)
    incomplete: int = 0
    lost: int = 0
    spooled: int = 0


async def _run_batch(
    batch: Batch, python: str, backend: BenchBackend, workdir: Path, versions: dict[str, str]
) -> Outcome:
    tag = f"{batch.variant}-{batch.minutes:g}min"
    spec = Spec(
        variant=batch.variant,
        base_url=backend.url,
        calls=batch.calls,
        minutes=batch.minutes,
        speed=batch.speed,
        spool_dir=str(workdir / tag),
        call_prefix=f"end-{tag}",
        catch_up=True,
    )
    budget = 120 + 4 * (batch.minutes * batch.calls) * 60 / batch.speed
    output = await run_worker(python, spec, timeout=budget)
    versions["Pipecat"] = output.pipecat
    versions[_LABELS[batch.variant]] = output.observer or "?"
    outcome = Outcome(batch)
    # call-ended may still be on its way when the worker has finished with the call.
    await asyncio.sleep(0.5)
    for call in output.calls:
        outcome.spooled += (call.get("delivery") or {}).get("spooled", 0)
        receipt = backend.receipt(call["call_id"])
        if receipt.ended_at is None:
            outcome.lost += 1
            continue
        outcome.delays.append(receipt.ended_at - call["end_left_at"])
        outcome.incomplete += not receipt.complete
    return outcome


async def _run(size: Size) -> tuple[list[Outcome], dict[str, str]]:
    line = lines()[0]
    versions: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="roark-bench-") as workdir:
        async with running() as backend:
            jobs = [
                _run_batch(batch, python, backend, Path(workdir), versions)
                for batch in size.batches
                if (python := line.python_for(batch.variant)) is not None
            ]
            if size.parallel:
                return list(await asyncio.gather(*jobs)), versions
            return [await job for job in jobs], versions


def _row(outcome: Outcome) -> list[str]:
    delays_ms = [delay * 1e3 for delay in outcome.delays]
    batch = outcome.batch
    cells = [
        _LABELS[batch.variant],
        f"{batch.minutes:g} min",
        str(len(delays_ms)),
    ]
    if delays_ms:
        cells += [
            f"{percentile(delays_ms, 50):.0f}",
            f"{percentile(delays_ms, 95):.0f}",
            f"{max(delays_ms):.0f}",
        ]
    else:
        cells += ["—", "—", "—"]
    problems = []
    if outcome.lost:
        problems.append(f"{outcome.lost} never received")
    if outcome.incomplete:
        problems.append(f"{outcome.incomplete} before their last chunk")
    if outcome.spooled:
        problems.append(f"{outcome.spooled} requests spooled")
    return [*cells, "; ".join(problems) or "all complete"]


def _goals(outcomes: list[Outcome]) -> str:
    ours = [o for o in outcomes if o.batch.variant == "ours" and o.delays]
    if not ours:
        return ""
    p95 = {o.batch.minutes: percentile([d * 1e3 for d in o.delays], 95) for o in ours}
    worst = max(p95.values())
    spread = max(p95.values()) - min(p95.values())
    by_length = ", ".join(f"{minutes:g} min: {value:.0f} ms" for minutes, value in p95.items())
    return (
        f"- This project's p95: {by_length} (goal < {_GOAL_MS:.0f} ms: "
        f"{'met' if worst < _GOAL_MS else 'missed'}); the longest call's p95 differs from the "
        f"shortest's by {spread:.0f} ms."
    )


def _report(outcomes: list[Outcome], versions: dict[str, str]) -> Report:
    report = Report(
        NAME,
        "End-of-call delay",
        "Time from the EndFrame leaving the output transport to the backend (127.0.0.1) having "
        "received call-ended, for the synthetic call of `observer_cost` at accelerated pace. "
        "*Complete*: every chunk of the recording arrived before call-ended.",
        versions=versions,
    )
    report.add(
        table(
            ["observer", "call", "calls", "p50 ms", "p95 ms", "max ms", "complete"],
            [_row(outcome) for outcome in outcomes],
        ),
        _goals(outcomes),
    )
    return report


async def _measure(options: cli.Options) -> Report:
    return _report(*await _run(options.size(FULL, SMOKE)))


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
