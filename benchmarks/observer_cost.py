"""Benchmark 1: the observer's CPU per frame, against no observer and pipecat-roark 0.2.5.

The synthetic call (``benchmarks.call``) goes through a real ``PipelineTask`` once per
variant, each in its own worker process, all against the same backend on 127.0.0.1 in the
same run; rounds interleave the variants so that drift in the machine hits them alike. The
observer's cost per frame is the worker's CPU time (``time.process_time``: every thread)
from the first frame to the EndFrame leaving the output transport, minus that of the
no-observer call of the same round, divided by the frames the call queued.

Also measured here: the same with ``metrics=False`` (issue 7), and against a backend that
accepts connections and never answers (issue 4: the call finishes, per-frame work alike).

``python -m benchmarks.observer_cost [--smoke] [--results DIR]``
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import cli
from benchmarks.backend import BenchBackend, running
from benchmarks.report import Report, median, spread, table
from benchmarks.runner import Line, Worker, WorkerOutput, lines
from benchmarks.worker import Spec

__all__ = ["main"]

NAME = "observer_cost"


@dataclass(frozen=True)
class Case:
    label: str
    variant: str
    metrics: bool = True
    silent: bool = False

    @property
    def key(self) -> str:
        metrics = "" if self.metrics else "-nometrics"
        return f"{self.variant}{metrics}{'-silent' if self.silent else ''}"


NONE = Case("no observer", "none")
FLOOR = Case("do-nothing observer + recorder (the floor)", "floor")
OURS = Case("**this project**", "ours")
OURS_NO_METRICS = Case("this project, `metrics=False`", "ours", metrics=False)
OURS_SILENT = Case("this project, backend never answers", "ours", silent=True)
ROARK = Case("pipecat-roark 0.2.5", "roark-0.2.5")
CASES = {
    "1.x": (NONE, FLOOR, OURS, OURS_NO_METRICS, OURS_SILENT, ROARK),
    "0.0.x": (NONE, OURS, ROARK),
}


@dataclass(frozen=True)
class Size:
    rounds: int
    minutes: float
    speed: float
    warmup: float
    rounds_0x: int


# 2.5 minutes: a pipeline of more than 10 000 frames (issue 4's silent-backend check).
# 0.0.x: enough rounds to show how far the ratio moves from one round to the next.
FULL = Size(rounds=3, minutes=2.5, speed=25.0, warmup=0.2, rounds_0x=5)
SMOKE = Size(rounds=1, minutes=0.05, speed=60.0, warmup=0.0, rounds_0x=1)


def note_observer_version(versions: dict[str, str], case: Case, output: WorkerOutput) -> None:
    """Which release of an observer a worker ran, under the name the results page shows."""
    if case.variant == "ours" and output.observer:
        versions["this project"] = output.observer
    if case.variant == "roark-0.2.5" and output.observer:
        versions["Roark's pipecat-roark"] = output.observer


def add_line_sections(
    report: Report,
    results: Sequence[Any],
    line_table: Callable[[Any], str],
    goals: Callable[[Any], str],
) -> None:
    """One section per Pipecat line: its versions on the page, its table and its goals."""
    for result in results:
        report.versions[f"Pipecat {result.line.name}"] = result.pipecat
        for name, version in result.versions.items():
            report.versions[f"{name} ({result.line.name})"] = version
        report.add(f"## Pipecat {result.pipecat}", line_table(result), goals(result))


@dataclass
class Sample:
    round: int
    frames: int
    cpu_in_call: float
    cpu_total: float
    complete: bool
    delivery: dict[str, int] | None


@dataclass
class LineResult:
    line: Line
    pipecat: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    samples: dict[Case, list[Sample]] = field(default_factory=dict)

    def note_versions(self, case: Case, output: WorkerOutput) -> None:
        self.pipecat = output.pipecat
        note_observer_version(self.versions, case, output)

    def add(self, case: Case, round_: int, call: dict[str, Any], complete: bool) -> None:
        self.samples.setdefault(case, []).append(
            Sample(
                round_,
                call["frames"],
                call["cpu_in_call"],
                call["cpu_total"],
                complete,
                call.get("delivery"),
            )
        )

    def per_frame(self, case: Case) -> list[float]:
        return [s.cpu_in_call / s.frames for s in self.samples.get(case, [])]

    def observer_per_frame(self, case: Case) -> list[float]:
        """CPU per frame above the no-observer call of the same round."""
        return list(self.observer_by_round(case).values())

    def observer_by_round(self, case: Case) -> dict[int, float]:
        return {s.round: (s.cpu_in_call - base) / s.frames for s, base in self._paired(case)}

    def overhead(self, case: Case) -> list[float]:
        """The same as a fraction of the no-observer call's CPU."""
        return [(s.cpu_in_call - base) / base for s, base in self._paired(case)]

    def _paired(self, case: Case) -> list[tuple[Sample, float]]:
        base = {s.round: s.cpu_in_call for s in self.samples.get(NONE, [])}
        return [(s, base[s.round]) for s in self.samples.get(case, []) if s.round in base]


