"""Each agent's day keeps its latencies packed as doubles (server/durations.py), summed again
from the calls: kept as text, the busiest agent's 30 days took 90 ms to parse and sort on
each of its pages.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_COLUMNS = (
    "project_id", "agent_id", "day", "calls", "calls_with_metrics", "interruptions",
    "assistant_turns", "latencies",
)  # fmt: skip
_WRITE = 500


def upgrade() -> None:
    op.drop_table("agent_days")
    _create(sa.LargeBinary())
    from pipecat_roark.server.agent_days import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    days = sa.table("agent_days", *(sa.column(name) for name in _COLUMNS))
    rows = [row._asdict() for row in bind.execute(sa.select(days))]
    op.drop_table("agent_days")
    _create(sa.Text())
    for row in rows:
        values = np.frombuffer(bytes(row["latencies"]), dtype="<f8").tolist()
        row["latencies"] = ",".join(map(repr, values))
    for start in range(0, len(rows), _WRITE):
        bind.execute(days.insert(), rows[start : start + _WRITE])


def _create(latencies: Any) -> None:
    op.create_table(
        "agent_days",
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("calls_with_metrics", sa.Integer(), nullable=False),
        sa.Column("interruptions", sa.Integer(), nullable=False),
        sa.Column("assistant_turns", sa.Integer(), nullable=False),
        sa.Column("latencies", latencies, nullable=False),
    )
