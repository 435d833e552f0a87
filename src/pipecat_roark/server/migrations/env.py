"""Alembic environment: always runs on the connection the server hands it."""

from __future__ import annotations

from alembic import context

from pipecat_roark.server.schema import metadata

_connection = context.config.attributes["connection"]
context.configure(
    connection=_connection,
    target_metadata=metadata,
    render_as_batch=_connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
