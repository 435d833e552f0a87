"""Each agent's ended calls summed per UTC day, from the calls already stored: an agent's
trends read each of its calls' figures, about 2 s for one with 93 000 calls in 30 days.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_days",
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("calls_with_metrics", sa.Integer(), nullable=False),
        sa.Column("interruptions", sa.Integer(), nullable=False),
        sa.Column("assistant_turns", sa.Integer(), nullable=False),
        sa.Column("latencies", sa.Text(), nullable=False),
    )
    # Filled by 0017, which keeps the latencies packed: this revision kept them as text.


def downgrade() -> None:
    op.drop_table("agent_days")
