"""Deleting a call on PostgreSQL while ingest holds locks of the same agent: the delete waits
its turn, and neither side is aborted as a deadlock.

call-started takes the agent's row, then the call's, then adds the call's replies to the
agent's latency rollups; call-ended takes the call, then the rollups. A delete that took the
rollups before the agent would hold what call-started wants next while waiting for what it
holds. Here a transaction stands in for call-started between its two steps: it holds the
agent's row, the delete starts and waits, then the transaction takes the rollups and
commits. Only the order of locks decides the outcome, not how fast anything runs.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
import sqlalchemy as sa
from benchmarks.latency_attribution import breakdowns
from sqlalchemy.ext.asyncio import AsyncEngine

from pipecat_roark.server import schema
from pipecat_roark.server.database import create_engine
from tests.server.conftest import open_harness, scale_settings
from tests.server.services import MotoServer, PostgresCluster

# How long a lock wait may take before the test gives up: only a broken delete (one that
# never reaches its first lock) gets near it.
_LOCK_WAIT_DEADLINE_SECS = 120.0


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

        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as ingest:
                transaction = await ingest.begin()
                # call-started's first step: the agent's row.
                await ingest.execute(
                    sa.update(schema.agents)
                    .where(schema.agents.c.id == agent_id)
                    .values(call_count=schema.agents.c.call_count)
                )
                deleting = asyncio.ensure_future(
                    server.client.delete(f"/v1/call/{gone}", headers=server.headers)
                )
                loop = asyncio.get_running_loop()
                deadline = loop.time() + _LOCK_WAIT_DEADLINE_SECS
                while await _waiting_on_a_lock(engine) == 0:
                    assert not deleting.done(), (await deleting).text
                    assert loop.time() < deadline, "the delete never waited for the agent"
                    await asyncio.sleep(0.05)
                # Its last step: the rollups of the agent, as adding a call's replies does.
                rollups = schema.latency_rollups
                held = await ingest.execute(
                    sa.select(rollups.c.key).where(rollups.c.agent_id == agent_id).with_for_update()
                )
                assert held.all(), "the agent has latency rollups to lock"
                await transaction.commit()
            answer = await deleting
        finally:
            await engine.dispose()
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
