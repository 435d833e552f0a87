"""A slow, counting reverse proxy in front of a real server, on 127.0.0.1.

Every request waits 50-150 ms (a busy backend), is forwarded as it came, and, when the
server accepted it, is noted by its natural key in the order it arrived: (event, call,
None) or ("upload", call, chunk index). Presigned upload URLs are matched to their call and
chunk by the presign answer that handed them out, so the server's URLs stay opaque.
"""

from __future__ import annotations

import asyncio
import json
import random
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

__all__ = ["CountingProxy"]

Key = tuple[str, str, int | None]


class CountingProxy:
    def __init__(self, *, low: float = 0.05, high: float = 0.15, seed: int = 7) -> None:
        self.target = ""
        self.accepted: list[Key] = []
        self._delay = (low, high)
        self._rng = random.Random(seed)
        self._uploads: dict[str, tuple[str, int]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession()
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        await asyncio.sleep(self._rng.uniform(*self._delay))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            status, content_type = answer.status, answer.content_type
        if status < 300:
            self._note(request, body, payload)
        return web.Response(status=status, body=payload, content_type=content_type)

    def _note(self, request: web.Request, body: bytes, answer: bytes) -> None:
        if request.method not in ("POST", "PUT"):
            return  # reading back (a recording's URL is on the public address too)
        if request.method == "PUT":
            call_id, index = self._uploads[request.path_qs]
            self.accepted.append(("upload", call_id, index))
            return
        sent = json.loads(body)
        if request.path.endswith("/chunk-upload-url"):
            data = json.loads(answer)
            url = urlsplit(data.get("data", data)["uploadUrl"])
            path = url.path + (f"?{url.query}" if url.query else "")
            self._uploads[path] = (sent["pipecatCallId"], sent["chunkIndex"])
            return
        self.accepted.append((sent["event"], sent["pipecatCallId"], None))
