"""Each agent's ended calls summed per UTC day, one row per (agent, day), so an agent's
trends read a row per day instead of each call's figures: about 2 s for an agent with
93 000 calls in 30 days.

A call counts once it is ENDED and has an agent, on the day it started, with its stored
figures (``analytics.call_figures``). Three writes change what a call counts as:
call-started (its agent, and its start if call-ended gave none), call-ended (its figures
and start; after an inactivity timeout the call already counted, without figures) and the
inactivity finaliser (its status). Each runs inside ``recounted``: the call is uncounted
before the write and counted after it, so the sums stay exact whatever changed, its day
included. A delete uncounts it. The rows are locked after the call's own and its agent's,
in day order, before the latency rollups (docs/server.md). ``rebuild`` sums them again
from the calls: the migration that made the table runs it, and so does ``pipecat-roark
rebuild-counts``.

Synchronous on purpose, as ``reply_index`` is: the migration runs it as it is, the server
through ``run_sync``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema
from .analytics import DayAggregate, summed
from .database import dialect_insert
from .durations import Durations, appended, packed, unpacked, without
from .start_order import call_start, in_start_order

__all__ = ["count_call", "rebuild", "recounted", "trend_days", "uncount_call"]

_days = schema.agent_days
_calls = schema.calls
_KEY = ("project_id", "agent_id", "day")
_ENDED = "ENDED"
_BATCH = 2000


@dataclass
class _Sums:
    calls: int = 0
    calls_with_metrics: int = 0
    interruptions: int = 0
    assistant_turns: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, row: Any) -> None:
        self.calls += 1
        if row.response_latencies is None:  # no metrics: a call, nothing more
            return
        self.calls_with_metrics += 1
        self.interruptions += row.interruption_count or 0
        self.assistant_turns += row.assistant_turn_count or 0
        self.latencies += map(float, row.response_latencies)

    def values(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "calls_with_metrics": self.calls_with_metrics,
            "interruptions": self.interruptions,
            "assistant_turns": self.assistant_turns,
            "latencies": packed(self.latencies),
        }


def _figures() -> Any:
    c = _calls.c
    return select(
        c.id,
        c.project_id,
        c.agent_id,
        c.status,
        call_start.label("started"),
        c.response_latencies,
        c.interruption_count,
        c.assistant_turn_count,
    )


def _key(row: Any) -> tuple[str, str, date]:
    return row.project_id, row.agent_id, row.started.astimezone(timezone.utc).date()


def _counted(connection: Connection, call_id: str) -> tuple[tuple[str, str, date], _Sums] | None:
    """What the call adds to its agent's day, if it counts."""
    row = connection.execute(_figures().where(_calls.c.id == call_id)).first()
    if row is None or row.status != _ENDED or row.agent_id is None:
        return None
    sums = _Sums()
    sums.add(row)
    return _key(row), sums


def count_call(connection: Connection, call_id: str) -> None:
    counted = _counted(connection, call_id)
    if counted is None:
        return
    key, sums = counted
    statement = dialect_insert(connection, _days).values(
        **dict(zip(_KEY, key, strict=True)), **sums.values()
    )
    new = statement.excluded
    joined = appended(_days.c.latencies, new.latencies)
    added = {name: _days.c[name] + new[name] for name in sums.values() if name != "latencies"}
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=list(_KEY), set_={**added, "latencies": joined}
        )
    )


