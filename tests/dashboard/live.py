"""The server on a real socket in its own thread, and the protocol spoken to it over HTTP.

The browser needs a real address, and the tests drive the server synchronously (Playwright's
sync API), so the server runs its own event loop in a thread, as ``pipecat-roark serve``
would in its own process; ``app`` stays reachable for counting database work.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from pipecat_roark.server.app import create_app
from pipecat_roark.server.embed import ensure_project_key
from pipecat_roark.server.settings import ServerSettings
from tests.server.harness import EVENTS, PRESIGN, ended, started


class LiveServer:
    """``create_app(settings)`` served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.app: Any = None
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def key(self, project: str) -> str:
        """A new API key of ``project`` (created if new), made on the server's own loop."""
        assert self._loop is not None, "start() the server first"
        made = asyncio.run_coroutine_threadsafe(
            ensure_project_key(self.settings, project), self._loop
        )
        return made.result(30)

    def start(self) -> LiveServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        self.settings = self.settings.replace(public_url=self.url)
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return self

    def _run(self, listener: socket.socket) -> None:
        try:
            asyncio.run(self._serve(listener))
        except BaseException as exc:  # reported to the thread that waits for start()
            self._error = exc
            self._ready.set()
        finally:
            listener.close()

    async def _serve(self, listener: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.app = create_app(self.settings)
        server = uvicorn.Server(
            uvicorn.Config(self.app, lifespan="on", log_level="warning", access_log=False)
        )
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        self._ready.set()
        await self._stop.wait()
        server.should_exit = True
        await task

    @property
    def engine(self) -> Any:
        return self.app.state.server.engine

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)


@dataclass
class Protocol:
    """One project's side of the ingestion protocol and of the REST API, over HTTP."""

    url: str
    key: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"authorization": f"Bearer {self.key}", "x-roark-api-key": self.key},
        )

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: Any) -> httpx.Response:
        answer = self.http.post(path, json=body)
        assert answer.status_code == 200, answer.text
        return answer

    def start(self, call_id: str, **fields: Any) -> None:
        self.post(EVENTS, started(call_id, **fields))

    def end(self, call_id: str, **fields: Any) -> str:
        """Send call-ended; return the server's id of the call."""
        return str(self.post(EVENTS, ended(call_id, **fields)).json()["callId"])

    def upload(self, call_id: str, index: int, data: bytes) -> None:
        presigned = self.post(
            PRESIGN, {"pipecatCallId": call_id, "chunkIndex": index, "contentType": "audio/pcm"}
        ).json()
        put = httpx.put(
            presigned["uploadUrl"], content=data, headers={"content-type": "audio/pcm"}, timeout=30
        )
        assert put.status_code == 200, put.text

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def details(self, call_uuid: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get(f"/v1/call/{call_uuid}/pipecat")["data"]
        return data

    def wait_stitched(self, call_uuid: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            details = self.details(call_uuid)
            if details["recording"]["stitchCount"] >= 1:
                return details
            assert time.monotonic() < deadline, details
            time.sleep(0.05)

    def login_link(self, next_path: str = "/calls") -> str:
        answer = self.post("/v1/dashboard/login-links", {"next": next_path})
        return str(answer.json()["data"]["url"])
