"""A search for a rare word reads in proportion to what it finds, not to the calls stored.

The same requests (the dashboard's list and the API's list, a rare word and a phrase) on a
generated project of 300 calls and one of 3 000, on SQLite and on PostgreSQL: the work of
every statement the server runs for them is measured, never timed. SQLite counts its
virtual machine's steps; PostgreSQL, the rows each node of the executed plan handled (with
sequential scans priced out, as a million rows would). Ten
times the calls may cost at most three times the work: reading every call to find a few
would cost ten.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from benchmarks.dataset import Shape, generate
from sqlalchemy import event, select

from pipecat_roark.server import schema
from pipecat_roark.server.settings import ServerSettings
from tests.server.conftest import open_harness
from tests.server.harness import Harness

SIZES = (300, 3000)
GROWTH = 3.0


def _rare_words(transcript: str) -> tuple[str, str]:
    """An order number said in the call (few calls hold it), and the word before it."""
    for line in transcript.split("\n"):
        for before, word in pairwise(line.rstrip(".?").split()):
            if word.isdigit():
                return before, word
    raise AssertionError("the call has no numbered question")


def _sqlite_work(path: str, statements: list[tuple[str, Any]]) -> int:
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    connection = sqlite3.connect(path)
    try:
        connection.set_progress_handler(tick, 100)
        for statement, parameters in statements:
            connection.execute(statement, parameters).fetchall()
    finally:
        connection.close()
    return steps[0]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def _postgres_work(server: Harness, statements: list[tuple[str, Any]]) -> int:
    removed = (
        "Rows Removed by Filter",
        "Rows Removed by Index Recheck",
        "Rows Removed by Join Filter",
    )
    rows = 0
    async with server.state.engine.connect() as connection:
        # At a few thousand rows reading a whole table costs less than an index: priced
        # out, as at a million calls, so the plan read is the one the indexes allow.
        await connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            explain = "EXPLAIN (ANALYZE, FORMAT JSON) " + statement
            plan = (await connection.exec_driver_sql(explain, parameters)).scalar_one()
            for node in _nodes(plan[0]["Plan"] if isinstance(plan, list) else plan):
                handled = node["Actual Rows"] + sum(node.get(name, 0) for name in removed)
                rows += int(handled * node["Actual Loops"])
    return rows


async def _work(server: Harness, path: str, **params: str) -> int:
    """The work of the statements the server runs to answer ``GET path?params``."""
    engine = server.state.engine.sync_engine
    statements: list[tuple[str, Any]] = []

    def remember(_c: Any, _k: Any, statement: str, parameters: Any, *_: Any) -> None:
        # The planner's estimates (EXPLAIN) read no rows; the rest is measured.
        if "call" in statement and not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        answer = await server.get(path, **params)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"], params  # the search found the call it was taken from
    if server.state.engine.dialect.name == "sqlite":
        database = server.state.engine.url.database
        assert database is not None
        return _sqlite_work(database, statements)
    return await _postgres_work(server, statements)


async def _searches_work(settings: ServerSettings, calls: int) -> dict[str, int]:
    await generate(settings.resolved_database_url, Shape(calls), project="acme")
    async for server in open_harness(settings):
        async with server.state.reader.connect() as connection:
            newest = await connection.scalar(
                select(schema.calls.c.transcript_text)
                .order_by(schema.calls.c.started_at.desc())
                .limit(1)
            )
        word, number = _rare_words(newest or "")
        phrase = f'"{word} {number}"'
        work = {
            "dashboard, a rare word": await _work(server, "/calls.json", q=number),
            "dashboard, a phrase": await _work(server, "/calls.json", q=phrase),
            "API, a rare word": await _work(server, "/v1/call", searchText=number),
            "API, a phrase": await _work(server, "/v1/call", searchText=phrase),
        }
    return work


@pytest.mark.asyncio
async def test_a_rare_word_reads_what_it_finds_not_every_call(
    settings: ServerSettings, request: pytest.FixtureRequest
) -> None:
    measured = []
    for calls in SIZES:  # each size in a database of its own
        if settings.database_url is None:
            fresh = settings.replace(data_dir=settings.data_dir / str(calls))
        else:
            fresh = settings.replace(
                database_url=request.getfixturevalue("postgres").create_database()
            )
        measured.append(await _searches_work(fresh, calls))
    small, large = measured
    for search, work in small.items():
        assert large[search] <= GROWTH * work, (search, work, large[search])
