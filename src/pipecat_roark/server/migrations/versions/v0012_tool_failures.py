"""Each call's number of failed tool calls, and an index of the calls with one: the calls
list's tool-error filter looked inside every call's tool records (JSON) until it had found
a page and a count.

The figure is counted from the calls already stored (``tool_failures.fill``); only the
calls a tool failed in are written.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from pipecat_roark.server.migration_indexes import create_indexes, drop_indexes

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_FAILED = sa.column("tool_failure_count") > sa.literal_column("0")
_STARTED: sa.ColumnElement[Any] = sa.func.coalesce(sa.column("started_at"), sa.column("created_at"))
_INDEXES: dict[str, list[Any]] = {
    "ix_calls_project_tool_failed": ["project_id", _STARTED, "id", "tool_failure_count"]
}


def upgrade() -> None:
    op.add_column("calls", sa.Column("tool_failure_count", sa.Integer(), nullable=True))
    from pipecat_roark.server.tool_failures import fill

    fill(op.get_bind())
    create_indexes(op, "calls", _INDEXES, where=_FAILED)


def downgrade() -> None:
    drop_indexes(op, "calls", _INDEXES)
    # Not a batch: on SQLite that copies the table and loses its expression indexes.
    op.drop_column("calls", "tool_failure_count")
