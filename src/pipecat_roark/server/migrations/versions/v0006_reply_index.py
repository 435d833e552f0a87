"""Each reply's latency parts and their daily rollups, filled from the calls already stored.

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pipecat_roark.server.schema import UTCDateTime

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reply_parts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), nullable=False),
        sa.Column("prompt_id", sa.String(36), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("reply_index", sa.Integer(), nullable=False),
        sa.Column("turn_index", sa.Integer(), nullable=True),
        sa.Column("offset_ms", sa.BigInteger(), nullable=True),
        sa.Column("reply_secs", sa.Float(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("owner_kind", sa.String(32), nullable=False),
        sa.Column("secs", sa.Float(), nullable=False),
        sa.UniqueConstraint(
            "call_id", "reply_index", "key", "owner", "owner_kind", name="uq_reply_parts_part"
        ),
    )
    op.create_index(
        "ix_reply_parts_worst",
        "reply_parts",
        ["project_id", "agent_id", "key", "owner", "owner_kind", "secs"],
    )
    op.create_table(
        "latency_rollups",
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("hour", sa.Integer(), primary_key=True),
        sa.Column("prompt_id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(256), primary_key=True),
        sa.Column("owner_kind", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Text(), nullable=False),
    )
    from pipecat_roark.server.reply_index import rebuild

    # The parts only: the rollups' durations are packed now, and 0016 makes them from these.
    rebuild(op.get_bind(), rollups=False)


def downgrade() -> None:
    op.drop_table("latency_rollups")
    op.drop_table("reply_parts")
