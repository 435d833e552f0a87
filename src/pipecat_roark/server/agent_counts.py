"""Each agent's number of calls, and each of its prompt revisions', kept in their rows, so
the agents list and an agent's page read one row per agent or revision instead of counting
a million calls.

A call is counted once, when call-started gives it its agent and revision (neither changes
after), and uncounted when it is deleted. Neither writes the agent's row: each adds a row of
its own to ``agent_count_changes`` (+1 or -1), which locks nothing another request wants.
Every call of an agent would otherwise wait for the one before it to commit: 750 calls of
one agent starting within 4 s queued on its row while their replicas were busy, and held
the database's connections as they waited. The maintenance loop folds the changes into the
rows (``fold``); a reader adds the changes not folded yet (``agent_calls``,
``revision_calls``), so counts are exact at any moment. ``rebuild`` counts again from the
calls: the migrations that added the columns run it, and so does ``pipecat-roark
rebuild-counts`` (which first drops the changes, ``forget_changes``), after calls were
written straight into the database.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema

__all__ = [
    "agent_calls",
    "count_call",
    "fold",
    "forget_changes",
    "rebuild",
    "rebuild_revisions",
    "revision_calls",
    "uncount_call",
]

_agents = schema.agents
_prompts = schema.agent_prompts
_calls = schema.calls
_changes = schema.agent_count_changes


async def count_call(connection: AsyncConnection, agent_id: str, prompt_id: str | None) -> None:
    await _add(connection, agent_id, prompt_id, 1)


async def uncount_call(connection: AsyncConnection, agent_id: str, prompt_id: str | None) -> None:
    await _add(connection, agent_id, prompt_id, -1)


async def _add(
    connection: AsyncConnection, agent_id: str, prompt_id: str | None, calls: int
) -> None:
    await connection.execute(
        insert(_changes).values(agent_id=agent_id, prompt_id=prompt_id, calls=calls)
    )


def agent_calls() -> Any:
    """The agent's calls (in a select from ``agents``): its row's count and the changes not
    folded into it yet."""
    return _with_changes(_agents, _changes.c.agent_id)


def revision_calls() -> Any:
    """The revision's calls (in a select from ``agent_prompts``), as ``agent_calls``."""
    return _with_changes(_prompts, _changes.c.prompt_id)


def _with_changes(table: Any, owner: Any) -> Any:
    pending = (
        select(func.coalesce(func.sum(_changes.c.calls), 0))
        .where(owner == table.c.id)
        .correlate(table)
        .scalar_subquery()
    )
    return (table.c.call_count + pending).label("calls")


def fold(connection: Connection) -> int:
    """Move the changes committed so far into the agents' and revisions' rows; return how
    many there were. Rows are updated in id order, agents before revisions, as a delete
    takes an agent's row before anything else (a change committed while this runs stays
    for the next fold)."""
    taken = connection.execute(
        delete(_changes).returning(_changes.c.agent_id, _changes.c.prompt_id, _changes.c.calls)
    ).all()
    agents: Counter[str] = Counter()
    revisions: Counter[str] = Counter()
    for agent_id, prompt_id, calls in taken:
        agents[agent_id] += calls
        if prompt_id is not None:
            revisions[prompt_id] += calls
    for table, counted in ((_agents, agents), (_prompts, revisions)):
        for row_id in sorted(counted):
            if counted[row_id]:
                connection.execute(
                    update(table)
                    .where(table.c.id == row_id)
                    .values(call_count=table.c.call_count + counted[row_id])
                )
    return len(taken)


def forget_changes(connection: Connection) -> None:
    """Drop the changes not folded yet, before the counts are made again from the calls."""
    connection.execute(delete(_changes))


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
