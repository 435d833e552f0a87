"""An old database: SQLite at an earlier migration, to store rows as a server of that
version did, then upgrade it and read what the upgrade made of them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from pipecat_roark.server.database import MIGRATIONS_DIR

__all__ = ["NOW", "OldDatabase", "old_database"]

NOW = "2026-01-01 12:00:00.000000"
"""A timestamp as SQLite stores one, for the rows a test writes by hand."""


class OldDatabase:
    def __init__(self, connection: sa.Connection, config: Config) -> None:
        self.connection = connection
        self._config = config

    def upgrade(self, revision: str = "head") -> None:
        command.upgrade(self._config, revision)

    def downgrade(self, revision: str) -> None:
        command.downgrade(self._config, revision)


@contextmanager
def old_database(path: Path, revision: str) -> Iterator[OldDatabase]:
    """A SQLite database at ``revision``, with a project ``p``, in one transaction."""
    engine = sa.create_engine(f"sqlite:///{path}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.execute(
                sa.text("INSERT INTO projects VALUES ('p', 'old', :now)"), {"now": NOW}
            )
            yield OldDatabase(connection, config)
    finally:
        engine.dispose()
