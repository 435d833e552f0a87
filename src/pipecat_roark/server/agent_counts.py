"""Each agent's number of calls, kept in its row, so the agents list reads one row per agent
instead of counting a million calls.

A call is counted once, when call-started gives it its agent (a call's agent never changes
after), and uncounted when it is deleted. ``rebuild`` counts again from the calls: the
migration that added the column runs it, and so does ``pipecat-roark rebuild-counts``, after
calls were written straight into the database.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema

__all__ = ["count_call", "rebuild", "uncount_call"]

_agents = schema.agents
_calls = schema.calls


async def count_call(connection: AsyncConnection, agent_id: str) -> None:
    await _add(connection, agent_id, 1)


async def uncount_call(connection: AsyncConnection, agent_id: str) -> None:
    await _add(connection, agent_id, -1)


async def _add(connection: AsyncConnection, agent_id: str, calls: int) -> None:
    counted = _agents.c.call_count + calls
    await connection.execute(
        update(_agents).where(_agents.c.id == agent_id).values(call_count=counted)
    )


def rebuild(connection: Connection) -> int:
    """Every agent's count made again from its calls (an index count per agent); return how
    many agents there are."""
    counted = (
        select(func.count())
        .select_from(_calls)
        .where(_calls.c.agent_id == _agents.c.id)
        .scalar_subquery()
    )
    return int(connection.execute(update(_agents).values(call_count=counted)).rowcount)
