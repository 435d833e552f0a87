"""A statement's query plan, as the database would run it: for tests that a page reads an
index, not every call."""

from __future__ import annotations

from typing import Any

from .harness import Harness


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
