"""Each agent's number of calls in its row, counted from the calls already stored: the
agents list read every call's index entry to count them.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "agents", sa.Column("call_count", sa.Integer(), nullable=False, server_default="0")
    )
    from pipecat_roark.server.agent_counts import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("call_count")
