"""Removing calls: on request (DELETE /v1/call/{id}) and by age (``--retention-days``).

Blobs go first, then the rows in one transaction, so a failure part-way leaves a call that
can be deleted again rather than rows pointing at nothing unnoticed.
"""

from __future__ import annotations

from datetime import timedelta

from loguru import logger
from sqlalchemy import delete, select

from . import schema
from .agent_counts import uncount_call
from .agent_days import uncount_call as uncount_days
from .blobs import call_prefix
from .database import utcnow
from .reply_index import forget_call
from .search_index import forget_call as forget_search
from .state import ServerState

__all__ = ["delete_call", "sweep_retention"]


async def delete_call(state: ServerState, call_id: str) -> None:
    await state.blobs.delete_prefix(call_prefix(call_id))
    async with state.begin() as connection:
        # Rows are locked in the order ingest locks them, so that a delete waits for a
        # concurrent request instead of deadlocking with it: the agent (call-started takes
        # it first), the call, the agent's day (agent_days), its chunks (a chunk's request
        # and its upload take the call, then the chunk), then the latency rollups
        # (call-started and call-ended add to them last). A call's agent never changes once
        # set, so it is read before anything is locked.
        agent_id = await connection.scalar(
            select(schema.calls.c.agent_id).where(schema.calls.c.id == call_id)
        )
        if agent_id is not None:
            # FOR NO KEY UPDATE: the agent stays, so the calls that start meanwhile and
            # reference it (a key share lock each) need not wait for this delete.
            await connection.execute(
                select(schema.agents.c.id)
                .where(schema.agents.c.id == agent_id)
                .with_for_update(key_share=True)
            )
        # The agent the call has once its row is locked (call-started may have given it one
        # meanwhile, and has committed), and its revision: the call is uncounted from both
        # (agent_counts.py).
        locked = (
            await connection.execute(
                select(schema.calls.c.agent_id, schema.calls.c.prompt_id)
                .where(schema.calls.c.id == call_id)
                .with_for_update()
            )
        ).first()
        await connection.run_sync(uncount_days, call_id)  # its agent's day, after the call
        await connection.execute(delete(schema.chunks).where(schema.chunks.c.call_id == call_id))
        await connection.execute(
            delete(schema.stitch_jobs).where(schema.stitch_jobs.c.call_id == call_id)
        )
        await connection.run_sync(forget_call, call_id)
        await connection.run_sync(forget_search, call_id)
        await connection.execute(delete(schema.calls).where(schema.calls.c.id == call_id))
        if locked is not None and locked.agent_id is not None:
            await uncount_call(connection, locked.agent_id, locked.prompt_id)


async def sweep_retention(state: ServerState, batch: int = 100) -> int:
    """Delete calls created more than ``retention_days`` ago; return how many."""
    days = state.settings.retention_days
    if days is None or days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    deleted = 0
    while True:
        async with state.reader.connect() as connection:
            ids = list(
                await connection.scalars(
                    select(schema.calls.c.id).where(schema.calls.c.created_at < cutoff).limit(batch)
                )
            )
        for call_id in ids:
            await delete_call(state, call_id)
        deleted += len(ids)
        if len(ids) < batch:
            break
    if deleted:
        logger.info("retention: deleted {} calls older than {} days", deleted, days)
    return deleted
