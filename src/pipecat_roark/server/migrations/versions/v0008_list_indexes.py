"""Indexes for the lists at a million calls: each sort and the ended-reason filter by index.

The dashboard's sorts by length, median response and interruptions (newest-first order,
the first click on a column), the REST list's sorts by length and status, the ended
reasons a project has (one index seek per reason) and an agent's prompt revisions each read
an index instead of sorting or scanning every call.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pipecat_roark.server.migration_indexes import create_indexes, drop_indexes

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
    create_indexes(op, "calls", _INDEXES)


def downgrade() -> None:
    drop_indexes(op, "calls", _INDEXES)
