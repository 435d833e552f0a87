"""The search index of calls: a row of searched text per ended call, filled from the calls
already stored; an FTS5 table on SQLite, a GIN index on PostgreSQL.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_search",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("words", sa.Text(), nullable=False),
        sa.UniqueConstraint("call_id"),
    )
    from pipecat_roark.server.search_fts import create_statements

    for statement in create_statements(op.get_bind().dialect.name):
        op.execute(statement)
    from pipecat_roark.server.search_index import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    from pipecat_roark.server.search_fts import drop_statements

    for statement in drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("call_search")
