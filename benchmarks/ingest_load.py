"""Benchmark 4: how many concurrent calls ``pipecat-roark serve`` takes in, on each setup.

Each setup (SQLite + folder, PostgreSQL + an S3-compatible server; one or two replicas)
runs as real ``serve`` processes on 127.0.0.1 (``benchmarks.servers``). A load generator in
its own process (``benchmarks.ingest_client``) plays N concurrent calls: 16 kHz stereo, a
256 KiB chunk every 4.1 s of audio as the observer's recorder sends them (presign POST, then
PUT), call-started and call-ended around each call, calls of a few minutes back to back,
the audio clock ``speed`` times faster than real time. The server stitches each ended call
meanwhile, as it would in production.

N ramps up (``Size.ramp``) and stops at the first N whose chunk requests (presign or PUT)
have a p99 of 100 ms or more, or any request fails: the highest N before it is held. Then
the goals' own cases at real-time pace: ``Size.realtime_calls`` calls on SQLite + folder, and
a ramp up to 1000 calls on PostgreSQL + SeaweedFS with two replicas, where each step also
says which part of the machine was busiest (replicas, PostgreSQL, SeaweedFS, the load
generator): what saturates first.

``python -m benchmarks.ingest_load [--smoke] [--results DIR] [--set speed=2]``
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import cli
from benchmarks.ingest_client import CHUNK_BYTES, CHUNK_SECONDS, Load, generate
from benchmarks.report import Report, percentile, server_versions, table
from benchmarks.saturation import POOL_CONNECTIONS, Saturation, probing
from benchmarks.servers import Services, Serving, Setup, services, serving

__all__ = ["main"]

NAME = "ingest_load"
GOAL_MS = 100.0
GOAL_CALLS = 500
GOAL_CALLS_SCALED = 1000
SCALED = Setup("postgresql", 2)
_SETTLE_CPU = 0.05
_SETTLE_MAX = 15.0


@dataclass(frozen=True)
class Size:
    ramp: tuple[int, ...]
    setups: tuple[Setup, ...]
    speed: float
    """How much faster than real time each call's audio clock runs in the ramps."""
    seconds: float
    """The measured window of each step, after one chunk interval of warm-up."""
    realtime_calls: int
    """Then this many calls at real-time pace on SQLite + folder, one replica (0: none)."""
    realtime_scaled: tuple[int, ...]
    """Then this ramp at real-time pace on PostgreSQL + SeaweedFS, two replicas."""


FULL = Size(
    ramp=(100, 200, 250, 300, 400, 500, 800),
    setups=(Setup("sqlite", 1), Setup("postgresql", 1), Setup("postgresql", 2)),
    speed=2.0,
    seconds=6.0,
    realtime_calls=GOAL_CALLS,
    realtime_scaled=(250, 500, 750, GOAL_CALLS_SCALED),
)
SMOKE = Size(
    ramp=(4, 8),
    setups=(Setup("sqlite", 1), Setup("postgresql", 2)),
    speed=16.0,
    seconds=1.0,
    realtime_calls=4,
    realtime_scaled=(4,),
)


