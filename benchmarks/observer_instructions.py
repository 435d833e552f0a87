"""The observer's cost per frame in instructions executed: a figure the machine's speed does
not move.

``observer_cost`` measures CPU time, and on a shared machine the CPU time of the same work
moves by up to 20% between runs: its per-round ratios spread from 0.3 to 0.75. Here the same
synthetic call (``benchmarks.call``) runs in workers under Valgrind's callgrind
(``benchmarks.callgrind``), which counts every instruction each measured call executes, in
every thread, from building the pipeline to the observer having sent the end of the call.
Each variant runs in its own worker; a round plays one call per variant, two workers at a
time. Instructions leave out what CPU time includes (cache misses, branch mispredictions),
so both benchmarks are kept: this one for ratios that hold from round to round.

``python -m benchmarks.observer_instructions [--smoke] [--results DIR]``
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import callgrind, cli
from benchmarks.backend import BenchBackend, running
from benchmarks.observer_cost import (
    FLOOR,
    NONE,
    OURS,
    ROARK,
    Case,
    add_line_sections,
    note_observer_version,
)
from benchmarks.report import Report, median, spread, table
from benchmarks.runner import Line, Worker, lines
from benchmarks.worker import Spec

__all__ = ["main"]

NAME = "observer_instructions"

RECORDER = Case("Pipecat's recorder alone, no observer", "recorder")
OWN_RECORDER = Case("this project's recorder alone, no observer", "own-recorder")
CASES = {
    "1.x": (NONE, RECORDER, OWN_RECORDER, FLOOR, OURS, ROARK),
    "0.0.x": (NONE, RECORDER, OWN_RECORDER, OURS, ROARK),
}


@dataclass(frozen=True)
class Size:
    rounds: int
    rounds_0x: int
    minutes: float
    speed: float
    warmup: float
    parallel: int
    """Workers playing at the same time: instruction counts do not depend on it."""
    every_case: bool
    """False: no observer and ours only (the smoke test: each worker imports for ~40 s)."""

    def cases(self, line: str) -> tuple[Case, ...]:
        return CASES[line] if self.every_case else (NONE, OURS)


# One minute: a tool call, six user and bot turns, ~4 400 frames; about a minute under
# callgrind. The warm-up call takes the lazy imports and first-call caches out of round 1.
FULL = Size(rounds=2, rounds_0x=3, minutes=1.0, speed=25.0, warmup=0.3, parallel=2, every_case=True)
SMOKE = Size(
    rounds=1, rounds_0x=1, minutes=0.02, speed=60.0, warmup=0.0, parallel=2, every_case=False
)


@dataclass
class LineResult:
    line: Line
    cases: tuple[Case, ...]
    pipecat: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    counts: dict[Case, dict[int, tuple[int, int]]] = field(default_factory=dict)
    """Per case, per round: (instructions, frames)."""
    complete: dict[Case, int] = field(default_factory=dict)
    resent: dict[Case, int] = field(default_factory=dict)
    """Requests the observer retried or spooled: a slow answer under callgrind's 50x takes
    another path, whose instructions are not the call's usual ones."""

    def per_frame(self, case: Case) -> dict[int, float]:
        return {r: count / frames for r, (count, frames) in self.counts.get(case, {}).items()}

    def added(self, case: Case, above: Case = NONE) -> dict[int, float]:
        """Instructions per frame above ``above``'s call of the same round."""
        mine, base = self.per_frame(case), self.per_frame(above)
        return {r: mine[r] - base[r] for r in mine if r in base}

    def overhead(self, case: Case) -> dict[int, float]:
        base = self.per_frame(NONE)
        return {r: added / base[r] for r, added in self.added(case).items()}

    def ratio(self, case: Case, other: Case, above: Case = NONE) -> dict[int, float]:
        """``case``'s added instructions over ``other``'s, round by round."""
        mine, theirs = self.added(case, above), self.added(other, above)
        return {r: mine[r] / theirs[r] for r in mine if r in theirs and theirs[r] > 0}

    def moved(self, case: Case) -> float:
        """How far the count moved between rounds: (max - min) / median."""
        values = list(self.per_frame(case).values())
        return (max(values) - min(values)) / median(values) if values else 0.0


def _spec(line: Line, case: Case, size: Size, backend: BenchBackend, dumps: Path) -> Spec:
    tag = f"{line.name}-{case.key}"
    (dumps / tag).mkdir()
    return Spec(
        variant=case.variant,
        base_url=backend.url,
        minutes=size.minutes,
        speed=size.speed,
        warmup_minutes=size.warmup,
        # A spool of its own: the machine's default one may hold other runs' records, which
        # the observer would replay during the measured call.
        spool_dir=str(dumps / tag / "spool"),
        call_prefix=f"instr-{tag}",
        instructions_dir=str(dumps / tag),
    )


async def _measure_line(line: Line, rounds: int, size: Size, dumps: Path) -> LineResult:
    result = LineResult(line, size.cases(line.name))
    # Callgrind runs a worker about 50x slower than Python alone, imports included.
    start_budget = 900 + 600 * size.warmup
    call_budget = 300 + 600 * size.minutes
    async with running() as backend:
        workers = {
            case: Worker(
                python,
                _spec(line, case, size, backend, dumps),
                wrapper=callgrind.wrapper(dumps / f"{line.name}-{case.key}"),
            )
            for case in result.cases
            if (python := line.python_for(case.variant)) is not None
        }
        turns = asyncio.Semaphore(size.parallel)

        async def start(worker: Worker) -> Any:
            async with turns:
                return await worker.start(timeout=start_budget)

        async def play(case: Case, round_: int) -> None:
            async with turns:
                call = await workers[case].play(timeout=call_budget)
            result.counts.setdefault(case, {})[round_] = (call["instructions"], call["frames"])
            complete = backend.receipt(call["call_id"]).complete if call["call_id"] else False
            result.complete[case] = result.complete.get(case, 0) + int(complete)
            delivery = call.get("delivery")
            if delivery is not None:  # the observer's own counters, where it has them
                resent = delivery.get("retried", 0) + delivery.get("spooled", 0)
                result.resent[case] = result.resent.get(case, 0) + resent

        try:
            outputs = await asyncio.gather(*(start(worker) for worker in workers.values()))
            for case, output in zip(workers, outputs, strict=True):
                result.pipecat = output.pipecat
                note_observer_version(result.versions, case, output)
            for round_ in range(rounds):
                await asyncio.gather(*(play(case, round_) for case in workers))
        finally:
            await asyncio.gather(*(worker.close() for worker in workers.values()))
    return result


