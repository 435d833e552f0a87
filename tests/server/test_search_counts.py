"""Each word's kept count of calls, on SQLite and on PostgreSQL: the exact ``total`` of a
one-word search is read from it, so it must follow ingest, deletion, other projects and
calls ending at once exactly, and equal what ``search_counts.rebuild`` counts again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from pipecat_roark.server import schema, search_counts
from pipecat_roark.server.embed import ensure_project_key
from tests.server.harness import Harness
from tests.server.test_search import (
    _AT,
    VOCABULARY,
    _api_total,
    _expected,
    _generated,
    _scan_words,
    _store,
)

pytestmark = pytest.mark.asyncio

# Every word the generated calls hold, and words no call holds.
WORDS = sorted(
    {word for text in VOCABULARY for word in _scan_words(text)}
    | {"lookup", "order", "book", "table", "city", "quokka", "wombat", "absent"}
)


async def _counts(server: Harness) -> list[tuple[Any, ...]]:
    table = schema.search_word_counts
    async with server.state.reader.connect() as connection:
        return sorted(tuple(row) for row in await connection.execute(select(table)))


async def _check_totals(server: Harness, calls: list[dict[str, Any]]) -> None:
    """Each word's total, alone and with each status, is what a scan of the calls finds;
    so is the dashboard's count, alone and with an agent."""
    for word in WORDS:
        assert await _api_total(server, searchText=word) == len(_expected(calls, word)), word
        listed = await server.get("/calls.json", q=word)
        assert listed.json()["pagination"]["total"] == len(_expected(calls, word)), word
        agent = await server.get("/calls.json", q=word, agent=await _agent_id(server))
        expected = len(_expected(calls, word, agent="agent-1"))
        assert agent.json()["pagination"]["total"] == expected, word
        for ended, status in ((True, "ENDED"), (False, "IN_PROGRESS")):
            expected = len(_expected(calls, word, ended=ended))
            assert await _api_total(server, searchText=word, status=status) == expected, word
        assert await _api_total(server, searchText=word, status="RINGING") == 0


async def _agent_id(server: Harness) -> str:
    listing = (await server.get("/v1/agent", searchText="agent-1")).json()["data"]
    return str(next(agent["id"] for agent in listing if agent["customId"] == "agent-1"))


async def _check_rebuild(server: Harness) -> None:
    kept = await _counts(server)
    assert kept
    assert all(row[2] > 0 for row in kept)
    async with server.state.begin() as connection:
        assert await connection.run_sync(search_counts.rebuild) == len(kept)
    assert await _counts(server) == kept


async def store_in_another_project(server: Harness, calls: list[dict[str, Any]]) -> None:
    other = Harness(
        client=server.client,
        key=await ensure_project_key(server.settings, "other"),
        settings=server.settings,
        app=server.app,
    )
    for call in calls:
        await _store(other, call)


async def delete_sampled(server: Harness, calls: list[dict[str, Any]], *, seed: int) -> None:
    """Delete 25 of the ended calls through the API, and from ``calls``."""
    for call in random.Random(seed).sample([c for c in calls if c["ended"]], 25):
        gone = await server.call_id(call["id"])
        deleted = await server.client.delete(f"/v1/call/{gone}", headers=server.headers)
        assert deleted.status_code == 200, deleted.text
        calls.remove(call)


async def test_counts_follow_ingest_deletion_and_projects_as_a_scan_does(
    server: Harness,
) -> None:
    calls = _generated(60, seed=11)
    # A call whose id is a word its text does not hold: found by its id, counted apart.
    calls.append(
        {
            "id": "quokka",
            "agent": "agent-1",
            "day": "2026-01-01",
            "ended": True,
            "transcript": [{"role": "user", "content": "alpha wombat", **_AT}],
            "toolCalls": [],
        }
    )
    calls.append({**calls[-1], "id": "wombat", "ended": False})  # in progress: by id only
    for call in calls:
        await _store(server, call)
    # Another project's calls hold the same words, and are counted apart.
    await store_in_another_project(server, _generated(20, seed=12))

    await _check_totals(server, calls)
    await _check_rebuild(server)

    # A one-word total is the word's kept row, not a count of its matches; a search of two
    # words counts them.
    counts = schema.search_word_counts
    async with server.state.begin() as connection:
        await connection.execute(update(counts).where(counts.c.word == "alpha").values(calls=10**6))
    assert await _api_total(server, searchText="alpha") == 10**6
    listed = (await server.get("/calls.json", q="alpha")).json()["pagination"]["total"]
    assert listed == 1000  # the dashboard's count stops there
    assert await _api_total(server, searchText="ALPHA,") == 10**6
    assert await _api_total(server, searchText="alpha bravo") == len(
        _expected(calls, "alpha bravo")
    )
    async with server.state.begin() as connection:
        await connection.run_sync(search_counts.rebuild)
    await _check_totals(server, calls)

    # Deleted, a call's words are uncounted; a word no call holds any more loses its row.
    await delete_sampled(server, calls, seed=3)
    await _check_totals(server, calls)
    await _check_rebuild(server)

    # A repeated call-ended counts nothing twice.
    again = next(call for call in calls if call["ended"])
    await _store(server, again)
    await _check_totals(server, calls)


async def test_calls_ending_and_deleted_at_once_are_each_counted_once(server: Harness) -> None:
    """Every call-ended and delete locks the words it shares with the others; on PostgreSQL
    in one order, or one of them would fail as a deadlock (a 500)."""
    words = ["alpha", "bravo", "charlie", "delta", "echo"]

    def text(index: int) -> str:
        return " ".join([*random.Random(index).sample(words, len(words)), f"w{index}"])

    kept = await ending_and_deleted_at_once(server, text)
    for word in [*words, "w0", "w12", "w30"]:
        assert await _api_total(server, searchText=word) == len(_expected(kept, word)), word
    await _check_rebuild(server)


async def ending_and_deleted_at_once(
    server: Harness,
    text: Callable[[int], str],
    stored: Callable[[], Awaitable[None]] | None = None,
) -> list[dict[str, Any]]:
    """24 calls stored (then ``stored()``), 12 of them deleted while 24 more end, all at
    once; return the calls kept. ``text(index)``: what call ``index`` says."""

    def call(index: int) -> dict[str, Any]:
        return {
            "id": f"many-{index}",
            "agent": "agent-1",
            "day": "2026-01-01",
            "ended": True,
            "transcript": [{"role": "user", "content": text(index), **_AT}],
            "toolCalls": [],
        }

    first = [call(index) for index in range(24)]
    for made in first:
        await _store(server, made)
    if stored is not None:
        await stored()
    ids = [await server.call_id(made["id"]) for made in first[:12]]
    second = [call(index) for index in range(24, 48)]
    for made in second:
        answer = await server.start(made["id"], agentId="agent-1")
        assert answer.status_code == 200, answer.text

    async def delete(call_id: str) -> int:
        answer = await server.client.delete(f"/v1/call/{call_id}", headers=server.headers)
        return answer.status_code

    async def end(made: dict[str, Any]) -> int:
        answer = await server.end(made["id"], transcript=made["transcript"])
        return answer.status_code

    answers = await asyncio.gather(*map(delete, ids), *map(end, second))
    assert answers == [200] * len(answers)
    return first[12:] + second
