"""A small protocol backend on 127.0.0.1 that records every request and injects faults.

It answers like Roark's ingest API (events, presign, presigned PUT) so the observer can
be tested end to end against a real HTTP server; ``faults`` makes it slow, failing or
silent on demand, which a real backend cannot do when asked.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

# A fault returns a status to answer with (or a status and headers), "hang" to never
# answer, "reset" to drop the connection before answering, a float to delay the normal
# answer, or None for the normal answer.
Fault = Callable[[int], int | tuple[int, dict[str, str]] | str | float | None]


class _Reset(Exception):
    """Raised by a handler to drop the connection without an answer."""


@web.middleware
async def _drop_connection_on_reset(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except _Reset:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never sent: the connection is gone
    return response


@dataclass
class Recorded:
    kind: str  # "call-started" | "call-ended" | "presign" | "upload" | "event"
    body: Any
    headers: dict[str, str]
    call_id: str | None = None
    chunk_index: int | None = None


@dataclass
class RecordingBackend:
    wrap_in_data: bool = False
    reject_unknown_fields: bool = False
    requests: list[Recorded] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    url: str = ""
    _runner: web.AppRunner | None = None
    _hang: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, port: int = 0) -> str:
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[_drop_connection_on_reset]
        )
        app.router.add_post("/v1/integrations/pipecat", self._event)
        app.router.add_post("/v1/integrations/pipecat/chunk-upload-url", self._presign)
        app.router.add_put(r"/upload/{call_id:[^/]+}/{index:\d+}", self._upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._hang.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what arrived -------------------------------------------------------------------------

    def of(self, kind: str) -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind]

    def call_ended(self) -> dict[str, Any]:
        ended = self.of("call-ended")
        assert len(ended) == 1, f"expected exactly one call-ended, got {len(ended)}"
        body: dict[str, Any] = ended[0].body
        return body

    def natural_keys(self) -> list[tuple[str, str | None, int | None]]:
        """Each stored request's natural key: (call, event) or (call, chunk index)."""
        return [
            (r.kind, r.call_id, r.chunk_index)
            for r in self.requests
            if r.kind in ("call-started", "call-ended", "upload")
        ]

    def chunks(self, call_id: str | None = None) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        for r in self.of("upload"):
            if call_id is None or r.call_id == call_id:
                assert r.chunk_index is not None
                found[r.chunk_index] = r.body
        return found

    def pcm(self, call_id: str | None = None) -> bytes:
        chunks = self.chunks(call_id)
        assert sorted(chunks) == list(range(len(chunks))), f"chunk gap: {sorted(chunks)}"
        return b"".join(chunks[i] for i in range(len(chunks)))

    # -- handlers ------------------------------------------------------------------------------

    async def _apply_fault(self, kind: str) -> web.StreamResponse | None:
        count = self.counts[kind] = self.counts.get(kind, 0) + 1
        fault = self.faults.get(kind)
        action = fault(count) if fault else None
        if action is None:
            return None
        if action == "hang":
            await self._hang.wait()
            return web.Response(status=503)
        if action == "reset":
            raise _Reset()
        if isinstance(action, float):
            await asyncio.sleep(action)
            return None
        if isinstance(action, tuple):
            status, headers = action
            return web.json_response({"error": "injected"}, status=status, headers=headers)
        assert isinstance(action, int)
        headers = {"retry-after": "0"} if action in (429, 503) else {}
        return web.json_response({"error": "injected"}, status=action, headers=headers)

    def _answer(self, payload: dict[str, Any]) -> web.Response:
        return web.json_response({"data": payload} if self.wrap_in_data else payload)

    async def _event(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        kind = body.get("event", "event") if isinstance(body, dict) else "event"
        fault = await self._apply_fault(kind)
        if fault is not None:
            return fault
        if self.reject_unknown_fields and kind == "call-ended" and "metrics" in body:
            return web.json_response({"error": "unknown field metrics"}, status=400)
        self.requests.append(Recorded(kind, body, dict(request.headers), body.get("pipecatCallId")))
        return self._answer({"ok": True})

    async def _presign(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fault = await self._apply_fault("presign")
        if fault is not None:
            return fault
        call_id, index = body["pipecatCallId"], body["chunkIndex"]
        self.requests.append(Recorded("presign", body, dict(request.headers), call_id, index))
        quoted = quote(call_id, safe="")
        return self._answer(
            {
                "uploadUrl": f"{self.url}/upload/{quoted}/{index}",
                "s3Key": f"chunks/{quoted}/{index}.pcm",
                "chunkIndex": index,
                "expiresInSeconds": 900,
                "method": "PUT",
                "contentType": "audio/pcm",
            }
        )

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        fault = await self._apply_fault("upload")  # before the body: a reset lands mid-body
        if fault is not None:
            return fault
        data = await request.read()
        self.requests.append(
            Recorded(
                "upload",
                data,
                dict(request.headers),
                unquote(request.match_info["call_id"]),
                int(request.match_info["index"]),
            )
        )
        return web.Response(status=200)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def stereo_channels(pcm: bytes) -> tuple[list[int], list[int]]:
    """Left (user) and right (bot) samples of interleaved 16-bit stereo PCM."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    return list(samples[0::2]), list(samples[1::2])


def json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
