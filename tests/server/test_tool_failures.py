"""Each call's number of failed tool calls, kept at ingest so that the calls list's
tool-error filter reads an index of the calls a tool failed in instead of every call's tool
records: the figure follows the rule the page states, the filter reads the partial index on
SQLite and on PostgreSQL, the migration counts the calls stored before it, and
``pipecat-roark rebuild-counts`` counts calls left without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select, update

from pipecat_roark.server import schema
from pipecat_roark.server.analytics import failed_tool_calls
from pipecat_roark.server.settings import ServerSettings
from tests.support.migrations import NOW, old_database

from .conftest import open_harness
from .harness import T0, Harness, run_command
from .plans import query_plan, statements_run


def _call(call_id: str) -> dict[str, Any]:
    return {
        "kind": "tool_call",
        "toolCallId": call_id,
        "name": "lookup",
        "arguments": "{}",
        "timestamp": T0,
    }


def _result(call_id: str, content: str) -> dict[str, Any]:
    return {"kind": "tool_result", "toolCallId": call_id, "content": content, "timestamp": T0}


# Each call's tool records, and how many of its tool calls failed.
TOOLS: dict[str, tuple[list[dict[str, Any]], int]] = {
    "no-tools": ([], 0),
    "answered": ([_call("a"), _result("a", '{"status": "shipped"}')], 0),
    "failed": ([_call("a"), _result("a", '{"error": "timeout"}')], 1),
    "unanswered": ([_call("a"), _call("b"), _result("b", "ok")], 1),
    "both": ([_call("a"), _result("a", '{"error": "x"}'), _call("b")], 2),
    "word-not-quoted": ([_call("a"), _result("a", "no error here")], 0),
    "capitals": ([_call("a"), _result("a", '{"ERROR": "x"}')], 0),
}


def test_the_figure_counts_what_the_page_calls_a_tool_error() -> None:
    for name, (records, failed) in TOOLS.items():
        assert failed_tool_calls(records) == failed, name
    assert failed_tool_calls(None) == 0
    assert failed_tool_calls(["not a record", _call("a")]) == 1


async def _ingest(server: Harness) -> None:
    for name, (records, _) in TOOLS.items():
        assert (await server.start(name)).status_code == 200
        assert (await server.end(name, toolCalls=records)).status_code == 200
    assert (await server.start("still-running")).status_code == 200


async def _filtered(server: Harness) -> set[str]:
    answer = await server.get("/calls.json", tool_error="1", limit=200)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["pagination"]["total"] == len(page["data"])
    return {row["pipecatCallId"] for row in page["data"]}


FAILING = {name for name, (_, failed) in TOOLS.items() if failed}


async def test_the_filter_lists_the_calls_a_tool_failed_in_through_their_own_index(
    server: Harness,
) -> None:
    await _ingest(server)
    calls = schema.calls
    async with server.state.reader.connect() as connection:
        stored = dict(
            (await connection.execute(select(calls.c.pipecat_call_id, calls.c.tool_failure_count)))
            .tuples()
            .all()
        )
    assert stored == {name: failed for name, (_, failed) in TOOLS.items()} | {"still-running": None}

    with statements_run(server, lambda s: "tool_failure_count" in s) as statements:
        assert await _filtered(server) == FAILING
    assert len(statements) == 2, statements  # the page and its count
    for statement, parameters in statements:
        plan = " | ".join(await query_plan(server, statement, parameters))
        assert "ix_calls_project_tool_failed" in plan, plan


async def test_rebuild_counts_counts_the_calls_left_without_the_figure(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data", run_workers=False)
    async for server in open_harness(settings):
        await _ingest(server)
        # Ended by a replica of an earlier release: stored without the figure.
        async with server.state.begin() as connection:
            await connection.execute(update(schema.calls).values(tool_failure_count=None))
        assert await _filtered(server) == set()
    stdout, stderr = await run_command("rebuild-counts", "--data-dir", str(tmp_path / "data"))
    assert stdout.splitlines() == [
        "the call counts of 1 agents were counted again",
        f"{len(FAILING)} calls without the figure had a failed tool call",
    ]
    # Every ended call with tool calls was read: the calls without tools were not.
    with_tools = sum(1 for records, _ in TOOLS.values() if records)
    assert f"counting failed tool calls: {with_tools}/{with_tools} calls" in stderr
    async for server in open_harness(settings):
        assert await _filtered(server) == FAILING


def test_calls_stored_before_the_figure_existed_are_counted_on_upgrade(tmp_path: Path) -> None:
    with old_database(tmp_path / "old.sqlite3", "0011") as old:
        for number, (name, (records, _)) in enumerate(TOOLS.items()):
            old.connection.execute(
                sa.text(
                    "INSERT INTO calls (id, project_id, pipecat_call_id, status, "
                    "started_received, ended_received, stitch_count, created_at, updated_at, "
                    "last_activity_at, tool_calls, tool_call_count) VALUES (:id, 'p', :name, "
                    "'ENDED', 1, 1, 0, :now, :now, :now, :tools, :count)"
                ),
                {
                    "id": f"c{number}",
                    "name": name,
                    "now": NOW,
                    "tools": json.dumps(records),
                    "count": sum(1 for r in records if r["kind"] == "tool_call"),
                },
            )
        old.upgrade()
        rows = old.connection.execute(
            sa.text("SELECT pipecat_call_id, tool_failure_count FROM calls")
        ).all()
        # Only the calls a tool failed in are written; the others read as no failure.
        assert dict(rows) == {name: (failed or None) for name, (_, failed) in TOOLS.items()}
        indexes = old.connection.execute(sa.text("PRAGMA index_list(calls)")).all()
        assert "ix_calls_project_tool_failed" in [row[1] for row in indexes]
        old.downgrade("0011")  # and back: the column and its index go
        columns = old.connection.execute(sa.text("PRAGMA table_info(calls)"))
        assert "tool_failure_count" not in [row[1] for row in columns]
        # The table was altered, not copied: its expression indexes are still there.
        indexes = old.connection.execute(sa.text("PRAGMA index_list(calls)")).all()
        assert "ix_calls_project_started" in [row[1] for row in indexes]
        assert "ix_calls_project_tool_failed" not in [row[1] for row in indexes]
