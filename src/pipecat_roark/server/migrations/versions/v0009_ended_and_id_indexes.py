"""Indexes for the REST list's last two orders at a million calls: ``endedAt`` (calls that
have not ended as 1970) and ``title`` (no call has one, so it is by id).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pipecat_roark.server.migration_indexes import create_indexes, drop_indexes
from pipecat_roark.server.schema import epoch

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_INDEXES: dict[str, list[Any]] = {
    "ix_calls_project_ended": [
        "project_id",
        sa.func.coalesce(sa.column("ended_at"), epoch()),
        "id",
    ],
    "ix_calls_project_id": ["project_id", "id"],
}


def upgrade() -> None:
    create_indexes(op, "calls", _INDEXES)


def downgrade() -> None:
    drop_indexes(op, "calls", _INDEXES)
