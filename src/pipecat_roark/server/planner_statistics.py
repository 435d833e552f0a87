"""SQLite's statistics for its query planner, made again as the calls grow.

PostgreSQL analyses its tables itself (autovacuum). SQLite never does, and without
statistics its planner guesses which index a query should read. At a million calls a wrong
guess costs seconds: the calls list filtered to interrupted calls counted its matches
through the index of another sort, 2.2 s against 26 ms with statistics. So on SQLite the
maintenance loop analyses every index once the calls reach ``FIRST``, and again
each time they have doubled since: a handful of times over a database's life.

One index per write transaction: a writer waits for one index's analysis at most, never
for all of them. At 770 000 calls the 41 indexes took 10 to 22 s in all, the largest (a
reply's latency parts, several per call) 4 s. ``_MARK``, analysed last, records how
many calls there were, so an analysis cut short by a stop is made again.
"""

from __future__ import annotations

import time

from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from .state import ServerState

__all__ = ["FIRST", "refresh"]

FIRST = 1000
"""Below this many calls any plan is quick: no statistics are made."""

_MARK = "ix_calls_project_started"


async def refresh(state: ServerState, first: int = FIRST) -> int:
    """Analyse every index if the calls have reached ``first`` and doubled since the last
    analysis; return how many indexes were analysed (0 on PostgreSQL)."""
    if state.engine.dialect.name != "sqlite":
        return 0
    async with state.reader.connect() as connection:
        calls = await connection.scalar(text("SELECT max(rowid) FROM calls")) or 0
        analysed = await _analysed(connection)
        names = list(
            await connection.scalars(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND name != :mark "
                    "ORDER BY name"
                ),
                {"mark": _MARK},
            )
        )
    if calls < max(first, 2 * analysed):
        return 0
    logger.info(
        "analysing {} indexes for SQLite's query planner ({} calls, {} at the last analysis)",
        len(names) + 1,
        calls,
        analysed,
    )
    started = time.monotonic()
    for name in [*names, _MARK]:
        if state.stopping.is_set():
            return 0
        async with state.begin() as connection:
            await connection.exec_driver_sql(f'ANALYZE "{name}"')
    logger.info("analysed in {:.1f} s", time.monotonic() - started)
    return len(names) + 1


async def _analysed(connection: AsyncConnection) -> int:
    """The calls counted at the last analysis (0 if none): the mark's row count."""
    exists = await connection.scalar(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    )
    if not exists:
        return 0
    stat = await connection.scalar(
        text("SELECT stat FROM sqlite_stat1 WHERE idx = :mark"), {"mark": _MARK}
    )
    return int(str(stat).split()[0]) if stat else 0
