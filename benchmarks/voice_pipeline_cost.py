"""The observer's cost in a real voice pipeline: the demo's scripted call, un-paced.

The demo's call (``pipecat-roark demo``: Silero VAD, pocketsphinx recognition, a scripted
LLM making tool calls, an espeak-ng TTS, the clocked output transport) is played as fast as
the machine allows (``--speed max``) with no observer, Pipecat's recorder alone (the floor
of any observer that records from inside the pipeline), this project's ``RoarkObserver`` and
Roark's pipecat-roark 0.2.5, both sending to the same backend on 127.0.0.1 in this process.
Each round starts a fresh worker process per variant (``benchmarks.voice_worker``), in
alternating order; the figure is the worker's CPU time (user + sys, every thread) per
second of call audio, from the call's start until the observer has sent the end of the
call, after a warm-up call in the same process.

``python -m benchmarks.voice_pipeline_cost [--smoke] [--results DIR]``
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks import cli
from benchmarks.backend import BenchBackend, running
from benchmarks.report import Report, median, spread, table
from benchmarks.runner import ROOT, run_module
from benchmarks.voice_worker import VoiceSpec

__all__ = ["main"]

NAME = "voice_pipeline_cost"

# Why the demo's pipeline is measured on Pipecat 1.x only.
NOT_ON_0X = (
    "Not measured on Pipecat 0.0.x: the demo's `[demo]` extra requires `pipecat-ai>=1`, so "
    "its speech packages (pocketsphinx, hibari-tts, espeak-ng) are installed in the 1.x "
    "venv only, and 0.0.x's TTS text aggregation fetches NLTK data (`punkt_tab`) from the "
    "network when it is imported, which a run on 127.0.0.1 does not allow. On 0.0.108 the "
    "synthetic pipeline of `observer_cost` is the measure."
)
_PROBE = "from benchmarks.voice_worker import load_demo; load_demo('call'); load_demo('voices')"


@dataclass(frozen=True)
class Case:
    label: str
    variant: str
    metrics: bool = True

    @property
    def key(self) -> str:
        return self.variant + ("" if self.metrics else "-nometrics")


NONE = Case("no observer", "none")
RECORDER = Case("Pipecat's recorder alone, no observer", "recorder")
OURS = Case("**this project**", "ours")
OURS_NO_METRICS = Case("this project, `metrics=False`", "ours", metrics=False)
ROARK = Case("pipecat-roark 0.2.5", "roark-0.2.5")
CASES = (NONE, RECORDER, OURS, ROARK, OURS_NO_METRICS)


@dataclass(frozen=True)
class Size:
    rounds: int
    calls: int
    """Measured calls per worker process (after its warm-up call), added up."""
    warmup: bool


FULL = Size(rounds=8, calls=2, warmup=True)
SMOKE = Size(rounds=1, calls=1, warmup=False)


@dataclass
class Sample:
    round: int
    cpu: float
    cpu_in_call: float
    audio_secs: float
    wall_secs: float
    complete: int
    calls: int

    @property
    def per_second(self) -> float:
        return self.cpu / self.audio_secs


@dataclass
class Results:
    pipecat: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    samples: dict[Case, list[Sample]] = field(default_factory=dict)
    missing: dict[Case, str] = field(default_factory=dict)
    probe_0x: str = ""

    def by_round(self, case: Case) -> dict[int, float]:
        return {s.round: s.per_second for s in self.samples.get(case, [])}

    def overhead(self, case: Case) -> dict[int, float]:
        """CPU per call-second above the no-observer call of the same round, as a fraction."""
        base, mine = self.by_round(NONE), self.by_round(case)
        return {r: (mine[r] - base[r]) / base[r] for r in mine if r in base}

    def ratio(self, case: Case, other: Case) -> dict[int, float]:
        """``case``'s added CPU over ``other``'s, round by round (where ``other`` added some)."""
        mine, theirs = self.overhead(case), self.overhead(other)
        return {r: mine[r] / theirs[r] for r in mine if r in theirs and theirs[r] > 0}


def _python_for(case: Case) -> tuple[str | None, str]:
    """The interpreter a variant runs with, or None and why not."""
    if case.variant == "roark-0.2.5":
        python = os.environ.get("ROARK_BENCH_PYTHON_025_DEMO")
        return python or None, "no venv with pipecat-roark 0.2.5 and the demo's packages"
    return os.environ.get("ROARK_BENCH_PYTHON") or sys.executable, ""


async def _run_worker(python: str, spec: VoiceSpec, timeout: float) -> list[dict[str, Any]]:
    return await run_module(
        python,
        "benchmarks.voice_worker",
        asdict(spec),
        what=f"{spec.variant} voice worker",
        timeout=timeout,
    )


async def _round(
    results: Results, cases: Sequence[Case], round_: int, size: Size, backend: BenchBackend
) -> None:
    for case in cases:
        python, why = _python_for(case)
        if python is None:
            results.missing[case] = why
            continue
        spec = VoiceSpec(
            variant=case.variant,
            base_url=backend.url,
            calls=size.calls,
            warmup=size.warmup,
            metrics=case.metrics,
            call_prefix=f"{case.key}-{round_}",
        )
        head, *calls = await _run_worker(python, spec, timeout=120 + 60 * size.calls)
        results.pipecat = head["pipecat"]
        if head.get("observer"):
            owner = "this project" if case.variant == "ours" else "Roark's pipecat-roark"
            results.versions[owner] = head["observer"]
        results.samples.setdefault(case, []).append(
            Sample(
                round_,
                sum(c["cpu_total"] for c in calls),
                sum(c["cpu_in_call"] for c in calls),
                sum(c["audio_secs"] for c in calls),
                sum(c["wall_secs"] for c in calls),
                sum(backend.receipt(c["call_id"]).complete for c in calls),
                len(calls),
            )
        )


def _delivery(case: Case, samples: list[Sample]) -> str:
    if case in (NONE, RECORDER):
        return "(nothing to send)"
    return f"{sum(s.complete for s in samples)}/{sum(s.calls for s in samples)} calls complete"


def _table(results: Results) -> str:
    rows = []
    for case in CASES:
        samples = results.samples.get(case, [])
        if not samples:
            rows.append([case.label, f"not run: {results.missing.get(case, '')}", "", "", ""])
            continue
        overhead = list(results.overhead(case).values())
        rows.append(
            [
                case.label,
                spread([s.per_second for s in samples], scale=1e3),
                spread(overhead, scale=100, digits=2) if case is not NONE else "—",
                spread([s.audio_secs / s.wall_secs for s in samples]),
                _delivery(case, samples),
            ]
        )
    return table(["variant", "CPU ms / call-second", "overhead %", "x real time", "delivery"], rows)


def _goals(results: Results) -> str:
    if not results.samples.get(OURS):
        return ""
    ours = results.overhead(OURS)
    lines = [
        f"- This project's overhead: **{median(ours.values()) * 100:.2f}%** of the pipeline's "
        f"CPU (goal < 2%: {'met' if median(ours.values()) < 0.02 else 'missed'}); round by "
        f"round {spread(ours.values(), scale=100, digits=2)}."
    ]
    if results.samples.get(ROARK):
        theirs = results.overhead(ROARK)
        ratios = results.ratio(OURS, ROARK)
        medians = median(ours.values()) / median(theirs.values())
        lines.append(
            f"- pipecat-roark 0.2.5's overhead: {median(theirs.values()) * 100:.2f}%. "
            f"Ours ÷ 0.2.5 (added CPU, of the medians): **{medians:.2f}** (goal ≤ 0.33: "
            f"{'met' if medians <= 1 / 3 else 'missed'}); round by round "
            f"{spread(ratios.values(), digits=2) if ratios else '—'}."
        )
    if results.samples.get(RECORDER):
        floor = median(results.overhead(RECORDER).values())
        above = [f"this project {(median(ours.values()) - floor) * 100:+.2f} points"]
        if results.samples.get(ROARK):
            above.append(f"0.2.5 {(median(results.overhead(ROARK).values()) - floor) * 100:+.2f}")
        lines.append(
            f"- Pipecat's `AudioBufferProcessor` alone (armed, stereo, no observer): "
            f"{floor * 100:.2f}%: a processor more in the pipeline, which every frame passes, "
            f"and the floor of any observer that records the call from inside the pipeline, "
            f"as both observers do. Above that floor: {', '.join(above)}."
        )
    if results.samples.get(OURS_NO_METRICS):
        off = results.overhead(OURS_NO_METRICS)
        lines.append(
            f"- Metrics on vs off: {median(ours.values()) * 100:.2f}% vs "
            f"{median(off.values()) * 100:.2f}% overhead."
        )
    return "\n".join(lines)


def _report(results: Results, size: Size) -> Report:
    report = Report(
        NAME,
        "Observer CPU in the demo's voice pipeline",
        "The demo's `booking` call (Silero VAD, pocketsphinx, a scripted LLM with two tool "
        "calls, espeak-ng TTS, the clocked output transport), played un-paced (`--speed "
        "max`), against a backend on 127.0.0.1 in the benchmark's process. Each round runs "
        "every variant in a fresh worker process (alternating order), a warm-up call and "
        f"then {size.calls} measured call(s). *CPU ms / call-second*: the worker's CPU time "
        "(user + sys) from the call's start until the observer had sent the end of the "
        "call, per second of call audio. *Overhead %*: above the no-observer worker of the "
        f"same round. Median (min-max) over {size.rounds} round(s).",
    )
    report.versions["Pipecat"] = results.pipecat
    report.versions.update(results.versions)
    report.add(f"## Pipecat {results.pipecat}", _table(results), _goals(results))
    report.add("## Pipecat 0.0.x", " ".join(filter(None, [NOT_ON_0X, results.probe_0x])))
    return report


async def _probe_0x() -> str:
    """Whether the demo's pipeline loads under the 0.0.x venv, when there is one."""
    python = os.environ.get("ROARK_BENCH_PYTHON_P108")
    if not python:
        return ""
    process = await asyncio.create_subprocess_exec(
        python,
        "-c",
        _PROBE,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return "Loading the demo's pipeline under Pipecat 0.0.x did not finish in 120 s."
    if process.returncode == 0:
        return ""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return f"Loading the demo's pipeline under Pipecat 0.0.x fails: `{lines[-1] if lines else ''}`."


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    results = Results(probe_0x=await _probe_0x())
    async with running() as backend:
        for round_ in range(size.rounds):
            order = CASES if round_ % 2 == 0 else tuple(reversed(CASES))
            await _round(results, order, round_, size, backend)
    return _report(results, size)


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
