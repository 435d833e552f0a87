"""Each agent's number of calls, kept at ingest so that the agents list never counts a
million calls: it equals a count of the stored calls through retries, call-ended before
call-started and deletion, on SQLite and on PostgreSQL; the list reads one index seek per
agent for the last call; the migration counts calls stored before it; and
``pipecat-roark rebuild-counts`` counts calls written straight into the database."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import func, select, update

from pipecat_roark.server import schema
from pipecat_roark.server.agent_counts import fold, rebuild_revisions
from pipecat_roark.server.settings import ServerSettings
from tests.support.migrations import NOW, old_database

from .conftest import open_harness
from .harness import Harness, run_command
from .plans import query_plan, statements_run


async def _listed(server: Harness) -> dict[str, tuple[int, str | None]]:
    """The agents list's calls and last call, by the agent's custom id."""
    answer = await server.get("/agents.json")
    assert answer.status_code == 200, answer.text
    return {a["customId"]: (a["calls"], a["lastCallAt"]) for a in answer.json()["data"]}


async def _counted(server: Harness, by_revision: bool = False) -> dict[str, int]:
    """Each agent's calls (by its custom id), or each revision's (by its prompt), counted
    from the calls themselves."""
    calls = schema.calls
    owners, name, link = (
        (schema.agent_prompts, schema.agent_prompts.c.prompt, calls.c.prompt_id)
        if by_revision
        else (schema.agents, schema.agents.c.custom_id, calls.c.agent_id)
    )
    query = (
        select(name, func.count(calls.c.id))
        .select_from(owners.outerjoin(calls, link == owners.c.id))
        .group_by(name)
    )
    async with server.state.reader.connect() as connection:
        return {row[0]: int(row[1]) for row in await connection.execute(query)}


def _at(minute: int) -> str:
    return f"2026-01-01T10:{minute:02d}:00+00:00"


async def test_each_agent_counts_its_calls_once_and_loses_the_deleted_ones(
    server: Harness,
) -> None:
    for minute in range(3):
        assert (await server.start(f"a-{minute}", eventTimestamp=_at(minute))).status_code == 200
    # A retried call-started is the same call.
    assert (await server.start("a-2", eventTimestamp=_at(2))).status_code == 200
    # call-ended first (the call has no agent yet), then call-started names it.
    assert (await server.end("b-late", callStartedAt=_at(9))).status_code == 200
    assert (
        await server.start("b-late", agentId="agent-b", eventTimestamp=_at(9))
    ).status_code == 200
    assert (await server.start("b-0", agentId="agent-b", eventTimestamp=_at(4))).status_code == 200
    # call-ended alone: no agent, counted nowhere.
    assert (await server.end("nobody")).status_code == 200

    assert await _listed(server) == {
        "agent-1": (3, "2026-01-01T10:02:00.000Z"),
        "agent-b": (2, "2026-01-01T10:09:00.000Z"),
    }
    assert await _counted(server) == {"agent-1": 3, "agent-b": 2}

    newest_b = await server.call_id("b-late")
    answer = await server.client.delete(f"/v1/call/{newest_b}", headers=server.headers)
    assert answer.status_code in (200, 204), answer.text
    again = await server.client.delete(f"/v1/call/{newest_b}", headers=server.headers)
    assert again.status_code == 404
    assert await _listed(server) == {
        "agent-1": (3, "2026-01-01T10:02:00.000Z"),
        "agent-b": (1, "2026-01-01T10:04:00.000Z"),  # the last call left is the newest now
    }
    assert await _counted(server) == {"agent-1": 3, "agent-b": 1}


async def test_the_agents_list_reads_one_index_seek_per_agent_never_every_call(
    server: Harness,
) -> None:
    for number in range(3):
        await server.start(f"seek-{number}", agentId=f"agent-{number % 2}")
    with statements_run(server, lambda s: "calls" in s and "agents" in s) as statements:
        assert set(await _listed(server)) == {"agent-0", "agent-1"}
    assert len(statements) == 1, statements  # the agents, each with its last call
    ((statement, parameters),) = statements
    plan = await query_plan(server, statement, parameters)
    assert _reads_calls_by_agent_only(plan), " | ".join(plan)


def _reads_calls_by_agent_only(plan: list[str]) -> bool:
    """Every read of ``calls`` in the plan is a seek on one agent's index entries."""
    reads = 0
    for number, node in enumerate(plan):
        if node.startswith(("SCAN calls", "SEARCH calls")):  # SQLite
            reads += 1
            if "ix_calls_agent_started (agent_id=?)" not in node:
                return False
        elif " on calls" in node:  # PostgreSQL: the node, then its conditions
            reads += 1
            condition = plan[number + 1].replace("::text", "").replace("(", "").replace(")", "")
            if "ix_calls_agent_started" not in node or "agent_id = agents.id" not in condition:
                return False
    return reads == 1


async def test_rebuild_counts_from_the_command_line(tmp_path: Path) -> None:
    from pipecat_roark.server.app import open_state

    settings = ServerSettings(data_dir=tmp_path / "data", run_workers=False)
    async for server in open_harness(settings):
        for number in range(3):
            await server.start(f"counted-{number}", agentPrompt="You count.")
    # Written straight into the database, as an import would: the count does not know.
    async with open_state(settings) as state, state.begin() as connection:
        await connection.execute(update(schema.agents).values(call_count=0))
        await connection.execute(update(schema.agent_prompts).values(call_count=0))
    stdout, stderr = await run_command("rebuild-counts", "--data-dir", str(tmp_path / "data"))
    assert stdout.splitlines()[0] == "the call counts of 1 agents were counted again"
    assert "DEBUG" not in stderr
    async for server in open_harness(settings):
        assert (await _listed(server))["agent-1"][0] == 3
        agent_id = (await server.get("/agents.json")).json()["data"][0]["id"]
        assert await _revision_calls(server, agent_id) == {"You count.": 3}


