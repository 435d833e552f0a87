"""The latency rollups' durations packed as doubles (server/durations.py), made again from
each reply's parts: kept as text, a busy agent's month of durations took 200 ms to parse on
each attribution.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_KEY = ("project_id", "agent_id", "day", "hour", "prompt_id", "key", "owner", "owner_kind")
_READ = 20_000
_WRITE = 2_000


def upgrade() -> None:
    _make(sa.LargeBinary(), lambda values: np.asarray(values, dtype="<f8").tobytes())


def downgrade() -> None:
    _make(sa.Text(), lambda values: ",".join(map(repr, values)))


def _make(samples: Any, encoded: Callable[[array[float]], Any]) -> None:
    """The table made again with ``samples`` of this type, filled from ``reply_parts``."""
    op.drop_table("latency_rollups")
    op.create_table(
        "latency_rollups",
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("hour", sa.Integer(), primary_key=True),
        sa.Column("prompt_id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(256), primary_key=True),
        sa.Column("owner_kind", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("samples", samples, nullable=False),
    )
    groups = _durations(op.get_bind())
    rollups = sa.table(
        "latency_rollups", *(sa.column(name) for name in (*_KEY, "count", "samples"))
    )
    keys = sorted(groups)
    for start in range(0, len(keys), _WRITE):
        rows = []
        for key in keys[start : start + _WRITE]:
            values = groups.pop(key)  # let each row's durations go once written
            row = dict(zip(_KEY, key, strict=True))
            rows.append({**row, "count": len(values), "samples": encoded(values)})
        op.get_bind().execute(rollups.insert(), rows)


def _durations(bind: sa.Connection) -> dict[tuple[Any, ...], array[float]]:
    """Every part's duration by rollup row (UTC day and hour), in one pass over the parts:
    eight bytes a duration in memory, 120 MB for a million calls."""
    parts = sa.table(
        "reply_parts",
        *(sa.column(name) for name in ("id", "project_id", "agent_id", "prompt_id", "key")),
        *(sa.column(name) for name in ("owner", "owner_kind", "secs", "started_at")),
    )
    if bind.dialect.name == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC
        day: Any = sa.func.substr(parts.c.started_at, 1, 10)
        hour: Any = sa.cast(sa.func.substr(parts.c.started_at, 12, 2), sa.Integer)
    else:
        utc = sa.func.timezone("UTC", parts.c.started_at)
        day = sa.cast(utc, sa.Date)
        hour = sa.cast(sa.extract("hour", utc), sa.Integer)
    c = parts.c
    query = sa.select(
        c.id, c.project_id, c.agent_id, day, hour, c.prompt_id, c.key, c.owner, c.owner_kind
    ).add_columns(c.secs)
    groups: dict[tuple[Any, ...], array[float]] = {}
    after = 0
    while True:
        batch = bind.execute(query.where(c.id > after).order_by(c.id).limit(_READ)).all()
        for row in batch:
            key = tuple(row[1:9])
            found = groups.get(key)
            if found is None:
                found = groups[key] = array("d")
            found.append(row[9])
        if len(batch) < _READ:
            return groups
        after = batch[-1][0]
