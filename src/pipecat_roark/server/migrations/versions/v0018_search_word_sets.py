"""Each frequent word's set of calls, made from the search index already stored: the exact
total of a search of several words counted every call holding them all.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "search_word_counts",
        sa.Column("has_set", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "search_word_sets",
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("word", sa.Text(), primary_key=True),
        sa.Column("block", sa.Integer(), primary_key=True),
        sa.Column("bits", sa.LargeBinary(), nullable=False),
    )
    from pipecat_roark.server.search_sets import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("search_word_sets")
    with op.batch_alter_table("search_word_counts") as batch:
        batch.drop_column("has_set")
