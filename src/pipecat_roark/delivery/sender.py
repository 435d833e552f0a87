"""The background sender: every request of every call, in protocol order, off the call's path.

One sender per event loop, shared by every observer in it: one HTTP session, one bounded
queue, and per call a lane that keeps the protocol's order (call-started before any
chunk, every chunk finished before call-ended) while chunk uploads run concurrently up
to a bound. Observers only ever call the non-blocking ``CallLane`` methods; nothing they
do waits for the network.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from loguru import logger

from .client import BackendClient, DeliveryError
from .retry import Backoff

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "CallLane", "DeliveryOptions", "DeliveryStats", "Sender"]

DEFAULT_FLUSH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    request_timeout: float = 15.0
    """One try of one request."""
    deadline: float = 60.0
    """All tries of one request."""
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT
    """How long the end of a call waits for its delivery."""
    max_parallel_uploads: int = 4
    queue_size: int = 1024
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "dropped": self.dropped,
        }


@dataclass(slots=True)
class _Request:
    lane: CallLane
    kind: str  # "call-started" | "chunk" | "call-ended"
    body: dict[str, Any] | None = None
    chunk_index: int = -1
    pcm: bytes = b""


class CallLane:
    """One call's requests, in protocol order. Methods never block and never raise."""

    def __init__(self, sender: Sender, call_id: str, client: BackendClient) -> None:
        self.call_id = call_id
        self.stats = DeliveryStats()
        self._sender = sender
        self._client = client
        self._started_requested = False
        self._started_settled = asyncio.Event()
        self._chunks: set[asyncio.Task[None]] = set()
        self._ended_requested = False
        self._finished = asyncio.Event()
        self._logged: set[str] = set()

    # -- what the observer calls ------------------------------------------------------------

    def call_started(self, body: dict[str, Any]) -> None:
        self._started_requested = True
        self._sender.submit(_Request(self, "call-started", body))

    def chunk(self, index: int, pcm: bytes) -> None:
        self._sender.submit(_Request(self, "chunk", chunk_index=index, pcm=pcm))

    def call_ended(self, body: dict[str, Any]) -> None:
        self._ended_requested = True
        self._sender.submit(_Request(self, "call-ended", body))

    async def flush(self, timeout: float) -> bool:
        """Wait until call-ended has been delivered or has failed; False on timeout."""
        try:
            await asyncio.wait_for(asyncio.shield(self._finished.wait()), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    # -- run by the sender --------------------------------------------------------------------

    def _dispatch(self, request: _Request) -> None:
        if request.kind == "call-started":
            self._sender.spawn(self._deliver_started(request))
        elif request.kind == "chunk":
            task = self._sender.spawn(self._deliver_chunk(request))
            self._chunks.add(task)
            task.add_done_callback(self._chunks.discard)
        else:
            if not self._started_requested:
                # A call flushed before its pipeline started has no call-started to wait for.
                self._started_settled.set()
            self._sender.spawn(self._deliver_ended(request))

    async def _deliver_started(self, request: _Request) -> None:
        try:
            await self._attempt(request, lambda: self._client.post_event(request.body or {}))
        finally:
            self._started_settled.set()

    async def _deliver_chunk(self, request: _Request) -> None:
        await self._started_settled.wait()
        async with self._sender.upload_slots:
            await self._attempt(request, lambda: self._upload(request))

    async def _upload(self, request: _Request) -> None:
        url = await self._client.presign(self.call_id, request.chunk_index)
        try:
            await self._client.upload(url, request.pcm)
        except DeliveryError as exc:
            if exc.status != 403:
                raise
            # An expired or rejected presigned URL: a fresh one gets one more try.
            await self._client.upload(
                await self._client.presign(self.call_id, request.chunk_index), request.pcm
            )

    async def _deliver_ended(self, request: _Request) -> None:
        try:
            await self._started_settled.wait()
            while self._chunks:
                await asyncio.gather(*list(self._chunks), return_exceptions=True)
            await self._attempt(request, lambda: self._client.post_event(request.body or {}))
        finally:
            self._finished.set()
            self._sender.close_lane(self)

    async def _attempt(self, request: _Request, send: Callable[[], Awaitable[None]]) -> bool:
        options = self._sender.options
        deadline = time.monotonic() + options.deadline
        attempt = 0
        while True:
            try:
                await send()
            except DeliveryError as exc:
                delay = options.backoff.delay(attempt, exc.retry_after)
                if not exc.retryable or time.monotonic() + delay > deadline:
                    self.stats.failed += 1
                    self._log_once(exc, request, final=True)
                    return False
                self.stats.retried += 1
                self._log_once(exc, request, final=False)
                attempt += 1
                await asyncio.sleep(delay)
            else:
                self.stats.sent += 1
                return True

    def _log_once(self, exc: DeliveryError, request: _Request, *, final: bool) -> None:
        key = f"{exc.failure_class}:{final}"
        if key in self._logged:
            return
        self._logged.add(key)
        what = request.kind if request.kind != "chunk" else f"chunk {request.chunk_index}"
        if final:
            logger.warning(f"pipecat-roark: {what} of call {self.call_id} not delivered: {exc}")
        else:
            logger.info(f"pipecat-roark: {what} of call {self.call_id} will be retried: {exc}")


class Sender:
    """The process's background sender for one event loop."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sender] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, options: DeliveryOptions) -> None:
        self.options = options
        self.upload_slots = asyncio.Semaphore(options.max_parallel_uploads)
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(options.queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lanes: dict[CallLane, None] = {}

    @classmethod
    def for_running_loop(cls, options: DeliveryOptions | None = None) -> Sender:
        loop = asyncio.get_running_loop()
        sender = cls._by_loop.get(loop)
        if sender is None:
            sender = cls._by_loop[loop] = cls(options or DeliveryOptions())
        return sender

    def open_lane(self, call_id: str, *, base_url: str, api_key: str) -> CallLane:
        client = BackendClient(
            self._ensure_session(),
            base_url=base_url,
            api_key=api_key,
            timeout=self.options.request_timeout,
        )
        lane = CallLane(self, call_id, client)
        self._lanes[lane] = None
        return lane

    def submit(self, request: _Request) -> None:
        self._ensure_worker()
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            request.lane.stats.dropped += 1
            logger.warning(
                f"pipecat-roark: delivery queue full; {request.kind} of call "
                f"{request.lane.call_id} dropped"
            )

    def spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close_lane(self, lane: CallLane) -> None:
        self._lanes.pop(lane, None)
        if not self._lanes and self._queue.empty() and self._session is not None:
            session, self._session = self._session, None
            self.spawn(session.close())

    async def aclose(self) -> None:
        """Stop sending: cancel what is still under way and close the HTTP session."""
        pending = [t for t in (self._worker, *self._tasks) if t is not None and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._lanes.clear()
        Sender._by_loop.pop(asyncio.get_running_loop(), None)

    @classmethod
    def existing(cls) -> Sender | None:
        return cls._by_loop.get(asyncio.get_running_loop())

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            request = await self._queue.get()
            try:
                request.lane._dispatch(request)
            except Exception:
                logger.exception("pipecat-roark: delivery worker failed on one request")
