"""What the most frequent request costs PostgreSQL in round trips, and what a pooled
connection the database closed costs a request: nothing.

The statements the server runs are seen through SQLAlchemy's events (``statements_run``);
what the driver sends besides them (BEGIN, COMMIT, ROLLBACK, a ping) through asyncpg's
query loggers, added to each connection as the pool opens it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text

from .conftest import base_settings, open_harness
from .harness import Harness
from .plans import statements_run
from .services import PostgresCluster


@pytest.fixture
async def pg_server(tmp_path: Path, postgres: PostgresCluster) -> AsyncIterator[Harness]:
    """A server on PostgreSQL and the folder store, without its background workers (their
    queries would be seen too)."""
    settings = base_settings(tmp_path / "data").replace(
        database_url=postgres.create_database(), run_workers=False
    )
    async for server in open_harness(settings):
        yield server


@asynccontextmanager
async def opened_connections(server: Harness) -> AsyncIterator[tuple[list[str], list[Any]]]:
    """The queries sent from here on, and the driver connections, of connections the pool
    opens from here on (the pool is emptied first)."""
    queries: list[str] = []
    drivers: list[Any] = []

    def opened(dbapi_connection: Any, _record: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(lambda record: queries.append(record.query))
        drivers.append(driver)

    # Only queries sent as text are logged (prepared statements are not): BEGIN, COMMIT,
    # ROLLBACK and SQLAlchemy's ping, each from the loop's next turn.

    await server.state.engine.dispose()
    engine = server.state.engine.sync_engine
    event.listen(engine, "connect", opened)
    try:
        yield queries, drivers
    finally:
        event.remove(engine, "connect", opened)


async def test_a_chunks_upload_url_is_one_round_trip_to_postgresql(pg_server: Harness) -> None:
    server = pg_server
    assert (await server.start("trips")).status_code == 200
    assert (await server.presign("trips", 0)).status_code == 200
    async with opened_connections(server) as (queries, _):
        with statements_run(server, lambda statement: True) as run:
            answer = await server.presign("trips", 1)
        await asyncio.sleep(0)
    assert answer.status_code == 200
    # The call's row, the chunk's and the stitch job's in one statement, with no BEGIN,
    # COMMIT or ping around it.
    assert [statement.lstrip()[:4].upper() for statement, _ in run] == ["WITH"]
    assert queries == []

    async with server.state.engine.connect() as connection:
        chunks = await connection.execute(
            text(
                "SELECT chunk_index FROM chunks JOIN calls ON calls.id = chunks.call_id"
                " WHERE calls.pipecat_call_id = 'trips' ORDER BY chunk_index"
            )
        )
        assert [row.chunk_index for row in chunks] == [0, 1]


async def test_a_late_chunk_of_an_ended_call_asks_for_the_call_to_be_stitched_again(
    pg_server: Harness,
) -> None:
    """The one statement also enqueues the stitch job a late chunk needs, and only then."""
    server = pg_server
    assert (await server.start("late")).status_code == 200
    assert (await server.presign("late", 0)).status_code == 200

    async def jobs() -> list[tuple[int, Any]]:
        async with server.state.engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT generation, due_at FROM stitch_jobs JOIN calls"
                    " ON calls.id = stitch_jobs.call_id WHERE calls.pipecat_call_id = 'late'"
                )
            )
            return [(row.generation, row.due_at) for row in rows]

    assert await jobs() == []
    assert (await server.end("late")).status_code == 200
    [(generation, _)] = await jobs()
    assert (await server.presign("late", 1)).status_code == 200
    assert [job[0] for job in await jobs()] == [generation + 1]


async def test_a_connection_the_database_closed_is_replaced_before_a_request_uses_it(
    pg_server: Harness, postgres: PostgresCluster
) -> None:
    """A restart or a terminated backend leaves closed connections in the pool; no request
    is answered with an error for them, and none pays a round trip to find out."""
    server = pg_server
    assert (await server.start("closed")).status_code == 200
    async with opened_connections(server) as (queries, drivers):
        answers = await asyncio.gather(*(server.presign("closed", index) for index in range(6)))
        assert [answer.status_code for answer in answers] == [200] * 6
        assert drivers

        ours = [driver.get_server_pid() for driver in drivers]
        url = server.state.engine.url.set(drivername="postgresql")
        other = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            await other.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", ours)
        finally:
            await other.close()
        for _ in range(600):  # until the driver has read the goodbye from each socket
            if all(driver.is_closed() for driver in drivers[: len(ours)]):
                break
            await asyncio.sleep(0.05)
        assert all(driver.is_closed() for driver in drivers[: len(ours)])

        await asyncio.sleep(0)
        queries.clear()
        with statements_run(server, lambda statement: True) as run:
            answers = [await server.presign("closed", 6 + i) for i in range(len(ours) + 2)]
        await asyncio.sleep(0)
    assert [answer.status_code for answer in answers] == [200] * (len(ours) + 2)
    assert len(run) == len(answers)  # one statement each: no retry
    assert queries == []  # and no ping


async def test_a_read_sends_no_begin_or_rollback(pg_server: Harness) -> None:
    """Reads need no transaction (each statement reads what is committed, as at READ
    COMMITTED): only their statements reach the database."""
    server = pg_server
    assert (await server.start("read")).status_code == 200
    assert (await server.get("/v1/call")).status_code == 200
    async with opened_connections(server) as (queries, _):
        with statements_run(server, lambda statement: True) as run:
            answer = await server.get("/v1/call")
        await asyncio.sleep(0)
    assert answer.status_code == 200
    assert answer.json()["pagination"]["total"] == 1
    assert run
    assert queries == []


async def test_a_busy_replica_keeps_the_connections_it_opened(pg_server: Harness) -> None:
    """Connections opened for requests at once are kept for the next ones: opening one
    (and preparing its statements again) costs a replica more than the request."""
    server = pg_server
    engine = server.state.engine
    async with opened_connections(server) as (_, drivers):
        for _ in range(2):
            in_flight = [await engine.connect() for _ in range(16)]
            for connection in in_flight:
                await connection.close()
        assert len(drivers) == 16
