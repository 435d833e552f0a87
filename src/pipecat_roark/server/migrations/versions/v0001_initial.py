"""Projects, keys, agents with prompt revisions, calls, chunks and stitch jobs.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from pipecat_roark.server.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("custom_id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(512), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "custom_id", name="uq_agents_project_custom_id"),
    )
    op.create_table(
        "agent_prompts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("prompt_sha256", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("agent_id", "prompt_sha256", name="uq_agent_prompts_agent_sha"),
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("pipecat_call_id", sa.String(256), nullable=False),
        sa.Column("agent_id", sa.String(36), sa.ForeignKey("agents.id"), nullable=True),
        sa.Column("prompt_id", sa.String(36), sa.ForeignKey("agent_prompts.id"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_received", sa.Boolean(), nullable=False),
        sa.Column("ended_received", sa.Boolean(), nullable=False),
        sa.Column("finalised_by", sa.String(16), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_reason", sa.String(256), nullable=True),
        sa.Column("agent_spoke_first", sa.Boolean(), nullable=True),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("num_channels", sa.Integer(), nullable=True),
        sa.Column("transcript", _json(), nullable=True),
        sa.Column("transcript_text", sa.Text(), nullable=True),
        sa.Column("tool_calls", _json(), nullable=True),
        sa.Column("metrics", _json(), nullable=True),
        sa.Column("recording_key", sa.String(512), nullable=True),
        sa.Column("recording_bytes", sa.BigInteger(), nullable=True),
        sa.Column("recording_duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("stitch_fingerprint", sa.String(64), nullable=True),
        sa.Column("recording_gaps", _json(), nullable=True),
        sa.Column("recording_issues", _json(), nullable=True),
        sa.Column("stitch_count", sa.Integer(), nullable=False),
        sa.Column("stitched_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_activity_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("project_id", "pipecat_call_id", name="uq_calls_project_pipecat_id"),
    )
    op.create_index("ix_calls_project_created", "calls", ["project_id", "created_at"])
    op.create_index("ix_calls_status_activity", "calls", ["status", "last_activity_at"])
    op.create_index("ix_calls_created", "calls", ["created_at"])
    op.create_table(
        "chunks",
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), primary_key=True),
        sa.Column("chunk_index", sa.Integer(), primary_key=True),
        sa.Column("url_expires_at", UTCDateTime(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("uploaded_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "stitch_jobs",
        sa.Column("call_id", sa.String(36), sa.ForeignKey("calls.id"), primary_key=True),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )
    op.create_index("ix_stitch_jobs_due", "stitch_jobs", ["due_at"])


def downgrade() -> None:
    for index, table in (
        ("ix_stitch_jobs_due", "stitch_jobs"),
        ("ix_calls_created", "calls"),
        ("ix_calls_status_activity", "calls"),
        ("ix_calls_project_created", "calls"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "stitch_jobs",
        "chunks",
        "calls",
        "agent_prompts",
        "agents",
        "server_secrets",
        "api_keys",
        "projects",
    ):
        op.drop_table(table)
