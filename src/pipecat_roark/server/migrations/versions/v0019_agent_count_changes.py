"""Calls counted and uncounted as rows of their own, folded into the agents' and revisions'
counts later: call-started no longer writes its agent's row, which every call of the agent
waited on.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_count_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("agent_id", sa.String(36), nullable=False),
        sa.Column("prompt_id", sa.String(36), nullable=True),
        sa.Column("calls", sa.Integer(), nullable=False),
    )
    op.create_index("ix_agent_count_changes_agent", "agent_count_changes", ["agent_id"])
    op.create_index("ix_agent_count_changes_prompt", "agent_count_changes", ["prompt_id"])


def downgrade() -> None:
    from pipecat_roark.server.agent_counts import fold

    fold(op.get_bind())
    op.drop_table("agent_count_changes")
