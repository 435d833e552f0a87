"""What a backend step was short of, besides CPU: the replicas' event loops and the database's
connections.

While a load step runs, ``probing`` asks each replica's ``/healthz`` every 100 ms (an answer
that touches no storage, so its latency is the time a request waits for the replica's event
loop) and, on PostgreSQL, counts the server's sessions in ``pg_stat_activity``: how many hold
a connection busy (in a statement or a transaction) and how many of those wait for a lock,
against the connections the replicas' pools may open. A pool that is full, or sessions that
wait on each other, would show there before the CPU figures say anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

__all__ = ["POOL_CONNECTIONS", "Saturation", "probing"]

# Each replica's pool: 10 connections kept, 10 more on demand (server/database.py).
POOL_CONNECTIONS = 20
_EVERY_SECS = 0.1

_SESSIONS = """
SELECT count(*) FILTER (WHERE state <> 'idle'),
       count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock')
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
"""


@dataclass
class Saturation:
    replicas: int
    loop_ms: list[float] = field(default_factory=list)
    """``/healthz`` latencies, every replica's."""
    busy: list[int] = field(default_factory=list)
    """Sessions busy at each sample (PostgreSQL only)."""
    waiting: list[int] = field(default_factory=list)
    """Of them, waiting for a lock."""

    @property
    def connections(self) -> int:
        return POOL_CONNECTIONS * self.replicas


@contextlib.asynccontextmanager
async def probing(urls: list[str], database_url: str | None) -> AsyncIterator[Saturation]:
    """Probe the replicas (and their PostgreSQL) until the block ends."""
    found = Saturation(len(urls))
    stop = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        probes = [asyncio.create_task(_loop_latency(session, url, found, stop)) for url in urls]
        if database_url is not None and database_url.startswith("postgresql"):
            probes.append(asyncio.create_task(_sessions(database_url, found, stop)))
        try:
            yield found
        finally:
            stop.set()
            await asyncio.gather(*probes)


async def _loop_latency(
    session: aiohttp.ClientSession, url: str, found: Saturation, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with session.get(f"{url}/healthz") as answer:
                await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # the load's own figures count failures
        else:
            found.loop_ms.append((time.monotonic() - started) * 1e3)
        await _pause(stop)


async def _sessions(database_url: str, found: Saturation, stop: asyncio.Event) -> None:
    import sqlalchemy as sa

    from pipecat_roark.server.database import create_engine

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            while not stop.is_set():
                busy, waiting = (await connection.execute(sa.text(_SESSIONS))).one()
                await connection.rollback()
                found.busy.append(int(busy))
                found.waiting.append(int(waiting))
                await _pause(stop)
    finally:
        await engine.dispose()


async def _pause(stop: asyncio.Event) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), _EVERY_SECS)