def _delivered(result: LineResult, case: Case) -> str:
    if case.variant in ("none", "recorder", "own-recorder", "floor"):
        return "(nothing to send)"
    complete = f"{result.complete.get(case, 0)}/{len(result.counts.get(case, {}))} calls complete"
    if case in result.resent:
        complete += f", {result.resent[case]} requests resent"
    return complete


def _line_table(result: LineResult) -> str:
    rows = []
    for case in result.cases:
        if case not in result.counts:
            rows.append([case.label, "not run (no venv)", "", "", "", ""])
            continue
        rows.append(
            [
                case.label,
                spread(result.per_frame(case).values(), scale=1e-3),
                spread(result.added(case).values(), scale=1e-3) if case is not NONE else "—",
                spread(result.overhead(case).values(), scale=100) if case is not NONE else "—",
                f"{result.moved(case) * 100:.2f}",
                _delivered(result, case),
            ]
        )
    return table(
        [
            "variant",
            "thousand instructions / frame",
            "added / frame",
            "overhead %",
            "moved between rounds %",
            "delivery",
        ],
        rows,
    )


def _each(values: dict[int, float], scale: float = 1.0, digits: int = 2) -> str:
    return ", ".join(f"{values[r] * scale:.{digits}f}" for r in sorted(values)) or "—"


def _goals(result: LineResult) -> str:
    if OURS not in result.counts:
        return ""
    found: list[str] = []
    if ROARK in result.counts:
        ratios = result.ratio(OURS, ROARK)
        every = all(value <= 1 / 3 for value in ratios.values())
        found.append(
            f"- Ours ÷ 0.2.5, instructions added per frame: **{median(ratios.values()):.2f}** "
            f"(goal ≤ 0.33 in every round: {'met' if ratios and every else 'missed'}); each "
            f"round: {_each(ratios)}."
        )
        if RECORDER in result.counts:
            above = result.ratio(OURS, ROARK, above=RECORDER)
            found.append(
                "- The same above Pipecat's recorder alone (what each observer adds to the "
                f"recorder's own hop), each round: {_each(above)}."
            )
    overhead = median(result.overhead(OURS).values()) * 100
    found.append(
        f"- Pipeline overhead of ours, in instructions: **{overhead:.1f}%** (goal < 2%: "
        f"{'met' if overhead < 2 else 'missed'}); each round: "
        f"{_each(result.overhead(OURS), scale=100, digits=1)}."
    )
    if RECORDER in result.counts:
        recorder = median(result.overhead(RECORDER).values()) * 100
        found.append(
            f"- Pipecat's `AudioBufferProcessor` alone, no observer: {recorder:.1f}%; ours above "
            f"it: {overhead - recorder:+.1f} points."
        )
    if OWN_RECORDER in result.counts:
        own = median(result.overhead(OWN_RECORDER).values()) * 100
        found.append(
            f"- Where ours goes: its recorder's hop (`CallAudioRecorder` alone, no observer) "
            f"{own:.1f}%, the observer above it {overhead - own:+.1f} points: "
            f"{median(result.added(OURS, above=OWN_RECORDER).values()) / 1e3:.0f} thousand "
            "instructions per frame."
        )
    moved = max(result.moved(case) for case in result.counts) * 100
    found.append(f"- The most any variant's count moved between rounds: {moved:.2f}%.")
    return "\n".join(found)


def _report(results: list[LineResult], size: Size, why_not: str) -> Report:
    report = Report(
        NAME,
        "Observer instructions per frame",
        "The synthetic call of `observer_cost` (20 ms audio both ways, a user and a bot turn "
        "every 10 s, TTS words, LLM tokens, metrics frames, a tool call every minute, through "
        "a real `PipelineTask` with the recorder after the output transport), "
        f"{size.minutes:g} simulated minutes per call, each variant in its own worker run by "
        "Valgrind's callgrind. *Thousand instructions / frame*: the instructions the measured "
        "call executed (every thread, from building the pipeline to the observer having sent "
        "the end of the call) per frame queued. *Added / frame*: that minus the no-observer "
        "call of the same round. Median (min-max) over "
        f"{size.rounds} rounds (0.0.x: {size.rounds_0x}), one call per variant per round, "
        f"after a {size.warmup:g}-minute warm-up call in each worker. Instructions do not move "
        "with the machine's speed; they leave out what CPU time also counts (cache misses, "
        "branch mispredictions), which `observer_cost` measures.",
    )
    if why_not:
        report.add(f"Not measured: {why_not}.")
    add_line_sections(report, results, _line_table, _goals)
    return report


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    why_not = callgrind.missing()
    results = []
    if not why_not:
        with tempfile.TemporaryDirectory(prefix="roark-callgrind-") as dumps:
            for line in lines():
                rounds = size.rounds if line.name == "1.x" else size.rounds_0x
                results.append(await _measure_line(line, rounds, size, Path(dumps)))
    return _report(results, size, why_not)


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
