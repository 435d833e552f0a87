"""Every reply's latency parts, kept where a fleet view reads them fast.

Calls keep the ``latency_breakdown`` metrics the observer sent; decoding every call's metrics
for each agent page costs seconds at ten thousand calls. So ingest also writes them twice,
both exact: one row per part (``reply_parts``, the worst replies read off an index) and every
duration per agent, UTC hour and prompt revision (``latency_rollups``, packed as
``durations`` keeps them: percentiles from a few rows per day). ``rebuild`` makes both again
from the calls (``pipecat-roark rebuild-latency``, and the migration that created them).

Synchronous on purpose: the migration runs it as it is, the server through ``run_sync``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, timezone
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from . import schema
from .attribution import TOTAL, Part, replies_of
from .database import dialect_insert
from .durations import appended, count, packed, without
from .start_order import call_start, in_start_order

__all__ = [
    "RollupKey",
    "add_to_rollups",
    "forget_call",
    "grouped_durations",
    "index_call",
    "part_rows",
    "rebuild",
    "rollup_rows",
    "store_parts",
]

_parts = schema.reply_parts
_rollups = schema.latency_rollups
_calls = schema.calls
_KEY_LENGTHS = (128, 256, 32)
_ROLLUP_KEY = ("project_id", "agent_id", "day", "hour", "prompt_id", "key", "owner", "owner_kind")
_BATCH = 2000

RollupKey = tuple[str, str, date, int, str, str, str, str]
Progress = Callable[[int, int], None]


def index_call(connection: Connection, call_id: str) -> int:
    """Index an ended call's replies once it has an agent (call-started and call-ended may
    come in either order); return the rows written, 0 if there was nothing (yet) to do."""
    rows = _store_parts(connection, call_id)
    if rows:
        _add_to_rollups(connection, grouped_durations(rows))
    return len(rows)


def store_parts(connection: Connection, call_id: str) -> dict[RollupKey, list[float]]:
    """``index_call`` in two steps: the call's own rows, then (``add_to_rollups``) what they
    add to its agent's rollups, which every call of the agent writes, so that a write can
    keep its shared rows for last."""
    rows = _store_parts(connection, call_id)
    return grouped_durations(rows) if rows else {}


def add_to_rollups(connection: Connection, groups: dict[RollupKey, list[float]]) -> None:
    if groups:
        _add_to_rollups(connection, groups)


def _store_parts(connection: Connection, call_id: str) -> list[dict[str, Any]]:
    if connection.scalar(select(_parts.c.id).where(_parts.c.call_id == call_id).limit(1)):
        return []
    row = connection.execute(_call_query().where(_calls.c.id == call_id)).first()
    if row is None:
        return []
    rows = part_rows(row)
    if rows:
        connection.execute(insert(_parts), rows)
    return rows


def forget_call(connection: Connection, call_id: str) -> None:
    """Take a call's replies out of both tables (before the call is deleted)."""
    rows = connection.execute(select(_parts).where(_parts.c.call_id == call_id)).all()
    if not rows:
        return
    connection.execute(delete(_parts).where(_parts.c.call_id == call_id))
    for key, values in sorted(grouped_durations([row._asdict() for row in rows]).items()):
        match = [_rollups.c[name] == value for name, value in zip(_ROLLUP_KEY, key, strict=True)]
        stored = connection.scalar(select(_rollups.c.samples).where(*match).with_for_update())
        if stored is None:
            continue
        kept = without(stored, values)
        if kept:
            connection.execute(
                update(_rollups).where(*match).values(count=count(kept), samples=kept)
            )
        else:
            connection.execute(delete(_rollups).where(*match))


