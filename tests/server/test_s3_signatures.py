"""Upload and recording URLs are real SigV4 presigned URLs that an enforcing S3 accepts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pipecat_roark.server.settings import ServerSettings

from .conftest import base_settings, open_harness
from .harness import Harness, pcm, wav_frames
from .services import SeaweedS3


@pytest.fixture
async def enforcing(sigv4_s3: SeaweedS3, tmp_path: Path) -> AsyncIterator[Harness]:
    settings: ServerSettings = base_settings(tmp_path / "data").replace(
        blob_url=f"s3://sig-{uuid.uuid4().hex[:10]}/audio", s3_endpoint_url=sigv4_s3.endpoint
    )
    async for harness in open_harness(settings):
        yield harness


async def test_presigned_urls_pass_sigv4_and_tampered_ones_fail(enforcing: Harness) -> None:
    server = enforcing
    chunks = [pcm(4096, seed=i) for i in range(3)]
    await server.start("signed")
    for index, data in enumerate(chunks):
        await server.upload("signed", index, data)
    await server.end("signed")
    call_uuid = await server.call_id("signed")
    await server.wait_stitched(call_uuid)
    assert wav_frames(await server.recording(call_uuid))[2] == b"".join(chunks)

    url = (await server.presign("signed", 3)).json()["uploadUrl"]
    async with httpx.AsyncClient() as direct:
        tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert (
            await direct.put(tampered, content=pcm(8), headers={"content-type": "audio/pcm"})
        ).status_code == 403
        wrong_type = await direct.put(url, content=pcm(8), headers={"content-type": "audio/wav"})
        assert wrong_type.status_code == 403
        anonymous = await direct.get(
            f"{server.settings.s3_endpoint_url}/{url.split('/')[3]}/audio/calls/{call_uuid}/recording.wav"
        )
        assert anonymous.status_code == 403
