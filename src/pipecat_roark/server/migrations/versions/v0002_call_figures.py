"""Call figures (turns, tool calls, response latencies, interruptions) and list indexes.

The figures are derived from what call-ended stored, so calls stored before this revision
are filled in here. The two indexes order a project's (or an agent's) calls by when they
started, newest first, without sorting the whole table.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 500


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _started() -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.column("started_at"), sa.column("created_at"))


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("turn_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("assistant_turn_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tool_call_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("interruption_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("response_latencies", _json(), nullable=True))
        batch.add_column(sa.Column("response_latency_p50", sa.Float(), nullable=True))
    op.create_index("ix_calls_project_started", "calls", ["project_id", _started(), "id"])
    op.create_index("ix_calls_agent_started", "calls", ["agent_id", _started(), "id"])
    _backfill()


def _backfill() -> None:
    from pipecat_roark.server.analytics import call_figures

    calls = sa.table(
        "calls",
        sa.column("id", sa.String()),
        sa.column("ended_received", sa.Boolean()),
        sa.column("transcript", _json()),
        sa.column("tool_calls", _json()),
        sa.column("metrics", _json()),
        sa.column("turn_count", sa.Integer()),
        sa.column("assistant_turn_count", sa.Integer()),
        sa.column("tool_call_count", sa.Integer()),
        sa.column("interruption_count", sa.Integer()),
        sa.column("response_latencies", _json()),
        sa.column("response_latency_p50", sa.Float()),
    )
    connection = op.get_bind()
    last = ""
    while True:
        rows = connection.execute(
            sa.select(calls.c.id, calls.c.transcript, calls.c.tool_calls, calls.c.metrics)
            .where(calls.c.ended_received.is_(True), calls.c.id > last)
            .order_by(calls.c.id)
            .limit(_BATCH)
        ).all()
        for row in rows:
            connection.execute(
                calls.update()
                .where(calls.c.id == row.id)
                .values(**_own(call_figures(row.transcript, row.tool_calls, row.metrics)))
            )
        if len(rows) < _BATCH:
            return
        last = rows[-1].id


def _own(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures this revision adds: later revisions add and fill their own."""
    return {name: value for name, value in figures.items() if name in _FIGURES}


_FIGURES = (
    "turn_count",
    "assistant_turn_count",
    "tool_call_count",
    "interruption_count",
    "response_latencies",
    "response_latency_p50",
)


def downgrade() -> None:
    op.drop_index("ix_calls_agent_started", table_name="calls")
    op.drop_index("ix_calls_project_started", table_name="calls")
    with op.batch_alter_table("calls") as batch:
        for name in reversed(_FIGURES):
            batch.drop_column(name)
