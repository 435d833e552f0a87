"""Each frequent word's set of calls, on SQLite and on PostgreSQL: the exact ``total`` of a
search of several words is counted from the sets, so they must follow ingest, deletion,
other projects and calls ending at once exactly, equal what ``search_sets.rebuild`` makes,
and give a word its set when a call ending takes it to ``frequent_from`` calls."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from sqlalchemy import select, update

from pipecat_roark.server import schema, search_counts, search_sets
from pipecat_roark.server.search_terms import parse
from tests.server.harness import Harness
from tests.server.test_search import _AT, _api_total, _expected, _generated, _store
from tests.server.test_search_counts import (
    WORDS,
    delete_sampled,
    ending_and_deleted_at_once,
    store_in_another_project,
)

pytestmark = pytest.mark.asyncio

_sets = schema.search_word_sets
_counts = schema.search_word_counts
# Pairs of words and some triples, with words no call holds among them.
_RNG = random.Random(5)
SEARCHES = [" ".join(pair) for pair in _RNG.sample(list(itertools.combinations(WORDS, 2)), 60)] + [
    " ".join(_RNG.sample(WORDS, 3)) for _ in range(15)
]


async def _held(server: Harness, query: str) -> int | None:
    """The harness project's calls holding every word of ``query``, from the sets alone."""
    words = sorted({term[0] for term in parse(query)})
    async with server.state.reader.connect() as connection:
        return await connection.run_sync(
            search_sets.calls_holding_all, await _project_id(server), words
        )


async def _project_id(server: Harness) -> str:
    listing = (await server.get("/v1/call", limit=1)).json()["data"]
    async with server.state.reader.connect() as connection:
        calls = schema.calls
        found = await connection.scalar(
            select(calls.c.project_id).where(calls.c.id == listing[0]["id"])
        )
    return str(found)


async def _kept_sets(server: Harness) -> list[tuple[Any, ...]]:
    """Every set's rows with a call in them."""
    async with server.state.reader.connect() as connection:
        rows = await connection.execute(select(_sets).order_by(*_sets.primary_key))
        return [tuple(row) for row in rows if any(row.bits)]


async def _check(server: Harness, calls: list[dict[str, Any]], *, sets: bool = True) -> None:
    """Each search's total is what a scan of the calls finds, and so is the sets' count
    (without ``sets``, there is none but for a word no call holds: none hold them all)."""
    for query in SEARCHES:
        expected = len(_expected(calls, query))
        assert await _api_total(server, searchText=query) == expected, query
        held = await _held(server, query)
        if sets or held is not None:
            by_text = [call for call in calls if call["id"] != query]
            assert held == len(_expected(by_text, query)), query
        ended = len(_expected(calls, query, ended=True))
        assert await _api_total(server, searchText=query, status="ENDED") == ended, query


async def _check_rebuild(server: Harness) -> None:
    """What ingest and deletion kept is what a rebuild makes (giving every word a set, words
    that had none too), and every word has its set."""
    kept = await _kept_sets(server)
    assert kept
    async with server.state.begin() as connection:
        await connection.run_sync(search_sets.rebuild, None, least=1)
    had = {row[:2] for row in kept}
    assert [row for row in await _kept_sets(server) if row[:2] in had] == kept
    async with server.state.reader.connect() as connection:
        assert all(has for (has,) in await connection.execute(select(_counts.c.has_set)))


