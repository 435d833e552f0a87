"""SQLite's query-planner statistics, made by the server as the calls grow: not below the
first threshold, then at it, then each time the calls have doubled; every index analysed;
the maintenance loop does it on its own; PostgreSQL is left to its autovacuum."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

from pipecat_roark.server import planner_statistics
from pipecat_roark.server.settings import ServerSettings

from .conftest import base_settings, open_harness
from .harness import Harness


def _stats(database: Path) -> dict[str, int]:
    """Each analysed index's row count, as SQLite's planner reads it."""
    with sqlite3.connect(database) as connection:
        known = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
        ).fetchone()
        if not known:
            return {}
        rows = connection.execute("SELECT idx, stat FROM sqlite_stat1 WHERE idx IS NOT NULL")
        return {name: int(stat.split()[0]) for name, stat in rows}


def _indexes(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {name for (name,) in rows}


async def _calls(server: Harness, first: int, last: int) -> None:
    for number in range(first, last):
        assert (await server.start(f"grown-{number}")).status_code == 200


def _database(settings: ServerSettings) -> Path:
    return Path(settings.resolved_database_url.split("///", 1)[1])


async def test_statistics_are_made_at_the_threshold_then_each_time_the_calls_double(
    server: Harness,
) -> None:
    state = server.state
    if state.engine.dialect.name != "sqlite":
        await _calls(server, 0, 4)
        assert await planner_statistics.refresh(state, first=4) == 0  # autovacuum's job
        return
    database = _database(server.settings)
    await _calls(server, 0, 3)
    assert await planner_statistics.refresh(state, first=4) == 0
    assert _stats(database) == {}
    await _calls(server, 3, 4)
    # From here the tables only shrink: the server's workers fold rows away (agents' count
    # changes) and no request adds any. What was analysed lies between before and after.
    filled_before = _with_rows(database)
    analysed = await planner_statistics.refresh(state, first=4)
    assert analysed == len(_indexes(database))
    stats = _stats(database)
    assert _with_rows(database) <= set(stats) <= filled_before
    assert stats["ix_calls_project_started"] == 4
    await _calls(server, 4, 7)  # not yet twice as many
    assert await planner_statistics.refresh(state, first=4) == 0
    assert _stats(database)["ix_calls_project_started"] == 4
    await _calls(server, 7, 8)
    assert await planner_statistics.refresh(state, first=4) == analysed
    assert _stats(database)["ix_calls_project_started"] == 8


def _with_rows(database: Path) -> set[str]:
    return {name for name in _indexes(database) if _has_rows(database, name)}


def _has_rows(database: Path, index: str) -> bool:
    """SQLite keeps no statistics row for an empty index (an empty table's, or a partial
    index no row is in)."""
    with sqlite3.connect(database) as connection:
        table, sql = connection.execute(
            "SELECT tbl_name, sql FROM sqlite_master WHERE name = ?", (index,)
        ).fetchone()
        where = (sql or "").partition(" WHERE ")[2] or "1"
        found = connection.execute(f'SELECT 1 FROM "{table}" WHERE {where} LIMIT 1')
        return found.fetchone() is not None


async def test_the_maintenance_loop_makes_them_once_there_are_enough_calls(
    tmp_path: Path,
) -> None:
    settings = base_settings(tmp_path / "data")
    async for server in open_harness(settings):
        await _calls(server, 0, 1)
    database = _database(settings)
    # Written straight into the database, as an import would, up to the threshold.
    with sqlite3.connect(database) as connection:
        ((project, created),) = connection.execute("SELECT project_id, created_at FROM calls")
        connection.executemany(
            "INSERT INTO calls (id, project_id, pipecat_call_id, status, started_received, "
            "ended_received, stitch_count, created_at, updated_at, last_activity_at) "
            "VALUES (?, ?, ?, 'RINGING', 1, 0, 0, ?, ?, ?)",
            [
                (str(uuid.uuid4()), project, f"bulk-{n}", created, created, created)
                for n in range(planner_statistics.FIRST - 1)
            ],
        )
    assert _stats(database) == {}
    async for _server in open_harness(settings):  # its maintenance loop runs every 0.2 s
        for _ in range(1200):
            if _stats(database).get("ix_calls_project_started") == planner_statistics.FIRST:
                break
            await asyncio.sleep(0.1)
        assert _stats(database).get("ix_calls_project_started") == planner_statistics.FIRST
