"""The latency index kept by ingest: what call-ended sends lands in it, on SQLite and on
PostgreSQL, equal to what a rebuild makes from the calls; a deleted call leaves it; and
``pipecat-roark rebuild-latency`` makes it from calls written straight into the database."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from benchmarks.latency_attribution import PARTS, breakdowns
from sqlalchemy import select

from pipecat_roark.server import schema
from pipecat_roark.server.database import MIGRATIONS_DIR, create_engine
from pipecat_roark.server.durations import unpacked
from pipecat_roark.server.reply_index import rebuild
from pipecat_roark.server.settings import ServerSettings
from tests.server.harness import Harness, run_command
from tests.support.migrations import NOW, old_database

DAY = "2026-01-01"


async def _index(server: Harness) -> tuple[list[Any], list[Any]]:
    """Both tables, in an order that does not depend on how they were written."""
    parts, rollups = schema.reply_parts, schema.latency_rollups
    async with server.state.reader.connect() as connection:
        part_rows = (await connection.execute(select(parts))).all()
        rollup_rows = (await connection.execute(select(rollups))).all()
    part_columns = [c.name for c in parts.columns if c.name != "id"]
    rollup_columns = [c.name for c in rollups.columns if c.name != "samples"]
    return (
        sorted(tuple(row._mapping[c] for c in part_columns) for row in part_rows),
        sorted(
            (
                *(row._mapping[c] for c in rollup_columns),
                sorted(unpacked([row.samples]).tolist()),
            )
            for row in rollup_rows
        ),
    )


async def _send(server: Harness, count: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(7)
    sent = {}
    for index in range(count):
        call_id = f"index-{index}"
        metrics = breakdowns(rng)
        if index % 3 == 0:  # call-ended first, then call-started names the agent
            assert (await server.end(call_id, metrics=metrics)).status_code == 200
            assert (await server.start(call_id)).status_code == 200
        else:
            assert (await server.start(call_id)).status_code == 200
            assert (await server.end(call_id, metrics=metrics)).status_code == 200
        sent[call_id] = metrics
    return sent


def _direct(sent: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str, str], list[float]]:
    values: dict[tuple[str, str, str], list[float]] = {}
    for metrics in sent.values():
        for metric in metrics:
            for part in metric["contributions"]:
                name = (part["key"], part["owner"], part["ownerKind"])
                values.setdefault(name, []).append(part["durationSecs"])
    return values


@pytest.mark.asyncio
async def test_ingest_keeps_the_index_a_rebuild_would_make(server: Harness) -> None:
    sent = await _send(server, 12)
    answer = await server.get("/v1/agent/agent-1/latency", **{"from": DAY, "to": DAY})
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["total"]["replies"] == 24
    got = {(p["key"], p["owner"], p["ownerKind"]): p for p in data["total"]["parts"]}
    for name, values in _direct(sent).items():
        assert got[name]["replies"] == len(values)
        assert got[name]["p95"] == pytest.approx(np.percentile(values, 95), abs=1e-12)
    written = await _index(server)
    assert len(written[0]) == 24 * (len(PARTS) + 1)
    async with server.state.begin() as connection:
        assert await connection.run_sync(rebuild) == 12
    assert await _index(server) == written

    # A repeated call-ended changes nothing.
    call_id = next(iter(sent))
    assert (await server.end(call_id, metrics=sent[call_id])).status_code == 200
    assert await _index(server) == written

    # Deleted, a call's durations leave the percentiles.
    gone = await server.call_id(call_id)
    assert (await server.client.delete(f"/v1/call/{gone}", headers=server.headers)).status_code in (
        200,
        204,
    )
    del sent[call_id]
    after = (await server.get("/v1/agent/agent-1/latency", **{"from": DAY, "to": DAY})).json()
    assert after["data"]["total"]["replies"] == 22
    llm = PARTS[2]
    (entry,) = [p for p in after["data"]["total"]["parts"] if p["key"] == llm[0]]
    assert entry["p95"] == pytest.approx(np.percentile(_direct(sent)[llm], 95), abs=1e-12)
    remaining = await _index(server)
    async with server.state.begin() as connection:
        await connection.run_sync(rebuild)
    assert await _index(server) == remaining

    # The slowest replies, read off the index with all their parts.
    slowest = await server.get("/v1/agent/agent-1/slowest-replies", sinceDays=366, limit=3)
    assert slowest.status_code == 200, slowest.text
    replies = slowest.json()["data"]["replies"]
    totals = sorted((m["value"] for ms in sent.values() for m in ms), reverse=True)[:3]
    assert [r["latencySecs"] for r in replies] == pytest.approx(totals, abs=1e-12)
    assert {c["key"] for c in replies[0]["contributions"]} == {k for k, _, _ in PARTS}


@pytest.mark.asyncio
async def test_rebuild_latency_from_the_command_line(tmp_path: Path) -> None:
    from pipecat_roark.server.app import open_state
    from tests.server.conftest import open_harness

    settings = ServerSettings(data_dir=tmp_path / "data", run_workers=False)
    async for server in open_harness(settings):
        await _send(server, 4)
        written = await _index(server)
    async with open_state(settings) as state, state.begin() as connection:
        await connection.execute(schema.latency_rollups.delete())
        await connection.execute(schema.reply_parts.delete())
    stdout, stderr = await run_command("rebuild-latency", "--data-dir", str(tmp_path / "data"))
    assert "4/4 calls" in stderr  # progress
    assert stdout == "the latency index was rebuilt from 4 ended calls\n"
    assert "DEBUG" not in stderr
    async for server in open_harness(settings):
        assert await _index(server) == written


def test_calls_stored_before_the_index_existed_are_indexed_on_upgrade(tmp_path: Path) -> None:
    metrics = breakdowns(random.Random(3))
    with old_database(tmp_path / "old.sqlite3", "0004") as old:
        old.connection.execute(
            sa.text("INSERT INTO agents VALUES ('a', 'p', 'agent-1', NULL, :now, :now)"),
            {"now": NOW},
        )
        old.connection.execute(
            sa.text(
                "INSERT INTO calls (id, project_id, pipecat_call_id, agent_id, status, "
                "started_received, ended_received, stitch_count, started_at, created_at, "
                "updated_at, last_activity_at, metrics) VALUES ('c', 'p', 'old-call', 'a', "
                "'ENDED', 1, 1, 0, :now, :now, :now, :now, :metrics)"
            ),
            {"now": NOW, "metrics": json.dumps(metrics)},
        )
        old.upgrade()
        parts = old.connection.execute(
            sa.text("SELECT key, secs FROM reply_parts WHERE call_id = 'c' AND reply_index = 1")
        ).all()
        rollups = old.connection.execute(
            sa.text("SELECT day, count, samples FROM latency_rollups WHERE key = 'llm_inference'")
        ).all()
    second = metrics[1]["contributions"]
    llm = sorted(
        p["durationSecs"]
        for m in metrics
        for p in m["contributions"]
        if p["key"] == "llm_inference"
    )
    assert sorted(unpacked([rollups[0].samples]).tolist()) == llm
    assert dict(parts) == {"": sum(p["durationSecs"] for p in second)} | {
        p["key"]: p["durationSecs"] for p in second
    }
    assert [tuple(row[:2]) for row in rollups] == [("2026-01-01", 2)]


def _rollups_as_stored(connection: sa.Connection) -> list[Any]:
    """Each rollup row by its key, with its durations sorted, whichever way they are kept."""
    rows = connection.execute(sa.text("SELECT * FROM latency_rollups")).all()
    out = []
    for row in rows:
        stored = row.samples
        values = (
            [float(v) for v in stored.split(",")]
            if isinstance(stored, str)
            else unpacked([bytes(stored)]).tolist()
        )
        key = (row.project_id, row.agent_id, str(row.day)[:10], row.hour, row.prompt_id)
        out.append((*key, row.key, row.owner, row.owner_kind, row.count, sorted(values)))
    return sorted(out)


@pytest.mark.asyncio
async def test_an_upgrade_packs_the_durations_and_a_downgrade_writes_them_as_text(
    settings: ServerSettings,
) -> None:
    """0016 makes the rollups again from the parts, on either database, and back."""
    from tests.server.conftest import open_harness

    async for server in open_harness(settings.replace(run_workers=False)):
        await _send(server, 6)
    engine = create_engine(settings.resolved_database_url)

    def migrate(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection

        def kept() -> list[Any]:
            return (
                connection.execute(sa.text("SELECT samples FROM latency_rollups")).scalars().all()
            )

        assert all(isinstance(stored, bytes) for stored in kept())
        ingested = _rollups_as_stored(connection)
        assert len(ingested) == len(PARTS) + 1  # one hour, one prompt: each part and the total
        assert sum(row[-2] for row in ingested) == 12 * (len(PARTS) + 1)
        command.downgrade(config, "0015")
        assert all(isinstance(stored, str) and "," in stored for stored in kept())
        assert _rollups_as_stored(connection) == ingested
        command.upgrade(config, "head")
        assert all(isinstance(stored, bytes) for stored in kept())
        assert _rollups_as_stored(connection) == ingested

    try:
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
    finally:
        await engine.dispose()
