"""Requests that lock the same rows on PostgreSQL take them in one order, so one waits for
the other and neither is aborted as a deadlock: a delete beside call-started of the same
agent, a chunk's upload beside a request for the same chunk, and two calls of an agent each
moving onto the other's day. A deadlock that does happen is a 503 the client retries.

call-started that renames the agent takes the agent's row, then the call's, then adds the
call's replies to the agent's latency rollups (it counts the call without writing the
agent's row, so calls of one agent starting at once never wait for each other); call-ended
takes the call, then the rollups. A delete that took the
rollups before the agent would hold what call-started wants next while waiting for what it
holds. Here a transaction stands in for call-started between its two steps: it holds the
agent's row, the delete starts and waits, then the transaction takes the rollups and
commits. A chunk's request takes the call, then the chunk; so must its upload. Only the
order of locks decides each outcome, not how fast anything runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from benchmarks.latency_attribution import breakdowns
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pipecat_roark.server import schema
from pipecat_roark.server.agent_counts import agent_calls, fold
from pipecat_roark.server.calls import finalise_inactive
from pipecat_roark.server.database import create_engine
from tests.server.conftest import base_settings, open_harness, scale_settings
from tests.server.harness import Harness, pcm
from tests.server.services import MotoServer, PostgresCluster

# How long a lock wait may take before the test gives up: only a broken delete (one that
# never reaches its first lock) gets near it.
_LOCK_WAIT_DEADLINE_SECS = 120.0


async def _between_two_locks(
    database_url: str | None,
    first: sa.Executable,
    request: Coroutine[Any, Any, httpx.Response],
    second: sa.Executable,
) -> httpx.Response:
    """Run ``request`` while another transaction stands between two steps: it has run
    ``first``, waits until ``request`` waits for a lock, then runs ``second`` and commits.
    The answer to ``request``, which a deadlock would have made a 503."""
    assert database_url is not None
    engine = create_engine(database_url)
    try:
        async with engine.connect() as other:
            transaction = await other.begin()
            await other.execute(first)
            answer = asyncio.ensure_future(request)
            await _until_waiting_on_a_lock(engine, answer)
            held = await other.execute(second)
            if held.returns_rows:
                assert held.all(), "the second step has rows to lock"
            await transaction.commit()
        return await answer
    finally:
        await engine.dispose()


async def _until_waiting_on_a_lock(
    engine: AsyncEngine, request: asyncio.Future[Any], sessions: int = 1, table: str = ""
) -> None:
    """Return once ``sessions`` sessions of the database wait for a lock (in a statement on
    ``table``, if given); ``request`` must not end first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _LOCK_WAIT_DEADLINE_SECS
    while await _waiting_on_a_lock(engine, table) < sessions:
        assert not request.done(), (await request).text
        assert loop.time() < deadline, "the request never waited for a lock"
        await asyncio.sleep(0.05)


async def _waiting_on_a_lock(engine: AsyncEngine, table: str = "") -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND query LIKE :statement"
                ),
                {"statement": f"%{table}%"},
            )
            or 0
        )


@pytest.fixture
async def pg_server(tmp_path: Path, postgres: PostgresCluster) -> AsyncIterator[Harness]:
    """A server on PostgreSQL and the folder store."""
    settings = base_settings(tmp_path / "data").replace(database_url=postgres.create_database())
    async for server in open_harness(settings):
        yield server


@pytest.mark.asyncio
async def test_a_delete_waits_for_call_started_of_the_same_agent_instead_of_deadlocking(
    tmp_path: Path, postgres: PostgresCluster, s3: MotoServer
) -> None:
    settings = scale_settings(tmp_path / "data", postgres, s3)
    async for server in open_harness(settings):
        rng = random.Random(11)
        assert (await server.start("gone")).status_code == 200
        assert (await server.end("gone", metrics=breakdowns(rng))).status_code == 200
        assert (await server.start("kept")).status_code == 200
        assert (await server.end("kept", metrics=breakdowns(rng))).status_code == 200
        gone = await server.call_id("gone")
        async with server.state.reader.connect() as connection:
            agent_id = await connection.scalar(
                sa.select(schema.calls.c.agent_id).where(schema.calls.c.id == gone)
            )
            counted = await connection.scalar(
                sa.select(agent_calls()).where(schema.agents.c.id == agent_id)
            )
        assert agent_id is not None
        assert counted == 2

        rollups = schema.latency_rollups
        answer = await _between_two_locks(
            settings.database_url,
            # call-started's first step when it renames the agent: the agent's row...
            sa.update(schema.agents)
            .where(schema.agents.c.id == agent_id)
            .values(call_count=schema.agents.c.call_count),
            server.client.delete(f"/v1/call/{gone}", headers=server.headers),
            # ...and its last: the agent's rollups, as adding a call's replies does.
            sa.select(rollups.c.key).where(rollups.c.agent_id == agent_id).with_for_update(),
        )
        assert answer.status_code in (200, 204), answer.text

        assert (await server.get(f"/v1/call/{gone}")).status_code == 404
        assert (await server.get(f"/v1/call/{await server.call_id('kept')}")).status_code == 200
        async with server.state.reader.connect() as connection:
            counted = await connection.scalar(
                sa.select(agent_calls()).where(schema.agents.c.id == agent_id)
            )
            parts_left = await connection.scalar(
                sa.select(sa.func.count())
                .select_from(schema.reply_parts)
                .where(schema.reply_parts.c.call_id == gone)
            )
        assert counted == 1
        assert parts_left == 0


