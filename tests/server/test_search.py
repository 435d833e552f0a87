"""Searching calls, on SQLite and on PostgreSQL: every query form finds exactly the calls a
scan in Python over what was sent finds, through ``GET /v1/call?searchText=`` and the
dashboard's ``/calls.json?q=``; the index follows call-ended, a repeat and a deletion; an
upgrade from revision 0006 indexes the calls already stored, and so does
``pipecat-roark rebuild-search``; hostile queries answer 200."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import select

from pipecat_roark.server import schema
from pipecat_roark.server.database import MIGRATIONS_DIR, create_engine
from pipecat_roark.server.search import plan_call_search
from pipecat_roark.server.search_index import TOO_MANY_WORDS, rebuild
from pipecat_roark.server.search_terms import parse
from tests.server.conftest import open_harness
from tests.server.harness import Harness, run_command

pytestmark = pytest.mark.asyncio

VOCABULARY = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "café", "Straße", "naïve",
    "z0ne", "1e5", "007", "NEAR", "OR", "and", "a_b",
)  # fmt: skip
PUNCTUATION = ("", "", "", ",", ".", "?", "!", "-", "'s", ":")
DAYS = ("2026-01-01", "2026-01-02")
_AT = {"timestamp": "2026-01-01T12:00:00+00:00", "endTimestamp": "2026-01-01T12:00:01+00:00"}

QUERIES = (
    "alpha",
    "ALPHA",
    "alpha bravo",
    "alpha bravo charlie",
    '"alpha bravo"',
    '"bravo alpha" charlie',
    '"alpha bravo charlie delta"',
    "café",
    "CAFÉ",
    "strasse",
    "Straße",
    "naïve",
    "z0ne",
    "1e5",
    "007",
    "lookup_order",
    "book-table",
    "city",
    "a_b",
    "alpha's",
    '"echo foxtrot" "delta echo"',
    # Hostile: no FTS5 or tsquery syntax gets through, nothing answers 5xx.
    'alpha "',
    '"unbalanced alpha',
    '""',
    "alpha -bravo",
    "alpha*",
    "NEAR(alpha bravo)",
    "body:alpha",
    "alpha OR bravo",
    "AND",
    "!alpha & bravo | (charlie)",
    "'; DROP TABLE calls; --",
    "% _ \\",
    "^alpha",
    "alpha:*",
    "\u2028alpha\ufeff",
    " ".join(["alpha"] * 80),
    " ".join(("city", "lookup", "book", *VOCABULARY)),  # the first 16 terms count
    "x" * 500,
)


def _send_words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(VOCABULARY) + rng.choice(PUNCTUATION) for _ in range(count))


def _generated(count: int, seed: int = 17) -> list[dict[str, Any]]:
    """Calls with known words: some with tool calls, two agents, two days, some unended."""
    rng = random.Random(seed)
    calls = []
    for index in range(count):
        day = DAYS[index % 2]
        turns = [
            {
                "role": rng.choice(("user", "assistant", "system")),
                "content": "\n".join(
                    _send_words(rng, rng.randint(1, 6)) for _ in range(rng.randint(1, 2))
                ),
                "timestamp": f"{day}T12:00:0{turn}+00:00",
                "endTimestamp": f"{day}T12:00:0{turn}.5+00:00",
            }
            for turn in range(rng.randint(1, 4))
        ]
        tools: list[dict[str, Any]] = []
        if index % 3 == 0:
            name = rng.choice(("lookup_order", "book-table"))
            tools = [
                {
                    "kind": "tool_call",
                    "toolCallId": f"t{index}",
                    "name": name,
                    "arguments": json.dumps({"city": _send_words(rng, 2)}),
                    "timestamp": f"{day}T12:00:05+00:00",
                },
                {
                    "kind": "tool_result",
                    "toolCallId": f"t{index}",
                    "content": _send_words(rng, 3),
                    "timestamp": f"{day}T12:00:06+00:00",
                },
            ]
        calls.append(
            {
                "id": f"search-{index}",
                "agent": f"agent-{1 + index % 2}",
                "day": day,
                "ended": index % 7 != 0,
                "transcript": turns,
                "toolCalls": tools,
            }
        )
    return calls


async def _store(server: Harness, call: dict[str, Any]) -> None:
    started = f"{call['day']}T12:00:00+00:00"
    answer = await server.start(call["id"], agentId=call["agent"], eventTimestamp=started)
    assert answer.status_code == 200, answer.text
    if call["ended"]:
        answer = await server.end(
            call["id"],
            transcript=call["transcript"],
            toolCalls=call["toolCalls"],
            callStartedAt=started,
            eventTimestamp=f"{call['day']}T12:01:00+00:00",
            callEndedAt=f"{call['day']}T12:01:00+00:00",
        )
        assert answer.status_code == 200, answer.text


# The scan the index must agree with, written apart from the index's own code.


def _scan_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [word[:64] for word in re.findall(r"[^\W_]+", folded)]


def _scan_terms(query: str) -> list[list[str]]:
    terms: list[list[str]] = []
    for phrase, word in re.findall(r'"([^"]*)"|([^"\s]+)', query[:1000]):
        term = _scan_words(phrase or word)
        if term and term not in terms:
            terms.append(term)
    return terms[:16]


def _lines(call: dict[str, Any]) -> list[list[str]]:
    lines = [
        line
        for turn in call["transcript"]
        if turn["role"] != "system"
        for line in turn["content"].split("\n")
    ]
    for record in call["toolCalls"]:
        lines += [record[field] for field in ("name", "arguments", "content") if field in record]
    return [_scan_words(line) for line in lines]


def _holds(lines: list[list[str]], term: list[str]) -> bool:
    return any(
        line[start : start + len(term)] == term
        for line in lines
        for start in range(len(line) - len(term) + 1)
    )


def _expected(calls: list[dict[str, Any]], query: str, **filters: Any) -> set[str]:
    terms = _scan_terms(query)
    found = set()
    for call in calls:
        if any(call[name] != value for name, value in filters.items()):
            continue
        if not query.strip():
            found.add(call["id"])
            continue
        by_id = call["id"] in (query, query.strip())
        by_text = call["ended"] and bool(terms)
        by_text = by_text and all(_holds(_lines(call), term) for term in terms)
        if by_id or by_text:
            found.add(call["id"])
    return found


async def _ids(server: Harness, path: str, field: str, limit: int, **params: Any) -> set[str]:
    """The pipecatCallIds of every page of a list."""
    ids: set[str] = set()
    after = None
    while True:
        extra = {"after": after} if after else {}
        answer = await server.get(path, limit=limit, **params, **extra)
        assert answer.status_code == 200, (params, answer.text)
        body = answer.json()
        ids |= {call[field] for call in body["data"]}
        after = body["pagination"]["nextCursor"]
        if not body["pagination"]["hasMore"]:
            return ids


async def _api_ids(server: Harness, **params: Any) -> set[str]:
    return await _ids(server, "/v1/call", "externalId", 100, **params)


async def _api_total(server: Harness, **params: Any) -> int:
    answer = await server.get("/v1/call", limit=1, **params)
    assert answer.status_code == 200, (params, answer.text)
    return int(answer.json()["pagination"]["total"])


async def _dashboard_ids(server: Harness, **params: Any) -> set[str]:
    return await _ids(server, "/calls.json", "pipecatCallId", 200, **params)


async def _index_rows(server: Harness) -> list[tuple[Any, ...]]:
    table = schema.call_search
    async with server.state.reader.connect() as connection:
        rows = await connection.execute(select(table.c.call_id, table.c.body, table.c.words))
        return sorted(tuple(row) for row in rows)


async def test_every_query_form_finds_what_a_scan_finds(server: Harness) -> None:
    calls = _generated(240)
    for call in calls:
        await _store(server, call)
    agents = {}
    for agent in ("agent-1", "agent-2"):
        listing = await server.get("/v1/agent", searchText=agent)
        (found,) = [a for a in listing.json()["data"] if a["customId"] == agent]
        agents[agent] = found["id"]

    for query in (*QUERIES, "search-5", " search-12 ", "search", "search 5", "   "):
        expected = _expected(calls, query)
        assert await _api_ids(server, searchText=query) == expected, query
        assert await _api_total(server, searchText=query) == len(expected), query
        assert await _dashboard_ids(server, q=query) == expected, query
    some = [q for q in QUERIES if _expected(calls, q)][:6]
    assert len(some) == 6
    for query in (*some, "search-7"):
        status = await _api_ids(server, searchText=query, status="ENDED")
        assert status == _expected(calls, query, ended=True), query
        for ended, status in ((True, "ENDED"), (False, "IN_PROGRESS")):
            expected_total = len(_expected(calls, query, ended=ended))
            assert await _api_total(server, searchText=query, status=status) == expected_total
        for agent, agent_id in agents.items():
            for day in DAYS:
                got = await _dashboard_ids(
                    server, q=query, agent=agent_id, **{"from": day, "to": day}
                )
                assert got == _expected(calls, query, agent=agent, day=day), (query, agent, day)

    # Either way of reading (from the index's matches, or walking the list checking each
    # call's text) finds the same calls, for the page, the capped count and the exact one.
    async with server.state.reader.connect() as connection:
        project_id = await connection.scalar(
            select(schema.projects.c.id).where(schema.projects.c.name == "acme")
        )
        calls_c = schema.calls.c
        for query in (*QUERIES, "search-5", " search-12 ", "search 5"):
            expected = _expected(calls, query)
            for few, from_index in ((-1, False), (10**9, True)):
                plan = await plan_call_search(
                    connection, project_id, query, page_few=few, count_few=few
                )
                assert plan.from_index is (from_index and bool(parse(query)))
                for condition in (plan.page, plan.capped_count):
                    found = await connection.scalars(
                        select(calls_c.pipecat_call_id)
                        .where(calls_c.project_id == project_id, condition)
                        .order_by(plan.sort_key(calls_c.created_at))
                    )
                    assert set(found) == expected, (query, few)
                parts = [
                    set(
                        await connection.scalars(
                            select(calls_c.pipecat_call_id).where(
                                calls_c.project_id == project_id, part
                            )
                        )
                    )
                    for part in plan.exact_count
                ]
                assert set().union(*parts) == expected, (query, few)
                assert sum(map(len, parts)) == len(expected), (query, few)  # disjoint

    # Longer than the API takes (a 422 there): the dashboard reads the first 1 000 characters.
    for query in ("\talpha\x7f", '"' * 3000, "alpha " * 1000):
        assert await _dashboard_ids(server, q=query) == _expected(calls, query), query[:20]
    assert (await server.get("/v1/call", searchText="x" * 501)).status_code == 422


async def test_the_index_follows_ingest_repeats_and_deletion(server: Harness) -> None:
    calls = _generated(30, seed=5)
    for call in calls:
        await _store(server, call)
    written = await _index_rows(server)
    assert [row[0] for row in written] != []
    assert len(written) == sum(call["ended"] for call in calls)
    async with server.state.begin() as connection:
        assert await connection.run_sync(rebuild) == len(written)
    assert await _index_rows(server) == written

    # An unended call is found once its call-ended comes.
    late = next(call for call in calls if not call["ended"])
    late["ended"] = True
    late["transcript"] = [{"role": "user", "content": "quokka saxophone", **_AT}]
    await _store(server, late)
    assert await _api_ids(server, searchText="quokka") == {late["id"]}

    # A repeated call-ended (other words this time) changes nothing.
    assert (await server.end(late["id"], transcript=[])).status_code == 200
    assert (
        await server.end(late["id"], transcript=[{"role": "user", "content": "wombat", **_AT}])
    ).status_code == 200
    assert await _api_ids(server, searchText="quokka") == {late["id"]}
    assert await _api_ids(server, searchText="wombat") == set()
    after_late = await _index_rows(server)
    assert len(after_late) == len(written) + 1

    # Deleted, a call leaves the index and the answers.
    gone = await server.call_id(late["id"])
    deleted = await server.client.delete(f"/v1/call/{gone}", headers=server.headers)
    assert deleted.status_code in (200, 204)
    assert await _index_rows(server) == written
    assert await _api_ids(server, searchText="quokka saxophone") == set()
    calls.remove(late)
    for query in ("alpha", '"alpha bravo"', "café strasse"):
        assert await _api_ids(server, searchText=query) == _expected(calls, query)


async def test_rebuild_search_indexes_calls_written_straight_into_the_database(
    settings: Any,
) -> None:
    calls = _generated(24, seed=9)
    async for server in open_harness(settings):
        for call in calls:
            await _store(server, call)
        # As an import writing calls without their index would leave it.
        async with server.state.begin() as connection:
            await connection.execute(sa.delete(schema.call_search))
            await connection.execute(sa.delete(schema.search_word_counts))
        assert await _api_ids(server, searchText="alpha") == set()
        assert await _api_total(server, searchText="alpha") == 0
    stdout, stderr = await run_command(
        "rebuild-search", "--database-url", settings.resolved_database_url
    )
    ended = sum(call["ended"] for call in calls)
    assert stdout == f"the search index was rebuilt from {ended} ended calls\n"
    assert f"{ended}/{ended} calls" in stderr
    assert f"counting the words of the search index: {ended}/{ended} calls" in stderr
    async for server in open_harness(settings):
        for query in ("alpha", '"alpha bravo"', "lookup_order", "café strasse"):
            assert await _api_ids(server, searchText=query) == _expected(calls, query), query
        for word in ("alpha", "café", "lookup"):
            assert await _api_total(server, searchText=word) == len(_expected(calls, word))


async def test_an_upgrade_indexes_the_calls_stored_and_a_downgrade_drops_it(settings: Any) -> None:
    engine = create_engine(settings.resolved_database_url)
    now = "2026-01-01 12:00:00"
    transcript = "Alpha, bravo!\nCharlie's café"
    tools = [{"kind": "tool_call", "name": "lookup_order", "arguments": '{"city": "Oslo"}'}]

    def upgrade(connection: sa.Connection) -> list[Any]:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        connection.execute(schema.projects.insert().values(id="p", name="old", created_at=_at(now)))
        for call_id, ended in (("old-ended", True), ("old-open", False)):
            connection.execute(
                schema.calls.insert().values(
                    id=call_id, project_id="p", pipecat_call_id=call_id, status="ENDED",
                    started_received=True, ended_received=ended, stitch_count=0,
                    created_at=_at(now), updated_at=_at(now), last_activity_at=_at(now),
                    transcript_text=transcript, tool_calls=tools,
                )
            )  # fmt: skip
        command.upgrade(config, "head")
        rows = connection.execute(sa.text("SELECT call_id, body FROM call_search")).all()
        counts = connection.execute(
            sa.text("SELECT project_id, word, calls, has_set FROM search_word_counts")
        ).all()
        # Each word of the ended call, counted once (twice-said words too); one call is too
        # few for a word to have a set of calls.
        assert sorted(tuple(row) for row in counts) == [
            ("p", word, 1, False) for word in sorted(set(rows[0][1].split()) - {"z0x"})
        ]
        assert connection.execute(sa.text("SELECT * FROM search_word_sets")).all() == []
        command.downgrade(config, "0006")  # and back: the index and its structures go
        names = sa.inspect(connection).get_table_names()
        assert [name for name in names if name.startswith(("call_search", "search_"))] == []
        command.upgrade(config, "head")
        assert connection.execute(sa.text("SELECT call_id, body FROM call_search")).all() == rows
        return rows

    try:
        async with engine.begin() as connection:
            rows = await connection.run_sync(upgrade)
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("old-ended", " alpha bravo z0x charlie s z0" + "café".encode().hex()
         + " z0x lookup order z0x city oslo ")
    ]  # fmt: skip


def _at(text: str) -> Any:
    from datetime import datetime, timezone

    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


async def test_a_call_with_too_many_words_for_a_tsvector_is_still_found_exactly(
    server: Harness,
) -> None:
    words = [f"w{index:07d}" for index in range(46_000)]
    lines = [" ".join(words[start : start + 1000]) for start in range(0, len(words), 1000)]
    call = {
        "id": "huge",
        "agent": "agent-1",
        "day": DAYS[0],
        "ended": True,
        "transcript": [{"role": "user", "content": "\n".join(lines), **_AT}],
        "toolCalls": [],
    }
    await _store(server, call)
    (row,) = await _index_rows(server)
    assert row[2] == TOO_MANY_WORDS
    for query, found in (
        ("w0045999", True),
        ("w0000001 w0031000", True),
        ('"w0000998 w0000999"', True),
        ('"w0000999 w0001000"', False),  # two lines
        ("w0046000", False),
        ('"w0000002 w0000001"', False),
    ):
        assert await _api_ids(server, searchText=query) == ({"huge"} if found else set()), query


async def test_postgresql_reads_every_indexed_word_as_one_lexeme(postgres: Any) -> None:
    """The GIN side holds only if PostgreSQL's parser keeps each encoded word whole."""
    from pipecat_roark.server.search_terms import words

    rng = random.Random(3)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    sample = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    sample += ["1e5", "1e", "e1", "0x1f", "007", "1e-5", "3.14", "v1.2.3", "a.b@c.de", "ünïcödé"]
    text = " ".join([*sample, "café", "Straße", "日本語", "z0", "z0z", "A_B", "x²"])
    indexed = sorted(set(words(text)))
    engine = create_engine(postgres.create_database())
    try:
        async with engine.connect() as connection:
            lexemes = await connection.scalars(
                sa.text("SELECT unnest(tsvector_to_array(to_tsvector('simple', :words)))"),
                {"words": " ".join(indexed)},
            )
            assert sorted(lexemes) == indexed
    finally:
        await engine.dispose()