@dataclass
class Step:
    calls: int
    measured: dict[str, Any]
    wall: float
    server_cpu: float
    machine_busy: float
    """Share of every core's time the machine was busy (server, generator, services)."""
    parts_cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds over the step of each busy part: replicas, services, load generator."""
    saturation: Saturation | None = None
    """The replicas' event loops and PostgreSQL's sessions over the step."""

    def values(self, kind: str) -> list[float]:
        return list(self.measured["latencies"].get(kind, []))

    @property
    def errors(self) -> int:
        return int(sum(self.measured["errors"].values()))

    def p99(self, kind: str) -> float:
        return percentile(self.values(kind), 99)

    @property
    def held(self) -> bool:
        chunks = [self.values("presign"), self.values("put")]
        return (
            self.errors == 0
            and all(chunks)
            and all(percentile(values, 99) < GOAL_MS for values in chunks)
        )


@dataclass
class Ramp:
    setup: Setup
    speed: float
    steps: list[Step] = field(default_factory=list)
    took: float = 0.0

    @property
    def held(self) -> int | None:
        best = None
        for step in self.steps:
            if not step.held:
                break
            best = step.calls
        return best


async def _settle(served: Serving) -> None:
    """Wait until the replicas are idle (the last step's stitches done), within bounds."""
    deadline = time.monotonic() + _SETTLE_MAX
    before = served.cpu_seconds()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = served.cpu_seconds()
        if (now - before) / 0.5 < _SETTLE_CPU * len(served.pids):
            return
        before = now


def _machine_times() -> tuple[int, int]:
    """(busy, total) clock ticks of every core since boot."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


async def _ramp(
    setup: Setup, speed: float, ramp_calls: Sequence[int], size: Size, workdir: Path, held: Services
) -> Ramp:
    ramp = Ramp(setup, speed)
    started_ramp = time.monotonic()
    tag = f"{setup.database}-{setup.replicas}-{speed:g}x"
    async with serving(setup, workdir / tag, held) as served:
        for calls in ramp_calls:
            load = Load(
                urls=served.urls,
                key=served.key,
                calls=calls,
                speed=speed,
                seconds=size.seconds,
                prefix=f"load-{tag}-{calls}",
                seed=calls,
            )
            cpu_before, started = served.cpu_seconds(), time.monotonic()
            services_before = held.cpu_seconds()
            busy_before, total_before = _machine_times()
            database_url = served.settings_env.get("ROARK_SERVER_DATABASE_URL")
            async with probing(served.urls, database_url) as saturation:
                measured = await generate(load)
            wall = time.monotonic() - started
            busy_after, total_after = _machine_times()
            server_cpu = served.cpu_seconds() - cpu_before
            parts = {"replicas": server_cpu, "load generator": float(measured["cpu"])}
            if setup.database == "postgresql":
                for part, used in held.cpu_seconds().items():
                    parts[part] = used - services_before.get(part, 0.0)
            step = Step(
                calls,
                measured,
                wall,
                server_cpu,
                (busy_after - busy_before) / max(1, total_after - total_before),
                parts,
                saturation,
            )
            ramp.steps.append(step)
            if not step.held:
                break
            await _settle(served)
    ramp.took = time.monotonic() - started_ramp
    return ramp


def _error_samples(ramp: Ramp) -> list[str]:
    """What the failed requests answered, so a missed step says why."""
    return [
        f"- Errors at {step.calls} calls, e.g.: "
        + "; ".join(f"`{sample}`" for sample in step.measured.get("error_samples", []))
        for step in ramp.steps
        if step.errors
    ]


def _part_cpu(step: Step, part: str) -> str:
    used = step.parts_cpu.get(part)
    return "—" if used is None else f"{used / step.wall * 100:.0f}"


def _busiest(step: Step) -> str:
    """The step's parts by CPU, busiest first, in % of one core."""
    ranked = sorted(step.parts_cpu.items(), key=lambda item: -item[1])
    return ", ".join(f"{part} {used / step.wall * 100:.0f}%" for part, used in ranked)


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.0f}" if values else "—"


def _row(step: Step, size: Size) -> list[str]:
    presign, put = step.values("presign"), step.values("put")
    events = step.values("call-started") + step.values("call-ended")
    errors = step.measured["errors"]
    problems = ", ".join(f"{count} {kind}" for kind, count in sorted(errors.items()))
    return [
        str(step.calls),
        f"{step.measured['chunks'] / step.measured['window']:.0f}",
        f"{step.measured['chunks'] * CHUNK_BYTES / step.measured['window'] / 1e6:.0f}",
        _ms(presign, 50),
        f"**{_ms(presign, 99)}**",
        _ms(put, 50),
        f"**{_ms(put, 99)}**",
        _ms(events, 99),
        problems or "0",
        f"{step.server_cpu / step.wall * 100:.0f}",
        _part_cpu(step, "PostgreSQL"),
        _part_cpu(step, "SeaweedFS"),
        _part_cpu(step, "load generator"),
        f"{step.machine_busy * 100:.0f}",
        *_saturation_cells(step.saturation),
        "yes" if step.held else "**no**",
    ]


