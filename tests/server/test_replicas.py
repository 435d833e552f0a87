"""Two ``serve`` replicas on one PostgreSQL and one S3 bucket, as the scale setup runs.

Requests of one call alternate between the replicas; the call is stored once and stitched
once. A replica SIGKILLed in the middle of a stitch loses nothing: its lease expires and
the other replica stitches the call.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pipecat_roark.server import schema
from pipecat_roark.server.database import create_engine
from pipecat_roark.server.embed import ensure_project_key
from pipecat_roark.server.settings import ServerSettings

from .harness import Harness, pcm, wav_frames
from .services import MotoServer, PostgresCluster, ServeProcess

LEASE = 2.0


class Replicas:
    def __init__(
        self, servers: list[ServeProcess], harnesses: list[Harness], database_url: str
    ) -> None:
        self.servers = servers
        self.harnesses = harnesses
        self.engine = create_engine(database_url)

    async def call_row(self, call_uuid: str) -> Any:
        async with self.engine.connect() as connection:
            return (
                await connection.execute(select(schema.calls).where(schema.calls.c.id == call_uuid))
            ).one()


@pytest.fixture
async def replicas(
    postgres: PostgresCluster, s3: MotoServer, tmp_path: Path
) -> AsyncIterator[Replicas]:
    database_url = postgres.create_database()
    settings = ServerSettings(
        database_url=database_url,
        blob_url=f"s3://replicas-{uuid.uuid4().hex[:10]}/audio",
        s3_endpoint_url=s3.endpoint,
        data_dir=tmp_path,
    )
    env = {
        "ROARK_SERVER_DATABASE_URL": database_url,
        "ROARK_SERVER_BLOB_URL": str(settings.blob_url),
        "ROARK_SERVER_S3_ENDPOINT_URL": s3.endpoint,
        "ROARK_SERVER_DATA_DIR": str(tmp_path),
        "ROARK_SERVER_STITCH_LEASE": str(LEASE),
        "ROARK_SERVER_WORKER_POLL_INTERVAL": "0.1",
    }
    # Both start at once: migrations must be applied once, under the advisory lock.
    servers = [ServeProcess.launch([], env, tmp_path / f"replica-{n}.log") for n in range(2)]
    for server in servers:
        await asyncio.to_thread(server.wait_ready)
    key = await ensure_project_key(settings, "scale")
    clients = [httpx.AsyncClient(base_url=server.url, timeout=30) for server in servers]
    group = Replicas(
        servers, [Harness(client=c, key=key, settings=settings) for c in clients], database_url
    )
    try:
        yield group
    finally:
        for client in clients:
            await client.aclose()
        for server in servers:
            server.stop()
        await group.engine.dispose()


async def test_a_call_alternating_between_replicas_is_stored_once_and_stitched_once(
    replicas: Replicas,
) -> None:
    a, b = replicas.harnesses
    chunks = [pcm(8192, seed=i) for i in range(6)]
    assert (await a.start("split-call")).status_code == 200
    for index, data in enumerate(chunks):
        await (a, b)[index % 2].upload("split-call", index, data)
    assert (await b.end("split-call")).status_code == 200
    assert (await a.end("split-call")).json()["changed"] is False

    listing = (await a.get("/v1/call")).json()
    assert listing["pagination"]["total"] == 1
    call_uuid = listing["data"][0]["id"]
    await b.wait_stitched(call_uuid)
    await asyncio.sleep(1.0)  # time for a second, wrong stitch to show up
    details = await a.details(call_uuid)
    assert details["recording"]["stitchCount"] == 1
    assert details["recording"]["missingChunks"] == []
    assert wav_frames(await b.recording(call_uuid))[2] == b"".join(chunks)


async def test_a_replica_killed_mid_stitch_loses_nothing(replicas: Replicas) -> None:
    a, b = replicas.harnesses
    chunks = [pcm(32768, seed=i) for i in range(160)]
    await a.start("big-call")
    semaphore = asyncio.Semaphore(8)

    async def upload(index: int) -> None:
        async with semaphore:
            await (a, b)[index % 2].upload("big-call", index, chunks[index])

    await asyncio.gather(*(upload(index) for index in range(len(chunks))))
    await a.end("big-call")
    call_uuid = await a.call_id("big-call")

    holder = None
    for _ in range(400):
        async with replicas.engine.connect() as connection:
            holder = await connection.scalar(
                select(schema.stitch_jobs.c.lease_owner).where(
                    schema.stitch_jobs.c.call_id == call_uuid
                )
            )
        if holder:
            break
        await asyncio.sleep(0.01)
    assert holder, "no replica claimed the stitch job"
    pid = int(holder.split(":")[1])
    victim = next(server for server in replicas.servers if server.pid == pid)
    os.kill(pid, signal.SIGKILL)
    victim.process.wait(timeout=10)
    assert (await replicas.call_row(call_uuid)).stitch_count == 0, (
        "the stitch finished before the kill"
    )

    survivor = replicas.harnesses[1 - replicas.servers.index(victim)]
    details = await survivor.wait_stitched(call_uuid, timeout=LEASE * 10)
    assert details["recording"]["stitchCount"] == 1
    assert details["recording"]["missingChunks"] == []
    assert wav_frames(await survivor.recording(call_uuid))[2] == b"".join(chunks)
