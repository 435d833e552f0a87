"""Health, readiness, retention, the inactivity finaliser, leases, and storage failures."""

from __future__ import annotations

import asyncio
import errno
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from pipecat_roark.server import schema
from pipecat_roark.server.database import utcnow
from pipecat_roark.server.jobs import ClaimedJob, claim_job

from .conftest import open_harness
from .harness import Harness, pcm, wav_frames


async def test_health_and_readiness(server: Harness) -> None:
    assert (await server.client.get("/healthz")).json() == {
        "status": "ok",
        "database": None,
        "blobs": None,
    }
    ready = await server.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok", "blobs": "ok"}


async def test_a_call_without_call_ended_is_finalised_after_inactivity(
    sqlite_settings: Any,
) -> None:
    async for server in open_harness(sqlite_settings.replace(inactivity_timeout=0.3)):
        await server.start("abandoned")
        await server.upload("abandoned", 0, pcm(400))
        call_uuid = await server.call_id("abandoned")
        for _ in range(100):
            call = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]
            if call["status"] == "ENDED":
                break
            await asyncio.sleep(0.05)
        assert call["status"] == "ENDED"
        assert call["endedStatus"] == "SILENCE_TIME_OUT"
        for _ in range(100):
            details = await server.details(call_uuid)
            if details["recording"]["issues"]:
                break
            await asyncio.sleep(0.05)
        assert details["finalisedBy"] == "inactivity"
        # No call-ended, so the recording format is unknown: nothing is guessed.
        assert details["recording"]["issues"] == [{"problem": "format_unknown"}]

        # The real call-ended, late, still completes the call and its recording.
        assert (await server.end("abandoned")).status_code == 200
        await server.wait_stitched(call_uuid)
        assert wav_frames(await server.recording(call_uuid))[2] == pcm(400)


async def test_retention_deletes_old_calls_and_their_audio(sqlite_settings: Any) -> None:
    async for server in open_harness(sqlite_settings.replace(retention_days=30)):
        for name in ("old", "new"):
            await server.start(name)
            await server.upload(name, 0, pcm(400))
            await server.end(name)
        old, new = await server.call_id("old"), await server.call_id("new")
        await server.wait_stitched(old)
        async with server.state.engine.begin() as connection:
            await connection.execute(
                update(schema.calls)
                .where(schema.calls.c.id == old)
                .values(created_at=utcnow() - timedelta(days=31))
            )
        for _ in range(100):
            if (await server.get(f"/v1/call/{old}")).status_code == 404:
                break
            await asyncio.sleep(0.05)
        assert (await server.get(f"/v1/call/{old}")).status_code == 404
        assert (await server.get(f"/v1/call/{new}")).status_code == 200
        assert await server.state.blobs.sizes(f"calls/{old}/") == {}


async def _claim(engine: Any, owner: str, lease_seconds: float) -> ClaimedJob | None:
    async with engine.begin() as connection:
        return await claim_job(connection, owner, lease_seconds)


async def test_a_job_held_by_a_dead_replica_is_claimed_after_its_lease(
    sqlite_settings: Any,
) -> None:
    async for server in open_harness(sqlite_settings.replace(run_workers=False)):
        await server.start("orphan")
        await server.upload("orphan", 0, pcm(400))
        await server.end("orphan")
        engine = server.state.engine
        dead = await _claim(engine, "dead-replica", lease_seconds=0.5)
        assert dead is not None
        assert await _claim(engine, "live-replica", lease_seconds=5) is None
        await asyncio.sleep(0.6)
        taken = await _claim(engine, "live-replica", lease_seconds=5)
        assert taken is not None
        assert taken.call_id == dead.call_id
        async with engine.connect() as connection:
            owner = await connection.scalar(select(schema.stitch_jobs.c.lease_owner))
        assert owner == "live-replica"


async def test_a_full_disk_answers_503_and_stores_nothing(
    sqlite_server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sqlite_server
    await server.start("full")
    url = (await server.presign("full", 0)).json()["uploadUrl"]

    def disk_full(*_args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(server.state.blobs, "_write_piece", disk_full)
    answer = await server.put(url, pcm(400))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["code"] == "storage_unavailable"
    blobs = server.settings.resolved_data_dir / "blobs"
    assert [p for p in blobs.rglob("*") if p.is_file()] == []

    monkeypatch.undo()
    assert (await server.put(url, pcm(400))).status_code == 200


async def test_a_database_outage_answers_503_then_recovers(postgres: Any, tmp_path: Any) -> None:
    from .conftest import base_settings

    settings = base_settings(tmp_path / "data").replace(database_url=postgres.create_database())
    async for server in open_harness(settings):
        await server.start("before")
        postgres.stop("immediate")
        try:
            answer = await server.start("during")
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "1"
            ready = await server.client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["database"] == "unavailable"
        finally:
            postgres.restart()
        for _ in range(150):  # the pool reconnects on its own; a loaded machine is slower
            answer = await server.start("after")
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert answer.status_code == 200
        total = (await server.get("/v1/call")).json()["pagination"]["total"]
        assert total == 2  # "during" was refused, so it is not half there


@pytest.mark.filterwarnings("ignore:.*expression-based index")
async def test_the_migrations_build_exactly_the_declared_schema(settings: Any) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from pipecat_roark.server.database import open_database
    from pipecat_roark.server.search_fts import FTS_TABLES

    def declared(name: Any, kind: str, _parent: Any) -> bool:
        return not (kind == "table" and name in FTS_TABLES)  # SQLite's FTS5 makes these

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"include_name": declared})
        return list(compare_metadata(context, schema.metadata))

    async with (
        open_database(settings.resolved_database_url) as engine,
        engine.connect() as connection,
    ):
        assert await connection.run_sync(differences) == []


async def test_ingest_queries_find_rows_by_index_never_by_scanning(sqlite_settings: Any) -> None:
    """Each ingest request costs the same however many calls are stored."""
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []
    async for server in open_harness(sqlite_settings.replace(run_workers=False)):

        def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "COMMIT", "ROLLBACK")):
                statements.append((statement, parameters))

        engine = server.state.engine
        event.listen(engine.sync_engine, "before_cursor_execute", remember)
        await server.start("indexed", agentPrompt="Be kind.")
        await server.upload("indexed", 0, pcm(400))
        await server.end("indexed")
        event.remove(engine.sync_engine, "before_cursor_execute", remember)

        assert len(statements) > 10
        async with engine.connect() as connection:
            for statement, parameters in statements:
                plan = await connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                )
                # A VALUES list of several rows is read as "SCAN n CONSTANT ROWS": no table.
                scans = [
                    row[-1]
                    for row in plan
                    if str(row[-1]).startswith("SCAN")
                    and not str(row[-1]).endswith("CONSTANT ROWS")
                ]
                assert scans == [], (statement, scans)
