"""Reading an agent's replies back from the latency index (server/reply_index.py).

Percentiles come from the daily rollups, a few rows per day; the worst and slowest replies
from ``reply_parts`` through its (agent, part, duration) index, so neither grows with the
number of calls an agent has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema
from .attribution import TOTAL, Part, Reply, Samples
from .durations import unpacked

__all__ = ["load_samples", "load_slowest", "load_worst"]

_rollups = schema.latency_rollups
_parts = schema.reply_parts


async def load_samples(
    connection: AsyncConnection,
    project_id: str,
    agent_id: str,
    first: date,
    last: date,
    *,
    prompt_id: str | None = None,
) -> dict[date, Samples]:
    """Every duration of each part per UTC day, ``first`` to ``last`` inclusive, of the
    calls that ran with ``prompt_id`` if it is given."""
    query = select(
        _rollups.c.day, _rollups.c.key, _rollups.c.owner, _rollups.c.owner_kind, _rollups.c.samples
    ).where(
        _rollups.c.project_id == project_id,
        _rollups.c.agent_id == agent_id,
        _rollups.c.day >= first,
        _rollups.c.day <= last,
    )
    if prompt_id is not None:
        query = query.where(_rollups.c.prompt_id == prompt_id)
    stored: dict[date, dict[Part, list[bytes]]] = defaultdict(lambda: defaultdict(list))
    for row in await connection.execute(query):
        stored[row.day][(row.key, row.owner, row.owner_kind)].append(row.samples)
    return {
        day: {part: unpacked(rows) for part, rows in parts.items()} for day, parts in stored.items()
    }


async def load_worst(
    connection: AsyncConnection,
    project_id: str,
    agent_id: str,
    window: tuple[datetime, datetime],
    parts: Iterable[Part],
    limit: int,
    *,
    prompt_id: str | None = None,
) -> dict[Part, list[Reply]]:
    """For each part, the ``limit`` replies in which it took longest, longest first."""
    out: dict[Part, list[Reply]] = {}
    for part in parts:
        query = _in_window(project_id, agent_id, window, prompt_id).where(*_is(part))
        rows = await connection.execute(query.order_by(_parts.c.secs.desc()).limit(limit))
        out[part] = [_reply(row, {part: row.secs}) for row in rows]
    return out


async def load_slowest(
    connection: AsyncConnection,
    project_id: str,
    agent_id: str,
    window: tuple[datetime, datetime],
    limit: int,
) -> list[Reply]:
    """The ``limit`` slowest replies, slowest first, each with all its parts."""
    query = _in_window(project_id, agent_id, window, None).where(*_is(TOTAL))
    slowest = (await connection.execute(query.order_by(_parts.c.secs.desc()).limit(limit))).all()
    if not slowest:
        return []
    replies = {(row.call_id, row.reply_index): row for row in slowest}
    parts: dict[tuple[str, int], dict[Part, float]] = defaultdict(dict)
    rows = await connection.execute(
        select(_parts).where(_parts.c.call_id.in_({row.call_id for row in slowest}))
    )
    for row in rows:
        part = (row.key, row.owner, row.owner_kind)
        if (row.call_id, row.reply_index) in replies and part != TOTAL:
            parts[(row.call_id, row.reply_index)][part] = row.secs
    return [_reply(row, parts[(row.call_id, row.reply_index)]) for row in slowest]


def _in_window(
    project_id: str, agent_id: str, window: tuple[datetime, datetime], prompt_id: str | None
) -> Any:
    query = select(_parts).where(
        _parts.c.project_id == project_id,
        _parts.c.agent_id == agent_id,
        _parts.c.started_at >= window[0],
        _parts.c.started_at < window[1],
    )
    return query if prompt_id is None else query.where(_parts.c.prompt_id == prompt_id)


def _is(part: Part) -> tuple[ColumnElement[bool], ...]:
    key, owner, kind = part
    return _parts.c.key == key, _parts.c.owner == owner, _parts.c.owner_kind == kind


def _reply(row: Any, parts: dict[Part, float]) -> Reply:
    return Reply(
        call_id=row.call_id,
        day=row.started_at.astimezone(timezone.utc).date(),
        turn_index=row.turn_index,
        total=row.reply_secs,
        offset_ms=row.offset_ms,
        parts=parts,
    )
