"""What ingest repaired in a call, the digest of each uploaded chunk, used login links.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from pipecat_roark.server.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("ingest_warnings", _json(), nullable=True))
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
    op.create_table(
        "used_login_links",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("used_login_links")
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("sha256")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("ingest_warnings")