@pytest.mark.asyncio
async def test_an_upload_waits_for_a_request_of_the_same_chunk_instead_of_deadlocking(
    pg_server: Harness,
) -> None:
    # PostgreSQL and the folder store: the upload comes to the server, which records it.
    assert (await pg_server.start("up")).status_code == 200
    presigned = await pg_server.presign("up", 0)
    assert presigned.status_code == 200, presigned.text
    call = await pg_server.call_id("up")
    chunks = schema.chunks
    answer = await _between_two_locks(
        pg_server.settings.database_url,
        # A request for the chunk takes the call's row first...
        sa.update(schema.calls)
        .where(schema.calls.c.id == call)
        .values(updated_at=schema.calls.c.updated_at),
        pg_server.put(presigned.json()["uploadUrl"], pcm(3200)),
        # ...then the chunk's.
        sa.update(chunks)
        .where(chunks.c.call_id == call, chunks.c.chunk_index == 0)
        .values(url_expires_at=chunks.c.url_expires_at),
    )
    assert answer.status_code == 200, answer.text
    await _uploaded(pg_server, call, 3200)


@pytest.mark.asyncio
async def test_a_call_started_waits_for_no_other_request_on_its_agent_or_prompt(
    pg_server: Harness,
) -> None:
    # Another transaction has written the agent's and the prompt's counts (as the
    # maintenance loop folding counts in does; a delete locks the agent's row the same way)
    # and not committed; 20 call-starteds of the agent are stored meanwhile, as a burst of
    # calls starting would be, each counted once.
    prompt = {"agentId": "busy", "agentPrompt": "Be brief."}
    assert (await pg_server.start("first", **prompt)).status_code == 200
    agents, prompts = schema.agents, schema.agent_prompts
    async with _beside(pg_server) as (_engine, other):
        agent_id = await other.scalar(sa.select(agents.c.id).where(agents.c.custom_id == "busy"))
        for table, owner in ((agents, agents.c.id), (prompts, prompts.c.agent_id)):
            written = await other.execute(
                sa.update(table).where(owner == agent_id).values(call_count=table.c.call_count)
            )
            assert written.rowcount == 1
        answers = await asyncio.wait_for(
            asyncio.gather(*(pg_server.start(f"burst-{n}", **prompt) for n in range(20))),
            _LOCK_WAIT_DEADLINE_SECS,  # a wait for the held rows never ends
        )
        await other.rollback()
    assert [answer.status_code for answer in answers] == [200] * 20
    listed = (await pg_server.get("/agents.json")).json()["data"]
    assert [agent["calls"] for agent in listed if agent["customId"] == "busy"] == [21]
    async with pg_server.state.begin() as connection:
        await connection.run_sync(fold)  # (the maintenance loop may have folded some)
    listed = (await pg_server.get("/agents.json")).json()["data"]
    assert [agent["calls"] for agent in listed if agent["customId"] == "busy"] == [21]
    async with pg_server.state.reader.connect() as connection:
        kept = await connection.scalar(
            sa.select(agents.c.call_count).where(agents.c.custom_id == "busy")
        )
    assert kept == 21
    async with pg_server.state.reader.connect() as connection:
        pending = await connection.scalar(
            sa.select(sa.func.count()).select_from(schema.agent_count_changes)
        )
    assert pending == 0