def rebuild(
    connection: Connection, progress: Progress | None = None, *, rollups: bool = True
) -> int:
    """Both tables made again from every ended call; return how many calls were read.

    Agent by agent in start order, so a day's durations are written once, whole, and memory
    holds one agent-day at a time whatever the number of calls. Without ``rollups``, the
    parts only: the migration that made the tables stored the durations as text, and the one
    that packed them makes the rollups from the parts."""
    connection.execute(delete(_parts))
    connection.execute(delete(_rollups))
    ended = (_calls.c.ended_received.is_(True), _calls.c.agent_id.is_not(None))
    total = connection.scalar(select(func.count()).select_from(_calls).where(*ended)) or 0
    agents = connection.scalars(select(_calls.c.agent_id).where(*ended).distinct()).all()
    done = 0
    for agent_id in sorted(agents):
        day: dict[RollupKey, list[float]] = {}
        calls = _call_query().where(_calls.c.agent_id == agent_id)
        for batch in in_start_order(connection, calls, _BATCH):
            rows: list[dict[str, Any]] = []
            for call in batch:
                call_rows = part_rows(call)
                if call_rows and day and _day_of(call_rows[0]) != _day_of(next(iter(day))):
                    _write_rollups(connection, day if rollups else {})
                    day = {}
                for key, values in grouped_durations(call_rows).items():
                    day.setdefault(key, []).extend(values)
                rows += call_rows
            if rows:
                connection.execute(insert(_parts), rows)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        _write_rollups(connection, day if rollups else {})
    return done


def _call_query() -> Any:
    c = _calls.c
    return select(
        c.id, c.project_id, c.agent_id, c.prompt_id, call_start.label("started"), c.metrics
    ).where(c.ended_received.is_(True), c.agent_id.is_not(None))


def part_rows(call: Any) -> list[dict[str, Any]]:
    """One row per part of each reply, and one for the reply's total (also what a bulk
    writer such as ``benchmarks/dataset.py`` inserts)."""
    started = call.started.astimezone(timezone.utc)
    rows: list[dict[str, Any]] = []
    for index, reply in enumerate(replies_of(call.id, started.date(), call.metrics)):
        parts: dict[Part, float] = defaultdict(float)
        for part, secs in reply.parts.items():
            parts[_clipped(part)] += secs
        for (key, owner, kind), secs in [(TOTAL, reply.total), *parts.items()]:
            rows.append(
                {
                    "project_id": call.project_id,
                    "agent_id": call.agent_id,
                    "call_id": call.id,
                    "prompt_id": call.prompt_id or "",
                    "started_at": started,
                    "reply_index": index,
                    "turn_index": reply.turn_index,
                    "offset_ms": reply.offset_ms,
                    "reply_secs": reply.total,
                    "key": key,
                    "owner": owner,
                    "owner_kind": kind,
                    "secs": secs,
                }
            )
    return rows


def _clipped(part: Part) -> Part:
    key, owner, kind = (name[:length] for name, length in zip(part, _KEY_LENGTHS, strict=True))
    return key, owner, kind


def _day_of(row: dict[str, Any] | RollupKey) -> tuple[str, str, date]:
    if isinstance(row, dict):
        return row["project_id"], row["agent_id"], row["started_at"].date()
    return row[0], row[1], row[2]


def grouped_durations(rows: Iterable[dict[str, Any]]) -> dict[RollupKey, list[float]]:
    """The rows' durations by rollup row."""
    out: dict[RollupKey, list[float]] = defaultdict(list)
    for row in rows:
        started = row["started_at"].astimezone(timezone.utc)
        key = (
            row["project_id"],
            row["agent_id"],
            started.date(),
            started.hour,
            row["prompt_id"],
            row["key"],
            row["owner"],
            row["owner_kind"],
        )
        out[key].append(float(row["secs"]))
    return out


def rollup_rows(groups: dict[RollupKey, list[float]]) -> list[dict[str, Any]]:
    """The ``latency_rollups`` rows of grouped durations, sorted: concurrent writers on
    PostgreSQL then lock rows in the same order."""
    return [
        {
            **dict(zip(_ROLLUP_KEY, key, strict=True)),
            "count": len(values),
            "samples": packed(values),
        }
        for key, values in sorted(groups.items())
    ]


def _add_to_rollups(connection: Connection, groups: dict[RollupKey, list[float]]) -> None:
    statement = dialect_insert(connection, _rollups).values(rollup_rows(groups))
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=list(_ROLLUP_KEY),
            set_={
                "count": _rollups.c.count + statement.excluded.count,
                "samples": appended(_rollups.c.samples, statement.excluded.samples),
            },
        )
    )


def _write_rollups(connection: Connection, groups: dict[RollupKey, list[float]]) -> None:
    if groups:
        connection.execute(insert(_rollups), rollup_rows(groups))
