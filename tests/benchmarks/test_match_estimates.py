"""How a search learns about how many calls hold its words, to choose how to read them
(server/search.py), on a generated project of 2 000 calls.

PostgreSQL takes one word its statistics know at the planner's estimate and counts no
index entries for it. It counts a word they do not know, and several words, whose
frequencies the planner multiplies. SQLite's full-text index keeps no statistics, so it
always counts, up to the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from benchmarks.dataset import Shape, generate, marker
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pipecat_roark.server import schema
from pipecat_roark.server.database import open_database
from pipecat_roark.server.search_fts import estimated_matches
from pipecat_roark.server.search_terms import parse
from pipecat_roark.server.settings import ServerSettings

CALLS = 2000
KNOWN = marker(20)  # one call in 20
ALSO_KNOWN = marker(25)
ABSENT = "zebracrossing"


@contextmanager
def _counts_run(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements that count index entries (a plan asked for is an EXPLAIN)."""
    counts: list[str] = []

    def remember(_c: Any, _k: Any, statement: str, *_: Any) -> None:
        if "count(" in statement.lower() and not statement.startswith("EXPLAIN"):
            counts.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", remember)
    try:
        yield counts
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", remember)


@pytest.mark.asyncio
async def test_a_word_the_statistics_know_is_not_counted(settings: ServerSettings) -> None:
    await generate(settings.resolved_database_url, Shape(CALLS))
    async with open_database(settings.resolved_database_url) as engine:
        async with engine.connect() as db:
            indexed = await db.scalars(select(schema.call_search.c.words))
            bodies = [f" {words} " for words in indexed]
        holding = sum(f" {KNOWN} " in body for body in bodies)
        both = sum(f" {KNOWN} " in body and f" {ALSO_KNOWN} " in body for body in bodies)
        assert (holding, both) == (CALLS // 20, CALLS // 100)
        postgres = engine.dialect.name == "postgresql"

        async def estimate(text: str, at_most: int) -> tuple[int, int]:
            with _counts_run(engine) as counts:
                async with engine.connect() as db:
                    found = await estimated_matches(db, parse(text), at_most)
            return found, len(counts)

        found, counted = await estimate(KNOWN, CALLS)
        if postgres:  # the statistics' frequency, from a sample of every row
            assert counted == 0
            assert holding / 2 <= found <= holding * 2, found
        else:
            assert (found, counted) == (holding, 1)
        assert await estimate(KNOWN, 10) == (10, 0 if postgres else 1)
        assert await estimate(ABSENT, CALLS) == (0, 1)
        assert await estimate(f"{KNOWN} {ALSO_KNOWN}", CALLS) == (both, 1)