def uncount_call(connection: Connection, call_id: str, moving_to: datetime | None = None) -> None:
    """Take the call out of its day. ``moving_to``: the start the write after this gives
    it, whose day is then locked here too, the two in day order: two calls of an agent
    moving between the same two days, each the other way, would otherwise each hold the
    day the other counts itself on next."""
    counted = _counted(connection, call_id)
    if counted is None:
        return
    key, sums = counted
    project_id, agent_id, day = key
    days = {day} if moving_to is None else {day, moving_to.astimezone(timezone.utc).date()}
    locked = connection.execute(
        select(_days)
        .where(_days.c.project_id == project_id, _days.c.agent_id == agent_id)
        .where(_days.c.day.in_(sorted(days)))
        .order_by(_days.c.day)
        .with_for_update()
    ).all()
    stored = next((row for row in locked if row.day == day), None)
    match = [_days.c[name] == value for name, value in zip(_KEY, key, strict=True)]
    if stored is None:  # written straight into the database, never counted
        return
    if stored.calls <= 1:
        connection.execute(delete(_days).where(*match))
        return
    connection.execute(
        update(_days)
        .where(*match)
        .values(
            calls=stored.calls - 1,
            calls_with_metrics=stored.calls_with_metrics - sums.calls_with_metrics,
            interruptions=stored.interruptions - sums.interruptions,
            assistant_turns=stored.assistant_turns - sums.assistant_turns,
            latencies=without(stored.latencies, sums.latencies),
        )
    )


@contextlib.asynccontextmanager
async def recounted(
    connection: AsyncConnection,
    call_id: str,
    *,
    was_ended: bool,
    ends: bool = False,
    starts: datetime | None = None,
) -> AsyncIterator[None]:
    """Around a write that may change what the call counts as: uncounted before, counted
    after. ``was_ended``: the call is ENDED as the write begins (read under the call's
    lock); ``ends``: the write makes it ENDED; ``starts``: the start the write gives it, if
    it may move the call to another day. Only an ended call counts, so a call that is
    neither is left alone: no read at all, which keeps the common case (call-started, or
    call-ended of a call still in progress) as short as it was, since on SQLite every
    statement in a write transaction is time the other writers wait."""
    if was_ended:
        await connection.run_sync(uncount_call, call_id, starts)
    yield
    if was_ended or ends:
        await connection.run_sync(count_call, call_id)


def trend_days(
    connection: Connection, project_id: str, agent_id: str, first: date, last: date
) -> tuple[dict[date, DayAggregate], DayAggregate]:
    """The agent's days from ``first`` to ``last`` that had ended calls, and all of them
    together."""
    rows = connection.execute(
        select(_days).where(
            _days.c.project_id == project_id,
            _days.c.agent_id == agent_id,
            _days.c.day >= first,
            _days.c.day <= last,
        )
    ).all()
    days: dict[date, DayAggregate] = {}
    every: list[Durations] = []
    for row in rows:
        latencies = unpacked([row.latencies])
        every.append(latencies)
        days[row.day] = summed(
            row.calls, row.calls_with_metrics, latencies, row.interruptions, row.assistant_turns
        )
    total = summed(
        sum(d.calls for d in days.values()),
        sum(d.calls_with_metrics for d in days.values()),
        np.concatenate(every) if every else np.empty(0),
        sum(d.interruptions for d in days.values()),
        sum(d.assistant_turns for d in days.values()),
    )
    return days, total


def rebuild(connection: Connection, progress: Callable[[int, int], None] | None = None) -> int:
    """Every row summed again from the calls, an agent at a time in start order (a day is
    written once, whole); return how many calls were counted."""
    connection.execute(delete(_days))
    counts = (_calls.c.status == _ENDED, _calls.c.agent_id.is_not(None))
    total = connection.scalar(select(func.count()).select_from(_calls).where(*counts)) or 0
    agents = connection.scalars(select(_calls.c.agent_id).where(*counts).distinct()).all()
    done = 0
    for agent_id in sorted(agents):
        day: tuple[tuple[str, str, date], _Sums] | None = None
        calls = _figures().where(*counts, _calls.c.agent_id == agent_id)
        for batch in in_start_order(connection, calls, _BATCH):
            for row in batch:
                key = _key(row)
                if day is not None and day[0] != key:
                    _write(connection, *day)
                    day = None
                if day is None:
                    day = (key, _Sums())
                day[1].add(row)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        if day is not None:
            _write(connection, *day)
    return done


def _write(connection: Connection, key: tuple[str, str, date], sums: _Sums) -> None:
    connection.execute(insert(_days).values(**dict(zip(_KEY, key, strict=True)), **sums.values()))