async def _measure_line(
    line: Line, cases: Sequence[Case], rounds: int, size: Size, workdir: Path
) -> LineResult:
    result = LineResult(line)
    call_budget = 60 + 4 * size.minutes * 60 / size.speed
    async with running() as healthy, running(silent=True) as silent:
        workers = {
            case: Worker(python, _spec(line, case, size, healthy, silent, workdir))
            for case in cases
            if (python := line.python_for(case.variant)) is not None
        }
        try:
            outputs = await asyncio.gather(
                *(worker.start(timeout=call_budget + 60) for worker in workers.values())
            )
            for case, output in zip(workers, outputs, strict=True):
                result.note_versions(case, output)
            for round_ in range(rounds):
                # Rounds alternate the order, so drift in the machine hits variants alike.
                order = list(workers) if round_ % 2 == 0 else list(reversed(workers))
                for case in order:
                    call = await workers[case].play(timeout=call_budget)
                    result.add(case, round_, call, healthy.receipt(call["call_id"]).complete)
        finally:
            await asyncio.gather(*(worker.close() for worker in workers.values()))
    return result


def _spec(
    line: Line,
    case: Case,
    size: Size,
    healthy: BenchBackend,
    silent: BenchBackend,
    workdir: Path,
) -> Spec:
    tag = f"{line.name}-{case.key}"
    return Spec(
        variant=case.variant,
        base_url=(silent if case.silent else healthy).url,
        minutes=size.minutes,
        speed=size.speed,
        warmup_minutes=size.warmup,
        metrics=case.metrics,
        # Against a backend that never answers, the end of the call waits this long.
        flush_timeout=1.0 if case.silent else 10.0,
        spool_dir=str(workdir / tag),
        call_prefix=tag,
    )


def _delivered(case: Case, samples: list[Sample]) -> str:
    if not samples:
        return "—"
    if case.variant in ("none", "floor"):
        return "(nothing to send)"
    if case.silent:
        spooled = [s.delivery.get("spooled", 0) for s in samples if s.delivery]
        return f"finished; {median(spooled):.0f} requests spooled per call" if spooled else "—"
    complete = sum(s.complete for s in samples)
    return f"{complete}/{len(samples)} calls complete"


def _line_table(result: LineResult) -> str:
    rows = []
    for case in CASES[result.line.name]:
        samples = result.samples.get(case, [])
        if not samples:
            rows.append([case.label, "not run (no venv)", "", "", "", ""])
            continue
        observer = result.observer_per_frame(case)
        end_ms = [s.cpu_total - s.cpu_in_call for s in samples]
        rows.append(
            [
                case.label,
                spread(result.per_frame(case), scale=1e6),
                spread(observer, scale=1e6) if case is not NONE else "—",
                spread(result.overhead(case), scale=100, digits=0) if case is not NONE else "—",
                spread(end_ms, scale=1e3),
                _delivered(case, samples),
            ]
        )
    return table(
        [
            "variant",
            "CPU µs / frame",
            "observer µs / frame",
            "overhead %",
            "CPU ms after the EndFrame",
            "delivery",
        ],
        rows,
    )


def _ratios(result: LineResult, case: Case, other: Case, *, above: Case | None = None) -> str:
    """``case``'s observer cost over ``other``'s, round by round (both above ``above``'s)."""
    ours, theirs = result.observer_by_round(case), result.observer_by_round(other)
    floor = result.observer_by_round(above) if above is not None else {}
    ratios = []
    for round_ in sorted(set(ours) & set(theirs)):
        if above is not None and round_ not in floor:
            continue
        base = floor.get(round_, 0.0)
        if theirs[round_] - base > 0:
            ratios.append((ours[round_] - base) / (theirs[round_] - base))
    return spread(ratios, digits=2) if ratios else "—"


