"""What each ingest request costs a replica in CPU, against ``/healthz`` measured alongside.

Ingest saturates the replicas' CPU first (``ingest_load``), and of their requests the
chunk's upload URL is by far the most frequent: one every ``CHUNK_SECONDS`` of every call.
Per setup, one ``serve`` process on 127.0.0.1: rounds of N requests of each kind (at most
``connections`` in flight), the kinds taken in turn within a round, and the replica's CPU
time (user + system, from ``/proc``) over each batch, per request. ``/healthz`` touches no
storage: it is the floor any request pays (HTTP parsing, routing, the middleware), and
each kind's ratio to it is measured in the same round. The replica runs no workers: the
stitching of the calls ended here is ``stitching``'s to measure. *A real-time call* adds up
one call's requests (a call-started, a call-ended, one upload URL per chunk) per minute of call.

``python -m benchmarks.request_cost [--smoke] [--results DIR] [--set rounds=9]``
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import cli
from benchmarks.call_record import call_ended, call_started
from benchmarks.ingest_client import CHUNK_SECONDS, EVENTS, PRESIGN
from benchmarks.report import Report, server_versions, table
from benchmarks.servers import Serving, Setup, cpu_seconds, services, serving

__all__ = ["main"]

NAME = "request_cost"
KINDS = ("healthz", "chunk upload URL", "call-started", "call-ended")


@dataclass(frozen=True)
class Size:
    requests: int
    """Of each kind, per round (call-starteds and call-endeds: a quarter as many)."""
    rounds: int
    connections: int
    minutes: float
    """Each call's length: its call-ended's transcript and metrics, and its chunks."""
    setups: tuple[Setup, ...]


FULL = Size(
    requests=2000,
    rounds=5,
    connections=16,
    minutes=4.0,
    setups=(Setup("sqlite", 1), Setup("postgresql", 1)),
)
SMOKE = Size(requests=20, rounds=1, connections=4, minutes=0.5, setups=(Setup("sqlite", 1),))


@dataclass
class _Round:
    """The requests of one round, each kind's made on demand (the calls they name)."""

    served: Serving
    size: Size
    number: int

    def requests(self, kind: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        url = self.served.urls[0]
        began = datetime.now(timezone.utc) - timedelta(minutes=self.size.minutes + 1)
        calls = max(1, self.size.requests // 4)
        ids = [f"r{self.number}-{index}" for index in range(calls)]
        if kind == "healthz":
            return [("GET", f"{url}/healthz", None)] * self.size.requests
        if kind == "call-started":
            return [("POST", url + EVENTS, call_started(call_id, began)) for call_id in ids]
        if kind == "call-ended":
            return [
                ("POST", url + EVENTS, call_ended(call_id, began, self.size.minutes))
                for call_id in ids
            ]
        return [
            (
                "POST",
                url + PRESIGN,
                {
                    "pipecatCallId": ids[index % calls],
                    "chunkIndex": index // calls,
                    "contentType": "audio/pcm",
                },
            )
            for index in range(self.size.requests)
        ]


async def _batch(
    session: aiohttp.ClientSession,
    served: Serving,
    requests: list[tuple[str, str, dict[str, Any] | None]],
    connections: int,
) -> float:
    """The replica's CPU milliseconds per request, over all of ``requests``."""
    pending = iter(requests)
    headers = {"x-roark-api-key": served.key}

    async def worker() -> None:
        for method, url, body in pending:
            async with session.request(method, url, json=body, headers=headers) as answer:
                text = await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{method} {url}: {answer.status} {text[:300]!r}")

    pid = served.pids[0]
    before = cpu_seconds(pid)
    await asyncio.gather(*(worker() for _ in range(connections)))
    return (cpu_seconds(pid) - before) * 1e3 / len(requests)


async def _setup(setup: Setup, size: Size, workdir: Path, held: Any) -> dict[str, list[float]]:
    spent: dict[str, list[float]] = {kind: [] for kind in KINDS}
    # Its workers off: the stitching of the calls ended here is ``stitching``'s to measure,
    # and would land in whichever batch it overlapped.
    workers_off = {"ROARK_SERVER_RUN_WORKERS": "false"}
    place = workdir / setup.label.replace(" ", "-")
    async with serving(setup, place, held, extra_env=workers_off) as served:
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            warm = _Round(served, size, -1)
            for kind in KINDS:  # warm-up: imports, caches, the pool's connections
                await _batch(session, served, warm.requests(kind), size.connections)
            for number in range(size.rounds):
                this = _Round(served, size, number)
                # call-started before its calls' chunks, and their call-ended after.
                for kind in KINDS:
                    spent[kind].append(
                        await _batch(session, served, this.requests(kind), size.connections)
                    )
    return spent


def _spread(values: list[float], scale: Callable[[float], str]) -> str:
    if not values:  # a batch shorter than the kernel's CPU clock tick (10 ms) reads 0
        return "—"
    if len(values) == 1:
        return scale(values[0])
    return f"{scale(statistics.median(values))} ({scale(min(values))}-{scale(max(values))})"


def _rows(setup: Setup, spent: dict[str, list[float]], size: Size) -> list[list[str]]:
    floor = spent["healthz"]
    rows = []
    for kind in KINDS:
        ratios = [cost / base for cost, base in zip(spent[kind], floor, strict=True) if base]
        rows.append(
            [
                setup.label,
                kind,
                _spread(spent[kind], lambda value: f"{value:.2f}"),
                "—" if kind == "healthz" else _spread(ratios, lambda value: f"{value:.1f}"),
            ]
        )
    chunks_per_minute = 60 / CHUNK_SECONDS
    per_call = [
        (started + ended) / size.minutes + chunks_per_minute * chunk
        for started, ended, chunk in zip(
            spent["call-started"], spent["call-ended"], spent["chunk upload URL"], strict=True
        )
    ]
    rows.append(
        [
            setup.label,
            f"**a real-time call** ({size.minutes:g} min, a chunk every {CHUNK_SECONDS:g} s)",
            "**" + _spread(per_call, lambda value: f"{value:.1f}") + "** per minute",
            "—",
        ]
    )
    return rows


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="roark-requests-") as workdir, services() as held:
        for setup in size.setups:
            spent = await _setup(setup, size, Path(workdir), held)
            rows.extend(_rows(setup, spent, size))
    report = Report(
        NAME,
        "Replica CPU per ingest request",
        f"One replica per setup, its workers off (stitching is `stitching`'s). Per round, "
        f"{size.requests} requests of `/healthz` and of chunk upload URLs, and "
        f"{max(1, size.requests // 4)} call-starteds and call-endeds ({size.minutes:g}-minute "
        f"calls with transcripts and metrics), at most "
        f"{size.connections} in flight; the replica's CPU time over each batch, per request. "
        f"Median (min-max) over {size.rounds} round(s). *÷ healthz*: per round, against "
        f"`/healthz` measured in the same round.",
        versions=server_versions(),
    )
    report.add(table(["setup", "request", "replica CPU ms", "÷ healthz"], rows))
    return report


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
