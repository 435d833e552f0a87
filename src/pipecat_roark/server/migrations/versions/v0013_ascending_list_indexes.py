"""Indexes for the calls list's sorts by length, median response and interruptions smallest
first (a column's second click): each sorted every call of the project, 1.5 s at a million.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pipecat_roark.server.migration_indexes import create_indexes, drop_indexes

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _last_key(*columns: str) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(
        *(sa.column(name) for name in columns), sa.literal_column(str(2**31 - 1))
    )


_INDEXES: dict[str, list[Any]] = {
    "ix_calls_project_duration_asc": [
        "project_id",
        _last_key("duration_ms", "recording_duration_ms"),
        "id",
    ],
    "ix_calls_project_latency_asc": ["project_id", _last_key("response_latency_p50"), "id"],
    "ix_calls_project_interruptions_asc": ["project_id", _last_key("interruption_count"), "id"],
}


def upgrade() -> None:
    create_indexes(op, "calls", _INDEXES)


def downgrade() -> None:
    drop_indexes(op, "calls", _INDEXES)
