"""Each agent's number of calls, and each of its prompt revisions', kept in their rows, so
the agents list and an agent's page read one row per agent or revision instead of counting
a million calls.

A call is counted once, when call-started gives it its agent and revision (neither changes
after), and uncounted when it is deleted. A revision's count is changed only with its
agent's row locked first (call-started takes it before the call; a delete before anything),
so its row adds no new lock order. ``rebuild`` counts again from the calls: the migrations
that added the columns run it, and so does ``pipecat-roark rebuild-counts``, after calls
were written straight into the database.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema

__all__ = ["count_call", "rebuild", "rebuild_revisions", "uncount_call"]

_agents = schema.agents
_prompts = schema.agent_prompts
_calls = schema.calls


async def count_call(connection: AsyncConnection, agent_id: str, prompt_id: str | None) -> None:
    await _add(connection, agent_id, prompt_id, 1)


async def uncount_call(connection: AsyncConnection, agent_id: str, prompt_id: str | None) -> None:
    await _add(connection, agent_id, prompt_id, -1)


async def _add(
    connection: AsyncConnection, agent_id: str, prompt_id: str | None, calls: int
) -> None:
    counted = _agents.c.call_count + calls
    await connection.execute(
        update(_agents).where(_agents.c.id == agent_id).values(call_count=counted)
    )
    if prompt_id is not None:
        await connection.execute(
            update(_prompts)
            .where(_prompts.c.id == prompt_id)
            .values(call_count=_prompts.c.call_count + calls)
        )


def rebuild(connection: Connection) -> int:
    """Every agent's count made again from its calls (an index count per agent); return how
    many agents there are. (Its revisions': ``rebuild_revisions``.)"""
    counted = (
        select(func.count())
        .select_from(_calls)
        .where(_calls.c.agent_id == _agents.c.id)
        .scalar_subquery()
    )
    return int(connection.execute(update(_agents).values(call_count=counted)).rowcount)


def rebuild_revisions(connection: Connection) -> int:
    """Every revision's count made again from its calls (through the calls' (agent,
    prompt) index); return how many revisions there are."""
    counted = (
        select(func.count())
        .select_from(_calls)
        .where(_calls.c.agent_id == _prompts.c.agent_id, _calls.c.prompt_id == _prompts.c.id)
        .scalar_subquery()
    )
    return int(connection.execute(update(_prompts).values(call_count=counted)).rowcount)
