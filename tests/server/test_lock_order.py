"""Requests that lock the same rows on PostgreSQL take them in one order, so one waits for
the other and neither is aborted as a deadlock: a delete beside call-started of the same
agent, and a chunk's upload beside a request for the same chunk.

call-started takes the agent's row, then the call's, then adds the call's replies to the
agent's latency rollups; call-ended takes the call, then the rollups. A delete that took the
rollups before the agent would hold what call-started wants next while waiting for what it
holds. Here a transaction stands in for call-started between its two steps: it holds the
agent's row, the delete starts and waits, then the transaction takes the rollups and
commits. A chunk's request takes the call, then the chunk; so must its upload. Only the
order of locks decides each outcome, not how fast anything runs.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from benchmarks.latency_attribution import breakdowns
from sqlalchemy.ext.asyncio import AsyncEngine

from pipecat_roark.server import schema
from pipecat_roark.server.database import create_engine
from tests.server.conftest import base_settings, open_harness, scale_settings
from tests.server.harness import Harness, pcm
from tests.server.services import MotoServer, PostgresCluster

# How long a lock wait may take before the test gives up: only a broken delete (one that
# never reaches its first lock) gets near it.
_LOCK_WAIT_DEADLINE_SECS = 120.0


async def _between_two_locks(
    database_url: str,
    first: sa.Executable,
    request: Coroutine[Any, Any, httpx.Response],
    second: sa.Executable,
) -> httpx.Response:
    """Run ``request`` while another transaction stands between two steps: it has run
    ``first``, waits until ``request`` waits for a lock, then runs ``second`` and commits.
    The answer to ``request``, which a deadlock would have made a 500."""
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


async def _until_waiting_on_a_lock(engine: AsyncEngine, request: asyncio.Future[Any]) -> None:
    """Return once a session of the database waits for a lock; ``request`` must not end first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _LOCK_WAIT_DEADLINE_SECS
    while await _waiting_on_a_lock(engine) == 0:
        assert not request.done(), (await request).text
        assert loop.time() < deadline, "the request never waited for a lock"
        await asyncio.sleep(0.05)


async def _waiting_on_a_lock(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            await connection.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


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
                sa.select(schema.agents.c.call_count).where(schema.agents.c.id == agent_id)
            )
        assert agent_id is not None
        assert counted == 2

        rollups = schema.latency_rollups
        answer = await _between_two_locks(
            settings.database_url,
            # call-started's first step: the agent's row...
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
                sa.select(schema.agents.c.call_count).where(schema.agents.c.id == agent_id)
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
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    # PostgreSQL and the folder store: the upload comes to the server, which records it.
    settings = base_settings(tmp_path / "data").replace(database_url=postgres.create_database())
    async for server in open_harness(settings):
        assert (await server.start("up")).status_code == 200
        presigned = await server.presign("up", 0)
        assert presigned.status_code == 200, presigned.text
        call = await server.call_id("up")
        chunks = schema.chunks
        answer = await _between_two_locks(
            settings.database_url,
            # A request for the chunk takes the call's row first...
            sa.update(schema.calls)
            .where(schema.calls.c.id == call)
            .values(updated_at=schema.calls.c.updated_at),
            server.put(presigned.json()["uploadUrl"], pcm(3200)),
            # ...then the chunk's.
            sa.update(chunks)
            .where(chunks.c.call_id == call, chunks.c.chunk_index == 0)
            .values(url_expires_at=chunks.c.url_expires_at),
        )
        assert answer.status_code == 200, answer.text
        await _uploaded(server, call, 3200)


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