def _saturation_cells(found: Saturation | None) -> list[str]:
    if found is None:
        return ["—", "—", "—"]
    loop = _ms(found.loop_ms, 99)
    if not found.busy:
        return [loop, "—", "—"]
    busy = f"{sum(found.busy) / len(found.busy):.1f} / {max(found.busy)} of {found.connections}"
    return [loop, busy, f"{sum(found.waiting) / len(found.waiting):.1f}"]


def _saturation_text(found: Saturation | None) -> str:
    if found is None:
        return ""
    text = f"; the replicas' `/healthz` p99 {_ms(found.loop_ms, 99)} ms"
    if found.busy:
        text += (
            f"; PostgreSQL sessions busy {sum(found.busy) / len(found.busy):.1f} on average "
            f"(at most {max(found.busy)}) of the {found.connections} the pools may open, "
            f"{sum(found.waiting) / len(found.waiting):.1f} of them waiting for a lock"
        )
    return text


_HEADERS = [
    "calls",
    "chunks/s",
    "MB/s",
    "presign p50 ms",
    "presign p99 ms",
    "PUT p50 ms",
    "PUT p99 ms",
    "events p99 ms",
    "errors",
    "server CPU %",
    "PostgreSQL CPU %",
    "SeaweedFS CPU %",
    "generator CPU %",
    "machine busy %",
    "replica /healthz p99 ms",
    "DB sessions busy avg / max",
    "DB lock waits avg",
    "held",
]


def _pace(speed: float) -> str:
    return "real time" if speed == 1 else f"{speed:g}x"


def _held(ramp: Ramp) -> str:
    if ramp.held is not None:
        return str(ramp.held)
    return f"< {ramp.steps[0].calls}" if ramp.steps else "—"


def _report(ramps: list[Ramp], size: Size) -> Report:
    report = Report(
        NAME,
        "Backend ingest under load",
        f"N concurrent calls against `pipecat-roark serve` (real processes on 127.0.0.1, "
        f"started afresh for each setup), each 16 kHz stereo sending a "
        f"{CHUNK_BYTES // 1024} KiB chunk (presign POST, then PUT) every "
        f"{CHUNK_SECONDS:.1f} s of audio, as the observer's recorder does, with call-started "
        f"and call-ended around calls of 2 to 6 minutes played back to back (each step "
        f"starts with every call part-way through, so calls end, and are stitched by the "
        f"server, at their steady rate). The ramps run the audio clock **{size.speed:g}x "
        f"faster than real time**: N calls there send what {size.speed:g}N real-time calls "
        f"send. The load generator is one asyncio process (aiohttp, at most 256 "
        f"connections) on the same machine; latency counts from when a request was due, so "
        f"an answer late enough to delay the call's next request counts against that one "
        f"too. Each step measures {size.seconds:g} s after one chunk interval of warm-up; the "
        f"ramp stops at the first step whose presign or PUT p99 reaches {GOAL_MS:.0f} ms or "
        f"that has any error. One run per step. *Server CPU*: the replicas' CPU time over "
        f"the step in % of one core; PostgreSQL's (every backend), SeaweedFS's and the "
        f"load generator's likewise; *machine busy*: of both cores. *Replica /healthz*: "
        f"each replica asked every 100 ms for an answer that touches no storage: how long a "
        f"request waits for a replica's event loop. *DB sessions busy*: PostgreSQL's "
        f"sessions in a statement or a transaction, sampled every 100 ms (each replica's "
        f"pool opens at most {POOL_CONNECTIONS}), and *lock waits* those of them waiting "
        f"for a lock. With S3 the chunks go to SeaweedFS's S3 gateway (master, volume, "
        f"filer and gateway in one process), which checks each presigned URL's SigV4 "
        f"signature, not through the server.",
        versions=server_versions(
            SQLite=sqlite3.sqlite_version,
            uvicorn=metadata.version("uvicorn"),
            SQLAlchemy=metadata.version("sqlalchemy"),
        ),
    )
    summary = [
        [
            ramp.setup.label,
            _pace(ramp.speed),
            f"**{_held(ramp)}**",
            str(int((ramp.held or 0) * ramp.speed)) if ramp.held else "—",
            f"{ramp.took:.0f}",
        ]
        for ramp in ramps
    ]
    report.add(
        f"## Highest N held (chunk p99 < {GOAL_MS:.0f} ms, no errors)",
        table(["setup", "pace", "calls held", "= real-time calls", "took s"], summary),
    )
    for ramp in ramps:
        report.add(
            f"### {ramp.setup.label}, {_pace(ramp.speed)}",
            "\n".join(
                [table(_HEADERS, [_row(step, size) for step in ramp.steps]), *_error_samples(ramp)]
            ),
        )
    report.add(_goal(ramps))
    report.add(_goal_scaled(ramps))
    return report


