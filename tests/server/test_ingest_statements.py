"""What call-started runs inside its write transaction, when the call is new and its agent
and prompt are known (nearly every call): on SQLite every statement there is time each other
writer waits, so a burst of calls starting queues behind them; on PostgreSQL a row that
every call-started of an agent wrote would make them wait for each other."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from benchmarks.latency_attribution import breakdowns
from sqlalchemy import select

from pipecat_roark.server import schema
from pipecat_roark.server.settings import ServerSettings

from .conftest import open_harness
from .harness import Harness
from .plans import statements_run


@pytest.fixture
async def quiet_server(settings: ServerSettings) -> AsyncIterator[Harness]:
    """The app without its background workers, whose statements would be counted too."""
    async for harness in open_harness(settings.replace(run_workers=False)):
        yield harness


async def test_an_agent_and_prompt_seen_before_are_read_not_written(
    quiet_server: Harness,
) -> None:
    """Nearly every call-started names an agent and prompt the server knows: one read each,
    and the call's own row read once with what the event needs."""
    server = quiet_server
    await server.start("f", agentId="known", agentName="Known", agentPrompt="Be brief.")
    with statements_run(server, lambda statement: True) as run:
        await server.start("g", agentId="known", agentName="Known", agentPrompt="Be brief.")
    # Their call counts change by a row of the call's own (agent_counts): neither the
    # agent's row nor the prompt's is written, so no call waits for another's.
    inserted = [s for s, _ in run if s.lstrip().upper().startswith("INSERT")]
    assert [s.split()[2] for s in inserted] == ["calls", "agent_count_changes"]
    updated = [s.split()[1] for s, _ in run if s.lstrip().upper().startswith("UPDATE")]
    assert updated == ["calls"]
    # The new call's row, with what the event needs, comes back from its insert.
    kinds = [s.split()[0].upper() for s, _ in run if "ingest_warnings" in s]
    assert [kind for kind in kinds if kind != "UPDATE"] == ["INSERT"], kinds
    # A new name renames the agent.
    await server.start("h", agentId="known", agentName="Renamed", agentPrompt="Be brief.")
    async with server.state.reader.connect() as connection:
        names = await connection.scalars(
            select(schema.agents.c.name).where(schema.agents.c.custom_id == "known")
        )
        assert list(names) == ["Renamed"]


_OWN_ROWS = ("reply_parts", "call_search", "stitch_jobs")
_SHARED_ROWS = ("agent_days", "latency_rollups", "search_word_counts", "search_word_sets")


def _written(statement: str) -> str | None:
    """The table an INSERT or UPDATE writes."""
    words = statement.split()
    if words and words[0].upper() == "INSERT":
        return words[2]
    if words and words[0].upper() == "UPDATE":
        return words[1]
    return None


async def test_call_ended_writes_the_calls_own_rows_before_the_rows_it_shares(
    quiet_server: Harness,
) -> None:
    """The rows every call of an agent or a project writes (the agent's day and rollups, the
    words' counts and sets) stay locked from their first write to the commit: call-ended
    writes them last, after the call's replies, index row and stitch job, so a burst of
    calls ending waits there for as short a time as the write allows."""
    await quiet_server.start("e", agentId="ends")
    with statements_run(quiet_server, lambda statement: True) as run:
        answer = await quiet_server.end("e", metrics=breakdowns(random.Random(5)))
    assert answer.status_code == 200, answer.text
    written = [table for table in (_written(s) for s, _ in run) if table is not None]
    own = [index for index, table in enumerate(written) if table in _OWN_ROWS]
    shared = [index for index, table in enumerate(written) if table in _SHARED_ROWS]
    assert {written[index] for index in own} == set(_OWN_ROWS), written
    assert {written[index] for index in shared} == set(_SHARED_ROWS) - {"search_word_sets"}
    assert max(own) < min(shared), written


async def test_a_call_naming_a_new_agent_locks_no_row_it_does_not_change(
    quiet_server: Harness,
) -> None:
    """Calls naming an agent the server has not seen yet may all find it missing, then all
    insert it: the first inserts, the others' inserts yield without locking the row (an
    upsert's update would lock it to their commit, even one its condition turns down), and
    only a new name takes the row, to rename it."""
    with statements_run(quiet_server, lambda statement: "agents" in statement) as first:
        await quiet_server.start("n", agentId="new-agent", agentName="New")
    # The request that inserted the row has it from the insert: nothing to rename, or read.
    assert [s.split()[0].upper() for s, _ in first] == ["SELECT", "INSERT"], first
    with statements_run(quiet_server, lambda statement: "agents" in statement) as run:
        await quiet_server.start("m", agentId="new-agent", agentName="Renamed")
    run = first + run
    upserts = [s for s, _ in run if "ON CONFLICT" in s.upper()]
    assert upserts
    assert all("DO NOTHING" in s.upper() for s in upserts), upserts
    # Each update names the row only where its name differs (SQLite: IS NOT).
    renames = [s for s, _ in run if s.lstrip().upper().startswith("UPDATE AGENTS")]
    assert renames
    assert all("AGENTS.NAME IS" in s.upper() for s in renames), renames
    listed = (await quiet_server.get("/agents.json")).json()["data"]
    assert [a["name"] for a in listed if a["customId"] == "new-agent"] == ["Renamed"]