def test_calls_stored_before_the_counts_existed_are_counted_on_upgrade(tmp_path: Path) -> None:
    with old_database(tmp_path / "old.sqlite3", "0009") as old:
        for agent in ("a", "quiet"):
            old.connection.execute(
                sa.text(f"INSERT INTO agents VALUES ('{agent}', 'p', '{agent}', NULL, :now, :now)"),
                {"now": NOW},
            )
        for number in range(2):
            old.connection.execute(
                sa.text(
                    "INSERT INTO calls (id, project_id, pipecat_call_id, agent_id, status, "
                    "started_received, ended_received, stitch_count, created_at, updated_at, "
                    f"last_activity_at) VALUES ('c{number}', 'p', 'old-{number}', 'a', 'ENDED', "
                    "1, 1, 0, :now, :now, :now)"
                ),
                {"now": NOW},
            )
        old.upgrade()
        counts = old.connection.execute(sa.text("SELECT id, call_count FROM agents ORDER BY id"))
        assert [tuple(row) for row in counts] == [("a", 2), ("quiet", 0)]
        old.downgrade("0009")  # and back: the column goes
        columns = old.connection.execute(sa.text("PRAGMA table_info(agents)"))
        assert "call_count" not in [row[1] for row in columns]


async def _revision_calls(server: Harness, agent_id: str) -> dict[str, int]:
    """The agent page's calls per revision, by the revision's prompt."""
    answer = await server.get(f"/agents/{agent_id}.json")
    assert answer.status_code == 200, answer.text
    return {r["prompt"]: r["calls"] for r in answer.json()["revisions"]}


async def test_each_revision_counts_its_calls_and_the_agent_page_reads_the_counts(
    server: Harness,
) -> None:
    for number in range(3):
        prompt = "You are helpful." if number < 2 else "You are brief."
        await server.start(f"r-{number}", agentId="agent-r", agentPrompt=prompt)
    await server.start("r-1", agentId="agent-r", agentPrompt="You are helpful.")  # a retry
    assert (await server.end("r-late")).status_code == 200  # ended first, started after
    await server.start("r-late", agentId="agent-r", agentPrompt="You are brief.")
    await server.start("r-none", agentId="agent-r")  # no prompt: no revision
    agent_id = (await server.get("/agents.json")).json()["data"][0]["id"]
    expected = {"You are helpful.": 2, "You are brief.": 2}
    with statements_run(server, lambda s: "GROUP BY" in s and "prompt_id" in s) as counting:
        assert await _revision_calls(server, agent_id) == expected
    assert counting == []  # the page reads the kept counts, never counts the calls
    assert await _counted(server, by_revision=True) == expected

    deleted = await server.call_id("r-late")
    answer = await server.client.delete(f"/v1/call/{deleted}", headers=server.headers)
    assert answer.status_code in (200, 204), answer.text
    expected = {"You are helpful.": 2, "You are brief.": 1}
    assert await _revision_calls(server, agent_id) == expected
    assert await _counted(server, by_revision=True) == expected

    # Folded into the rows (by this fold, or by the maintenance loop's before it), the
    # counts read the same, and the rows hold them whole.
    async with server.state.begin() as connection:
        await connection.run_sync(fold)
        assert await connection.run_sync(fold) == 0
    assert await _revision_calls(server, agent_id) == expected
    prompts = schema.agent_prompts
    async with server.state.reader.connect() as connection:
        kept = await connection.execute(
            select(prompts.c.prompt, prompts.c.call_count).where(prompts.c.agent_id == agent_id)
        )
        assert {prompt: calls for prompt, calls in kept} == expected

    # Written wrong (an import would leave them at 0): rebuild-counts counts them again.
    async with server.state.begin() as connection:
        await connection.execute(update(schema.agent_prompts).values(call_count=0))
    async with server.state.begin() as connection:
        await connection.run_sync(rebuild_revisions)
    assert await _revision_calls(server, agent_id) == expected


def test_revisions_stored_before_their_counts_existed_are_counted_on_upgrade(
    tmp_path: Path,
) -> None:
    with old_database(tmp_path / "old.sqlite3", "0013") as old:
        old.connection.execute(
            sa.text("INSERT INTO agents VALUES ('a', 'p', 'a', NULL, :now, :now, 3)"),
            {"now": NOW},
        )
        for prompt in ("p1", "p2"):
            old.connection.execute(
                sa.text(f"INSERT INTO agent_prompts VALUES ('{prompt}', 'a', 'x{prompt}', "
                        f"'{prompt}', :now)"),
                {"now": NOW},
            )  # fmt: skip
        for number, prompt in enumerate(("p1", "p1", None)):
            old.connection.execute(
                sa.text(
                    "INSERT INTO calls (id, project_id, pipecat_call_id, agent_id, prompt_id, "
                    "status, started_received, ended_received, stitch_count, created_at, "
                    f"updated_at, last_activity_at) VALUES ('c{number}', 'p', 'old-{number}', "
                    "'a', :prompt, 'ENDED', 1, 1, 0, :now, :now, :now)"
                ),
                {"now": NOW, "prompt": prompt},
            )
        old.upgrade()
        counts = old.connection.execute(
            sa.text("SELECT id, call_count FROM agent_prompts ORDER BY id")
        )
        assert [tuple(row) for row in counts] == [("p1", 2), ("p2", 0)]
        old.downgrade("0013")  # and back: the column goes
        columns = old.connection.execute(sa.text("PRAGMA table_info(agent_prompts)"))
        assert "call_count" not in [row[1] for row in columns]
