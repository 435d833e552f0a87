"""The generated dataset reads back as ingested calls do, on SQLite and on PostgreSQL.

A few hundred generated calls beside one call sent over the protocol, served by the real
server on 127.0.0.1: the same lists, counts and pages; the latency index the generator wrote
is the one ``reply_index.rebuild`` makes from the calls (and the search index the one
``search_index.rebuild`` makes); a seed gives the same calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from benchmarks.call_record import call_ended, call_started
from benchmarks.dataset import MARKERS, Shape, generate, marker
from sqlalchemy import select

from pipecat_roark.server import schema, search_index
from pipecat_roark.server.database import open_database
from pipecat_roark.server.durations import unpacked
from pipecat_roark.server.embed import ensure_project_key, serve_in_background
from pipecat_roark.server.reply_index import rebuild
from pipecat_roark.server.settings import ServerSettings

CALLS = 300
EVENTS = "/v1/integrations/pipecat"


@pytest.fixture
async def served(settings: ServerSettings) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The server on 127.0.0.1 over ``CALLS`` generated calls and one sent call."""
    key = await ensure_project_key(settings, "bench")
    await generate(settings.resolved_database_url, Shape(CALLS))
    async with (
        serve_in_background(settings) as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"authorization": f"Bearer {key}"}, timeout=30
        ) as client,
    ):
        started = datetime.now(timezone.utc) - timedelta(minutes=5)
        for body in (call_started("sent-1", started), call_ended("sent-1", started, 2)):
            answer = await client.post(EVENTS, json=body)
            assert answer.status_code == 200, answer.text
        yield client, key


async def _rows(settings: ServerSettings) -> tuple[list[Any], list[Any], list[Any]]:
    parts_table, rollups_table = schema.reply_parts, schema.latency_rollups
    columns = [c for c in parts_table.c if c.name != "id"]
    searched = [c for c in schema.call_search.c if c.name != "id"]
    async with open_database(settings.resolved_database_url) as engine, engine.connect() as db:
        parts = sorted(tuple(row) for row in await db.execute(select(*columns)))
        rollups = sorted(
            (*row[:-1], sorted(unpacked([row[-1]]).tolist()))
            for row in await db.execute(select(rollups_table))
        )
        search = sorted(tuple(row) for row in await db.execute(select(*searched)))
    return parts, rollups, search


async def test_the_latency_and_search_indexes_are_the_ones_rebuild_makes(
    settings: ServerSettings,
) -> None:
    await ensure_project_key(settings, "bench")
    await generate(settings.resolved_database_url, Shape(CALLS))
    written = await _rows(settings)
    async with open_database(settings.resolved_database_url) as engine, engine.begin() as db:
        assert await db.run_sync(rebuild) > CALLS * 0.9
        assert await db.run_sync(search_index.rebuild) > CALLS * 0.9

    assert all(written)
    assert written == await _rows(settings)


async def test_the_planner_has_statistics_and_postgresql_a_visibility_map(
    settings: ServerSettings,
) -> None:
    """As after months of ingest (autovacuum): plans at a million calls depend on both."""
    await ensure_project_key(settings, "bench")
    await generate(settings.resolved_database_url, Shape(50))
    async with open_database(settings.resolved_database_url) as engine, engine.connect() as db:
        if db.dialect.name == "sqlite":
            analysed = await db.exec_driver_sql("SELECT DISTINCT tbl FROM sqlite_stat1")
            assert {"calls", "call_search"} <= {row[0] for row in analysed}
        else:
            settled = await db.exec_driver_sql(
                "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL "
                "FROM pg_stat_user_tables WHERE relname = 'calls'"
            )
            assert tuple(settled.one()) == (True, True)


async def _all_calls(client: httpx.AsyncClient, **search: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"limit": "100", **search, **({"after": after} if after else {})}
        page = (await client.get("/v1/call", params=params)).json()
        calls += page["data"]
        after = page["pagination"].get("nextCursor")
        if not page["pagination"]["hasMore"]:
            return calls


async def test_generated_calls_read_back_as_sent_ones(
    served: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = served

    calls = await _all_calls(client)
    assert len(calls) == CALLS + 1
    sent = next(c for c in calls if c["externalId"] == "sent-1")
    made = next(c for c in calls if c is not sent and c["endedStatus"] == sent["endedStatus"])
    assert set(made) == set(sent)
    assert made["agents"]
    assert made["durationMs"]
    # A word's total is its kept count (search_counts), read as ingest would have kept it;
    # a marker word is in every K-th call that ended (a call's id holds its index).
    for word in ("subscription", "warehouse", *map(marker, MARKERS)):
        found = await _all_calls(client, searchText=word)
        first = (await client.get("/v1/call", params={"searchText": word, "limit": "1"})).json()
        assert first["pagination"]["total"] == len(found) > 0, word
    for every in MARKERS:
        found = await _all_calls(client, searchText=marker(every))
        indexes = sorted(int(call["externalId"].split("-")[1]) for call in found)
        assert all(index % every == 0 for index in indexes), every
        assert len(indexes) >= 0.9 * len(range(0, CALLS, every)), every
    listed = (await client.get("/calls.json")).json()
    assert listed["pagination"]["total"] == CALLS + 1
    agents = (await client.get("/v1/agent", params={"limit": "100"})).json()["data"]
    assert len(agents) == Shape.agents + 1
    counted = (await client.get("/agents.json")).json()["data"]
    assert sum(agent["calls"] for agent in counted) == CALLS + 1  # generated, and sent
    for path in (
        f"/calls/{made['id']}",
        f"/v1/call/{made['id']}/transcript",
        f"/agents/{made['agents'][0]['id']}",
        f"/agents/{agents[0]['id']}?to={Shape.end}&days=90",
        "/calls?sort=latency",
        "/calls?tool_error=1",
        "/calls?interrupted=1",
        "/agents",
    ):
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])


async def _calls_of(settings: ServerSettings) -> list[Any]:
    c = schema.calls.c
    async with open_database(settings.resolved_database_url) as engine, engine.connect() as db:
        query = select(c.id, c.pipecat_call_id, c.agent_id, c.started_at, c.transcript, c.metrics)
        return [tuple(row) for row in await db.execute(query.order_by(c.id))]


async def test_a_seed_gives_the_same_calls(tmp_path: Path) -> None:
    made = []
    for name in ("one", "two"):
        settings = ServerSettings(data_dir=tmp_path / name, run_workers=False)
        await ensure_project_key(settings, "bench")
        await generate(settings.resolved_database_url, Shape(50, seed=3))
        made.append(await _calls_of(settings))

    assert len(made[0]) == 50
    assert made[0] == made[1]