def _goal_scaled(ramps: list[Ramp]) -> str:
    ramp = next((r for r in ramps if r.setup == SCALED and r.speed == 1), None)
    if ramp is None or not ramp.steps:
        return f"- Goal: {GOAL_CALLS_SCALED} real-time calls on {SCALED.label}: not measured."
    last = ramp.steps[-1]
    met = last.held and last.calls >= GOAL_CALLS_SCALED
    where = (
        f"held {ramp.held} real-time calls"
        if ramp.held is not None
        else f"not held at {ramp.steps[0].calls}"
    )
    limit = (
        "the ramp's last step held"
        if last.held
        else f"at {last.calls} calls (p99 presign {_ms(last.values('presign'), 99)} ms, "
        f"PUT {_ms(last.values('put'), 99)} ms, {last.errors} errors)"
    )
    return (
        f"- Goal: {GOAL_CALLS_SCALED} real-time calls on {SCALED.label}: "
        f"{'met' if met else 'missed'}; {where}. Where it saturates: {limit}, the machine "
        f"{last.machine_busy * 100:.0f}% busy; CPU by part (% of one core): {_busiest(last)}"
        f"{_saturation_text(last.saturation)}."
    )


def _goal(ramps: list[Ramp]) -> str:
    sqlite = [r for r in ramps if r.setup == Setup("sqlite", 1)]
    realtime = next((r for r in sqlite if r.speed == 1), None)
    paced = next((r for r in sqlite if r.speed != 1), None)
    parts = []
    if realtime is not None and realtime.steps:
        step = realtime.steps[-1]
        parts.append(
            f"{step.calls} calls at real-time pace {'held' if step.held else '**not held**'}"
        )
    if paced is not None and paced.held:
        parts.append(
            f"{paced.held} held at {paced.speed:g}x, the chunk rate of "
            f"{int(paced.held * paced.speed)} real-time calls"
        )
    met = realtime is not None and bool(realtime.steps) and realtime.steps[-1].held
    met = met and realtime is not None and realtime.steps[-1].calls >= GOAL_CALLS
    return (
        f"- Goal: ≥ {GOAL_CALLS} concurrent calls on 2 cores with SQLite + folder: "
        f"{'met' if met else 'missed'} ({'; '.join(parts) or 'not measured'})."
    )


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    plans: list[tuple[Setup, float, Sequence[int]]] = [
        (setup, size.speed, size.ramp) for setup in size.setups
    ]
    if size.realtime_calls:
        plans.append((Setup("sqlite", 1), 1.0, (size.realtime_calls,)))
    if size.realtime_scaled:
        plans.append((SCALED, 1.0, size.realtime_scaled))
    ramps: list[Ramp] = []
    with tempfile.TemporaryDirectory(prefix="roark-ingest-") as workdir, services() as held:
        for setup, speed, calls in plans:
            ramps.append(await _ramp(setup, speed, calls, size, Path(workdir), held))
    return _report(ramps, size)


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
