"""Calls of one agent starting at once, then ending at once: how long the server takes to
store the burst, and whether its requests wait for each other in the database.

A dialer that starts a campaign, or a deploy that ends every call of a replica, sends the
lifecycle events of many calls of one agent within moments. Each event writes rows that
other calls of the agent (its counts, its day, its latency rollups) or of the project (the
words' counts and sets) write too; a row written early in a transaction stays locked until
it commits, and the burst queues there. Per setup: N call-starteds sent at once (at most
``connections`` in flight), then their N call-endeds (4-minute calls with transcripts and
metrics, as the observer sends them), against ``serve`` processes on 127.0.0.1; wall time,
p50/p99 per event, and what ``saturation.py`` saw meanwhile (on PostgreSQL, the sessions
busy and those waiting for a lock).

``python -m benchmarks.event_bursts [--smoke] [--results DIR] [--set calls=500]``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import cli
from benchmarks.call_record import call_ended, call_started
from benchmarks.report import Report, percentile, server_versions, table
from benchmarks.saturation import Saturation, probing
from benchmarks.servers import Setup, services, serving

__all__ = ["main"]

NAME = "event_bursts"
_EVENTS = "/v1/integrations/pipecat"
_AGENT = "campaign-bot"
_AGENT_STATE = {
    True: "in use: a call before them registered it and its prompt",
    False: "new: the burst's call-starteds are the first to name it and its prompt",
}


@dataclass(frozen=True)
class Size:
    calls: int
    minutes: float
    """Each call's length: its call-ended's transcript and metrics."""
    connections: int
    setups: tuple[Setup, ...]
    agent_in_use: bool = True
    """A call before the burst registered the agent and its prompt; otherwise the burst's
    call-starteds are the first to name them."""


FULL = Size(
    calls=300,
    minutes=4.0,
    connections=100,
    setups=(Setup("sqlite", 1), Setup("postgresql", 2)),
)
SMOKE = Size(
    calls=6, minutes=0.5, connections=4, setups=(Setup("sqlite", 1), Setup("postgresql", 2))
)


@dataclass
class Burst:
    event: str
    wall: float
    latencies: list[float]
    failed: int
    saturation: Saturation


async def _burst(
    session: aiohttp.ClientSession,
    urls: list[str],
    key: str,
    event: str,
    bodies: list[dict[str, Any]],
    connections: int,
    database_url: str | None,
) -> Burst:
    slots = asyncio.Semaphore(connections)
    latencies: list[float] = []
    failed = 0

    async def send(number: int, body: dict[str, Any]) -> None:
        nonlocal failed
        async with slots:
            started = time.monotonic()
            url = urls[number % len(urls)] + _EVENTS
            async with session.post(url, json=body, headers={"x-roark-api-key": key}) as answer:
                await answer.read()
                if answer.status != 200:
                    failed += 1
                    return
            latencies.append((time.monotonic() - started) * 1e3)

    async with probing(urls, database_url) as saturation:
        started = time.monotonic()
        await asyncio.gather(*(send(number, body) for number, body in enumerate(bodies)))
        wall = time.monotonic() - started
    return Burst(event, wall, latencies, failed, saturation)


async def _setup(setup: Setup, size: Size, workdir: Path, held: Any) -> list[Burst]:
    began = datetime.now(timezone.utc) - timedelta(minutes=size.minutes + 1)
    ids = [f"burst-{number}" for number in range(size.calls)]
    async with serving(setup, workdir / setup.label.replace(" ", "-"), held) as served:
        database_url = served.settings_env.get("ROARK_SERVER_DATABASE_URL")
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            starts = [call_started(call_id, began, agent=_AGENT) for call_id in ids]
            ends = [call_ended(call_id, began, size.minutes) for call_id in ids]
            if size.agent_in_use:  # as in a campaign of an agent in use
                await _burst(
                    session, served.urls, served.key, "warm-up",
                    [call_started("burst-first", began, agent=_AGENT)], 1, None,
                )  # fmt: skip
            first = await _burst(
                session, served.urls, served.key, "call-started", starts, size.connections,
                database_url,
            )  # fmt: skip
            second = await _burst(
                session, served.urls, served.key, "call-ended", ends, size.connections,
                database_url,
            )  # fmt: skip
    return [first, second]


def _row(setup: Setup, burst: Burst, calls: int) -> list[str]:
    found = burst.saturation
    busy = waiting = "—"
    if found.busy:
        busy = f"{sum(found.busy) / len(found.busy):.1f} / {max(found.busy)} of {found.connections}"
        waiting = f"{sum(found.waiting) / len(found.waiting):.1f} / {max(found.waiting)}"
    return [
        setup.label,
        burst.event,
        f"{burst.wall:.2f}",
        f"{calls / burst.wall:.0f}" if burst.wall > 0 else "—",
        f"{percentile(burst.latencies, 50):.0f}",
        f"**{percentile(burst.latencies, 99):.0f}**",
        str(burst.failed),
        busy,
        waiting,
    ]


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="roark-bursts-") as workdir, services() as held:
        for setup in size.setups:
            for burst in await _setup(setup, size, Path(workdir), held):
                rows.append(_row(setup, burst, size.calls))
    report = Report(
        NAME,
        "Calls of one agent starting, then ending, at once",
        f"{size.calls} calls of one agent ({_AGENT_STATE[size.agent_in_use]}): their "
        f"call-starteds sent at once (at most "
        f"{size.connections} in flight, the replicas taken in turn), then their call-endeds "
        f"({size.minutes:g}-minute calls with transcripts and metrics). *Stored in*: from the "
        f"first request to the last answer. *DB sessions busy*: PostgreSQL's sessions in a "
        f"statement or a transaction, sampled every 100 ms (each replica's pool opens at "
        f"most 20); *waiting for a lock*: average and most at once. One run.",
        versions=server_versions(),
    )
    headers = [
        "setup",
        "event",
        "stored in s",
        "events/s",
        "p50 ms",
        "p99 ms",
        "failed",
        "DB sessions busy avg / max",
        "waiting for a lock avg / max",
    ]
    report.add(table(headers, rows))
    return report


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
