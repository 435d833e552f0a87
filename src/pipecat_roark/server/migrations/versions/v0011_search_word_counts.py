"""How many of a project's indexed calls hold each word, counted from the search index
already stored: the exact total of a one-word search counted every match.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_word_counts",
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("word", sa.Text(), primary_key=True),
        sa.Column("calls", sa.Integer(), nullable=False),
    )
    from pipecat_roark.server.search_counts import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("search_word_counts")
