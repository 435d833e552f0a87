"""The client side of the protocol as plain HTTP requests, for driving a server in tests."""

from __future__ import annotations

import asyncio
import io
import sys
import wave
from dataclasses import dataclass
from typing import Any

import httpx

from pipecat_roark.server.settings import ServerSettings

EVENTS = "/v1/integrations/pipecat"
PRESIGN = "/v1/integrations/pipecat/chunk-upload-url"
T0 = "2026-01-01T12:00:00+00:00"


def pcm(nbytes: int, seed: int = 0) -> bytes:
    """Deterministic, non-silent PCM bytes (nbytes should be whole frames)."""
    return bytes((index * 7 + seed * 13 + 1) % 251 for index in range(nbytes))


def started(call_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "event": "call-started",
        "pipecatCallId": call_id,
        "eventTimestamp": T0,
        "agentId": "agent-1",
        "agentName": "Support bot",
    }
    return body | fields


def ended(call_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "event": "call-ended",
        "pipecatCallId": call_id,
        "eventTimestamp": "2026-01-01T12:01:00+00:00",
        "callStartedAt": T0,
        "callEndedAt": "2026-01-01T12:01:00+00:00",
        "callEndedReason": "client-disconnected",
        "recordingSampleRate": 16000,
        "recordingNumChannels": 2,
        "transcript": [
            {
                "role": "assistant",
                "content": "Hello, how can I help?",
                "timestamp": "2026-01-01T12:00:00.500000+00:00",
                "endTimestamp": "2026-01-01T12:00:02+00:00",
                "audioOffsetMs": 500,
                "endAudioOffsetMs": 2000,
            },
            {
                "role": "user",
                "content": "Where is my order?",
                "timestamp": "2026-01-01T12:00:03+00:00",
                "endTimestamp": "2026-01-01T12:00:04+00:00",
                "audioOffsetMs": 3000,
                "endAudioOffsetMs": 4000,
            },
        ],
    }
    return body | fields


def wav_frames(data: bytes) -> tuple[int, int, bytes]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        return reader.getframerate(), reader.getnchannels(), reader.readframes(reader.getnframes())


@dataclass
class Harness:
    """A server under test plus one project's key."""

    client: httpx.AsyncClient
    key: str
    settings: ServerSettings
    app: Any = None

    @property
    def headers(self) -> dict[str, str]:
        return {"x-roark-api-key": self.key, "authorization": f"Bearer {self.key}"}

    @property
    def state(self) -> Any:
        return self.app.state.server

    async def post(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        headers = self.headers if key is None else {"authorization": f"Bearer {key}"}
        return await self.client.post(path, json=body, headers=headers)

    async def start(self, call_id: str, **fields: Any) -> httpx.Response:
        return await self.post(EVENTS, started(call_id, **fields))

    async def end(self, call_id: str, **fields: Any) -> httpx.Response:
        return await self.post(EVENTS, ended(call_id, **fields))

    async def presign(self, call_id: str, index: int) -> httpx.Response:
        return await self.post(
            PRESIGN, {"pipecatCallId": call_id, "chunkIndex": index, "contentType": "audio/pcm"}
        )

    async def put(self, url: str, data: bytes) -> httpx.Response:
        headers = {"content-type": "audio/pcm"}
        if url.startswith(str(self.client.base_url)):
            return await self.client.put(url, content=data, headers=headers)
        async with httpx.AsyncClient(timeout=30) as direct:
            return await direct.put(url, content=data, headers=headers)

    async def upload(self, call_id: str, index: int, data: bytes) -> dict[str, Any]:
        answer = await self.presign(call_id, index)
        assert answer.status_code == 200, answer.text
        put = await self.put(answer.json()["uploadUrl"], data)
        assert put.status_code == 200, put.text
        presigned: dict[str, Any] = answer.json()
        return presigned

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(
            path, params=params, headers={"authorization": f"Bearer {self.key}"}
        )

    async def call_id(self, pipecat_call_id: str) -> str:
        """The server's id of a call, found through the REST API."""
        listing = await self.get("/v1/call", searchText=pipecat_call_id, limit=100)
        assert listing.status_code == 200, listing.text
        matches = [c["id"] for c in listing.json()["data"] if c["externalId"] == pipecat_call_id]
        assert len(matches) == 1, listing.json()
        return str(matches[0])

    async def details(self, call_uuid: str) -> dict[str, Any]:
        answer = await self.get(f"/v1/call/{call_uuid}/pipecat")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data

    async def wait_stitched(
        self, call_uuid: str, count: int = 1, timeout: float = 15
    ) -> dict[str, Any]:
        """The call's details once it has been stitched ``count`` times."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            details = await self.details(call_uuid)
            if details["recording"]["stitchCount"] >= count:
                return details
            assert asyncio.get_running_loop().time() < deadline, details
            await asyncio.sleep(0.05)

    async def recording(self, call_uuid: str) -> bytes:
        call = (await self.get(f"/v1/call/{call_uuid}")).json()["data"]
        assert call["recordingUrlAccess"] == "AVAILABLE", call
        url = call["recordingUrl"]
        if url.startswith(str(self.client.base_url)):
            answer = await self.client.get(url)
        else:
            async with httpx.AsyncClient(timeout=30) as direct:
                answer = await direct.get(url)
        assert answer.status_code == 200, answer.text
        return answer.content


async def run_command(*arguments: str) -> tuple[str, str]:
    """``pipecat-roark ARGUMENTS`` in a process of its own; its stdout and stderr, once it
    has succeeded."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipecat_roark.cli", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode(), stderr.decode()