async def test_sets_follow_ingest_deletion_and_projects_as_a_scan_does(server: Harness) -> None:
    calls = _generated(60, seed=21)
    calls.insert(
        0,
        {
            "id": "alpha bravo",  # found by its id, not its text: counted apart
            "agent": "agent-1",
            "day": "2026-01-01",
            "ended": True,
            "transcript": [{"role": "user", "content": "bravo wombat", **_AT}],
            "toolCalls": [],
        },
    )
    for call in calls[:40]:
        await _store(server, call)
    await store_in_another_project(server, _generated(20, seed=22))

    # Sixty calls are too few for a word to have a set: each total is counted.
    assert await _held(server, "alpha bravo") is None
    await _check(server, calls[:40], sets=False)

    # Every word given a set; the calls after them are added to them as they end.
    async with server.state.begin() as connection:
        assert await connection.run_sync(search_sets.rebuild, None, least=1) > len(WORDS) // 2
    for call in calls[40:]:
        await _store(server, call)
    await _check(server, calls)
    await _check_rebuild(server)

    # The total is the sets' count, not the index's: a call put in a set alone is counted.
    async with server.state.begin() as connection:
        await connection.execute(
            update(_sets)
            .where(_sets.c.word.in_(("alpha", "bravo")))
            .values(bits=bytes([255]) * (search_sets.BLOCK // 8))
        )
    assert await _api_total(server, searchText="alpha bravo") > len(_expected(calls, "alpha bravo"))
    async with server.state.begin() as connection:
        await connection.run_sync(search_sets.rebuild, None, least=1)

    # Deleted, a call leaves every set; a word no call holds any more loses its set.
    await delete_sampled(server, calls, seed=4)
    await _check(server, calls)
    await _check_rebuild(server)
    async with server.state.reader.connect() as connection:
        words = {word for (word,) in await connection.execute(select(_sets.c.word))}
        counted = {word for (word,) in await connection.execute(select(_counts.c.word))}
    assert words <= counted

    # A repeated call-ended puts nothing in twice.
    await _store(server, next(call for call in calls if call["ended"]))
    await _check(server, calls)

    # Counted again without sets, the totals are counted from the index, the same.
    async with server.state.begin() as connection:
        await connection.run_sync(search_counts.rebuild)
    assert await _held(server, "alpha bravo") is None
    await _check(server, calls, sets=False)


async def test_a_word_gets_its_set_when_a_call_ending_takes_it_to_frequent(
    server: Harness,
) -> None:
    def call(index: int, words: str) -> dict[str, Any]:
        return {
            "id": f"search-frequent-{index}",
            "agent": "agent-1",
            "day": "2026-01-01",
            "ended": True,
            "transcript": [{"role": "user", "content": words, **_AT}],
            "toolCalls": [],
        }

    calls = [call(index, "alpha quokka" if index % 2 else "alpha bravo") for index in range(6)]
    for made in calls:
        await _store(server, made)
    async with server.state.begin() as connection:
        await connection.run_sync(search_sets.rebuild, None, least=1)
    # "wombat" is new, and said by more calls than a set needs (as if by many calls).
    calls.append(call(6, "alpha wombat"))
    await _store(server, calls[-1])
    assert await _held(server, "alpha wombat") is None  # one call: no set yet
    least = search_sets.frequent_from(10**6)
    async with server.state.begin() as connection:
        await connection.execute(
            update(_counts).where(_counts.c.word == "wombat").values(calls=least - 1)
        )
    calls.append(call(7, "wombat bravo alpha"))
    await _store(server, calls[-1])
    async with server.state.begin() as connection:
        await connection.execute(update(_counts).where(_counts.c.word == "wombat").values(calls=2))
    # Made from the index: both calls holding it, the one before it too.
    assert await _held(server, "alpha wombat") == 2
    assert await _held(server, "bravo wombat") == 1
    assert await _api_total(server, searchText="wombat alpha") == 2
    calls.append(call(8, "wombat quokka alpha"))
    await _store(server, calls[-1])
    assert await _held(server, "alpha wombat") == 3
    assert await _held(server, "quokka wombat") == 1
    await _check_rebuild(server)


async def test_calls_ending_and_deleted_at_once_each_change_the_sets_once(
    server: Harness,
) -> None:
    """Every call-ended and delete sets or clears its bit in the words' sets it shares with
    the others; on PostgreSQL in one order, or one of them would fail as a deadlock (a 500)."""
    words = ["alpha", "bravo", "charlie", "delta", "echo"]

    async def every_word_a_set() -> None:
        async with server.state.begin() as connection:
            await connection.run_sync(search_sets.rebuild, None, least=1)

    kept = await ending_and_deleted_at_once(
        server, lambda index: " ".join(random.Random(index).sample(words, 3)), every_word_a_set
    )
    for pair in itertools.combinations(words, 2):
        query = " ".join(pair)
        assert await _held(server, query) == len(_expected(kept, query)), query
        assert await _api_total(server, searchText=query) == len(_expected(kept, query)), query
    await _check_rebuild(server)
