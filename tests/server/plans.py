"""A statement's query plan, as the database would run it: for tests that a page reads an
index, not every call."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event

from .harness import Harness

Statement = tuple[str, Any]


@contextlib.contextmanager
def statements_run(server: Harness, keep: Callable[[str], bool]) -> Iterator[list[Statement]]:
    """The statements (with their parameters) the server runs in the block that ``keep``
    selects: the server's workers may read calls meanwhile."""
    engine = server.state.engine.sync_engine
    statements: list[Statement] = []

    def remember(_c: Any, _k: Any, statement: str, parameters: Any, *_: Any) -> None:
        if keep(statement):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", remember)


async def query_plan(server: Harness, statement: str, parameters: Any) -> list[str]:
    """The query's plan; on PostgreSQL with sorting and sequential scans priced out, so a Sort
    or a scan left in it is one no index can replace (a handful of rows would otherwise be
    read by choice)."""
    dialect = server.state.engine.dialect.name
    async with server.state.engine.connect() as connection:
        if dialect == "postgresql":
            await connection.exec_driver_sql("SET enable_sort = off")
            await connection.exec_driver_sql("SET enable_seqscan = off")
        explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        rows = await connection.exec_driver_sql(explain + statement, parameters)
        return [str(row[-1]) for row in rows]


def sorts_every_row(plan: list[str]) -> bool:
    """A sort of all the rows found. One of ties only (SQLite's "right part", PostgreSQL's
    incremental sort: an index that ends at a time, not the id) costs a few rows."""
    for node in plan:
        step = node.strip().removeprefix("->").strip()
        if step == "USE TEMP B-TREE FOR ORDER BY" or step.startswith("Sort  ("):
            return True
    return False
