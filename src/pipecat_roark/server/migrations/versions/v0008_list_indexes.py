"""Indexes for the lists at a million calls: each sort and the ended-reason filter by index.

The dashboard's sorts by length, median response and interruptions (newest-first order,
the first click on a column), the REST list's sorts by length and status, the ended
reasons a project has (one index seek per reason) and an agent's prompt revisions each read
an index instead of sorting or scanning every call.

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _desc_key(*columns: str) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(*(sa.column(name) for name in columns), sa.literal_column("-1"))


_STARTED: sa.ColumnElement[Any] = sa.func.coalesce(sa.column("started_at"), sa.column("created_at"))
_INDEXES: dict[str, list[Any]] = {
    "ix_calls_project_duration": [
        "project_id",
        _desc_key("duration_ms", "recording_duration_ms"),
        "id",
    ],
    "ix_calls_project_latency": ["project_id", _desc_key("response_latency_p50"), "id"],
    "ix_calls_project_interruptions": ["project_id", _desc_key("interruption_count"), "id"],
    "ix_calls_project_status": ["project_id", "status", "id"],
    "ix_calls_project_reason": ["project_id", "ended_reason", _STARTED, "id"],
    "ix_calls_agent_prompt": ["agent_id", "prompt_id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "calls", columns)
    _analyze()


def _analyze() -> None:
    """Statistics for the new indexes where the database keeps some: SQLite takes an index
    without statistics beside analysed ones for a narrow one, and sorts a million calls."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE calls")
        return
    analysed = bind.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).first()
    if analysed:
        for name in _INDEXES:
            op.execute(f"ANALYZE {name}")


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, "calls")