def _each_round(result: LineResult, case: Case, other: Case) -> str:
    """``case``'s observer cost over ``other``'s in every round, in the order they ran."""
    ours, theirs = result.observer_by_round(case), result.observer_by_round(other)
    ratios = [
        f"{ours[r] / theirs[r]:.2f}" for r in sorted(set(ours) & set(theirs)) if theirs[r] > 0
    ]
    return ", ".join(ratios) or "—"


def _goals(result: LineResult) -> str:
    if not result.samples.get(OURS):
        return ""
    lines: list[str] = []
    ours_us = median(result.observer_per_frame(OURS)) * 1e6
    if result.samples.get(ROARK):
        ratio = median(result.observer_per_frame(OURS)) / median(result.observer_per_frame(ROARK))
        verdict = "met" if ratio <= 1 / 3 else "missed"
        lines.append(
            f"- Ours ÷ 0.2.5, observer CPU per frame: **{ratio:.2f}** (goal ≤ 0.33: {verdict}); "
            f"round by round: {_ratios(result, OURS, ROARK)}; each round: "
            f"{_each_round(result, OURS, ROARK)}. CPU time moves with the shared machine's "
            "speed; `observer_instructions` counts the instructions instead, which it does not "
            "move."
        )
        if result.samples.get(FLOOR):
            lines.append(
                "- The same above the floor (what the observer's own code adds to what "
                "Pipecat charges any observer with a recorder), round by round: "
                f"**{_ratios(result, OURS, ROARK, above=FLOOR)}**."
            )
    overhead = median(result.overhead(OURS)) * 100
    lines.append(
        f"- Total pipeline overhead of ours: **{overhead:.0f}%** (goal < 2%: "
        f"{'met' if overhead < 2 else 'missed'}); {ours_us:.1f} µs per frame."
    )
    if result.samples.get(OURS_NO_METRICS):
        off = median(result.observer_per_frame(OURS_NO_METRICS)) * 1e6
        lines.append(
            f"- Metrics on vs off: {ours_us:.1f} vs {off:.1f} µs per frame "
            f"({ours_us - off:+.1f} µs for the metrics)."
        )
    if result.samples.get(OURS_SILENT):
        hung = median(result.observer_per_frame(OURS_SILENT)) * 1e6
        frames = result.samples[OURS_SILENT][0].frames
        lines.append(
            f"- Backend that never answers: every call of {frames} frames finished; "
            f"{hung:.1f} µs per frame vs {ours_us:.1f} with a healthy backend "
            f"(x {hung / ours_us:.2f})."
        )
    return "\n".join(lines)


def _report(results: list[LineResult], size: Size) -> Report:
    report = Report(
        NAME,
        "Observer CPU per frame",
        "One synthetic call (20 ms audio both ways, a user and a bot turn every 10 s, TTS "
        "words, LLM tokens, metrics frames, a tool call every minute) through a real "
        "`PipelineTask` (four pass-through hops, a paced output transport, the recorder, "
        f"one more hop), {size.minutes:g} simulated minutes per call at {size.speed:g}x real "
        "time. Each variant runs in its own process against the same backend on 127.0.0.1. "
        "*CPU µs / frame*: the process's CPU time from the first frame to the EndFrame "
        "leaving the output transport, per frame queued. *Observer µs / frame*: that minus "
        "the no-observer call of the same round. Figures are median (min-max) over "
        f"{size.rounds} rounds (0.0.x: {size.rounds_0x}), one call per variant per round. "
        "The floor is a do-nothing observer plus an `AudioBufferProcessor` recording: what "
        "Pipecat charges any observer that records the call, before it does anything.",
    )
    add_line_sections(report, results, _line_table, _goals)
    return report


async def _run(size: Size) -> list[LineResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="roark-bench-") as workdir:
        for line in lines():
            rounds = size.rounds if line.name == "1.x" else size.rounds_0x
            results.append(await _measure_line(line, CASES[line.name], rounds, size, Path(workdir)))
    return results


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    return _report(await _run(size), size)


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