@pytest.mark.asyncio
async def test_two_calls_moving_days_in_opposite_directions_wait_instead_of_deadlocking(
    pg_server: Harness,
) -> None:
    # Each call was ended by inactivity on the day call-started gave it; its late call-ended
    # moves it to the other's day. Each takes its old day and the other's: in any order but
    # one, each would hold the day the other wants next.
    first, second, days = FIRST, SECOND, schema.agent_days
    await _ended_by_inactivity(pg_server, east=first, west=second)
    assert await _days(pg_server) == {first: 1, second: 1}

    async with _beside(pg_server) as (engine, other):
        # A third request holds the first day, so both calls queue for it.
        await _lock_day(other, first)
        east = asyncio.ensure_future(pg_server.end("east", **_started_on(second)))
        # (the inactivity finaliser queued both calls' stitching, whose updates of the
        # calls' rows may wait too)
        await _until_waiting_on_a_lock(engine, east, table=days.name)
        west = asyncio.ensure_future(pg_server.end("west", **_started_on(first)))
        await _until_waiting_on_a_lock(engine, west, sessions=2, table=days.name)
        await other.commit()
        answers = await asyncio.gather(east, west)
    assert [answer.status_code for answer in answers] == [200, 200], [
        answer.text for answer in answers
    ]
    assert await _days(pg_server) == {first: 1, second: 1}
    calls = schema.calls
    async with pg_server.state.reader.connect() as connection:
        for name, day in (("east", second), ("west", first)):
            started = await connection.scalar(
                sa.select(calls.c.started_at).where(calls.c.pipecat_call_id == name)
            )
            assert started.date() == day


@pytest.mark.asyncio
async def test_a_request_postgresql_rolls_back_for_a_deadlock_is_a_503_and_its_retry_stores_it(
    pg_server: Harness,
) -> None:
    # Another transaction takes the SECOND day, then the FIRST: the reverse of the order the
    # call takes them in, which no request of the server's own does. PostgreSQL rolls the
    # call's request back (the other session waits ten minutes before it looks for a
    # deadlock); the client is told to retry, and its retry is stored whole.
    await _ended_by_inactivity(pg_server, moved=FIRST, stays=SECOND)
    async with _beside(pg_server) as (engine, other):
        await other.execute(sa.text("SET LOCAL deadlock_timeout = '10min'"))
        await _lock_day(other, SECOND)
        moved = asyncio.ensure_future(pg_server.end("moved", **_started_on(SECOND)))
        await _until_waiting_on_a_lock(engine, moved, table=schema.agent_days.name)
        await _lock_day(other, FIRST)
        answer = await moved
        await other.rollback()
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "conflict"
    assert await _days(pg_server) == {FIRST: 1, SECOND: 1}  # nothing written

    answer = await pg_server.end("moved", **_started_on(SECOND))
    assert answer.status_code == 200, answer.text
    assert await _days(pg_server) == {SECOND: 2}


FIRST, SECOND = date(2026, 1, 1), date(2026, 1, 2)


async def _ended_by_inactivity(server: Harness, **days: date) -> None:
    """Calls of one agent, each started on its day and ended by inactivity (so counted on
    that day), their call-ended still to come."""
    for name, day in days.items():
        answer = await server.start(name, agentId="mover", eventTimestamp=f"{day}T12:00:00Z")
        assert answer.status_code == 200, answer.text
    async with server.state.begin() as connection:
        assert len(await finalise_inactive(connection, 0)) == len(days)


@contextlib.asynccontextmanager
async def _beside(server: Harness) -> AsyncIterator[tuple[AsyncEngine, AsyncConnection]]:
    """Another session of the server's database in a transaction (which the caller ends),
    and an engine to watch the database's lock waits with."""
    assert server.settings.database_url is not None
    engine = create_engine(server.settings.database_url)
    try:
        async with engine.connect() as other:
            await other.begin()
            yield engine, other
    finally:
        await engine.dispose()


async def _lock_day(connection: AsyncConnection, day: date) -> None:
    days = schema.agent_days
    held = await connection.execute(
        sa.select(days.c.day).where(days.c.day == day).with_for_update()
    )
    assert held.all(), "the day has a row to lock"


def _started_on(day: date) -> dict[str, str]:
    return {"callStartedAt": f"{day}T10:00:00+00:00", "callEndedAt": f"{day}T10:05:00+00:00"}


async def _days(server: Harness) -> dict[date, int]:
    days = schema.agent_days
    async with server.state.reader.connect() as connection:
        rows = await connection.execute(sa.select(days.c.day, days.c.calls))
        return {day: calls for day, calls in rows}


async def _uploaded(server: Harness, call: str, size: int) -> None:
    async with server.state.reader.connect() as connection:
        stored = (
            await connection.execute(
                sa.select(schema.chunks.c.size, schema.chunks.c.uploaded_at).where(
                    schema.chunks.c.call_id == call
                )
            )
        ).one()
    assert stored.size == size
    assert stored.uploaded_at is not None
