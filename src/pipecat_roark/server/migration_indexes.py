"""Indexes a migration adds to a large table, with statistics for them.

SQLite, once it keeps statistics (``sqlite_stat1``), prefers an analysed index to one
without any, even a far narrower one: it then sorts a million calls. So a migration that
adds indexes analyses them where the database already has statistics. PostgreSQL analyses
the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["create_indexes", "drop_indexes"]


def create_indexes(
    op: Any, table: str, indexes: Mapping[str, Sequence[Any]], *, where: Any = None
) -> None:
    """``where``: a partial index's condition, for each of ``indexes``."""
    partial = {} if where is None else {"sqlite_where": where, "postgresql_where": where}
    for name, columns in indexes.items():
        op.create_index(name, table, list(columns), **partial)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"ANALYZE {table}")
        return
    analysed = bind.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).first()
    if analysed:
        for name in indexes:
            op.execute(f"ANALYZE {name}")


def drop_indexes(op: Any, table: str, indexes: Mapping[str, Sequence[Any]]) -> None:
    for name in indexes:
        op.drop_index(name, table)
