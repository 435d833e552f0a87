"""The background sender: every request of every call, in protocol order, off the call's path.

One sender per event loop, shared by every observer in it: one HTTP session, one bounded
queue, and per call a lane that keeps the protocol's order (call-started before any chunk,
every chunk settled before call-ended) while chunk uploads run concurrently up to a bound.
Observers only call the lane's non-blocking methods; nothing they do waits for the network.

What cannot be delivered goes to the spool instead of being lost: a request whose retries
run out, a call whose key the backend refuses, what is still pending when the end of a
call stops waiting, what the memory bound cannot hold, and what is pending at process
exit. Once one request of a call is spooled, the rest of that call follows it there, so a
replay sends the call in order.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

from .client import BackendClient
from .retry import DeliveryOptions, DeliveryStats, FailureLog, attempt
from .spool import ORDER_CALL_ENDED, ORDER_CALL_STARTED, Spool, SpoolRecord

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "CallLane", "DeliveryOptions", "DeliveryStats", "Sender"]

DEFAULT_FLUSH_TIMEOUT = 10.0
_SPOOL_WRITE_TIMEOUT = 10.0


@dataclass(slots=True)
class _Request:
    lane: CallLane
    kind: str  # "call-started" | "chunk" | "call-ended"
    order: int
    body: dict[str, Any] | None = None
    pcm: bytes = b""

    @property
    def label(self) -> str:
        return self.kind if self.kind != "chunk" else f"chunk {self.order - 1}"

    def record(self) -> SpoolRecord:
        payload = self.pcm if self.kind == "chunk" else json.dumps(self.body).encode()
        return SpoolRecord(self.kind, self.lane.call_id, self.lane.base_url, self.order, payload)


class CallLane:
    """One call's requests, in protocol order. Its public methods never block or raise."""

    def __init__(
        self, sender: Sender, call_id: str, client: BackendClient, api_key: str, spool: Spool
    ) -> None:
        self.call_id = call_id
        self.base_url = client.base_url
        self.api_key = api_key
        self.stats = DeliveryStats()
        self.spool = spool
        self._sender = sender
        self._client = client
        self._pending: dict[int, _Request] = {}
        self._spooling = False
        self._started_requested = False
        self._started_settled = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._chunks: set[asyncio.Task[None]] = set()
        self._finished = asyncio.Event()
        self._log = FailureLog(call_id)

    # -- what the observer calls --------------------------------------------------------

    def call_started(self, body: dict[str, Any]) -> None:
        self._started_requested = True
        self._submit(_Request(self, "call-started", ORDER_CALL_STARTED, body=body))

    def chunk(self, index: int, pcm: bytes) -> None:
        self._submit(_Request(self, "chunk", index + 1, pcm=pcm))

    def call_ended(self, body: dict[str, Any]) -> None:
        self._submit(_Request(self, "call-ended", ORDER_CALL_ENDED, body=body))

    async def flush(self, timeout: float) -> bool:
        """Wait for call-ended to settle; at the timeout, spool what is left. True if all
        of the call was delivered or rejected (nothing left to send)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._finished.wait()), timeout)
        except asyncio.TimeoutError:
            await self._spool_remaining()
        await self._sender.close_if_idle()
        return not self._spooling

    @property
    def buffered_bytes(self) -> int:
        return sum(len(r.pcm) for r in self._pending.values())

    # -- run by the sender --------------------------------------------------------------

    def _submit(self, request: _Request) -> None:
        self._pending[request.order] = request
        self._sender.submit(request)

    def _dispatch(self, request: _Request) -> None:
        if request.kind == "call-started":
            self._spawn(self._deliver_started(request))
        elif request.kind == "chunk":
            task = self._spawn(self._deliver_chunk(request))
            self._chunks.add(task)
            task.add_done_callback(self._chunks.discard)
        else:
            if not self._started_requested:
                # A call flushed before its pipeline started has no call-started to wait for.
                self._started_settled.set()
            self._spawn(self._deliver_ended(request))

    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver_started(self, request: _Request) -> None:
        try:
            await self._deliver(request, lambda: self._client.post_event(request.body or {}))
        finally:
            self._started_settled.set()

    async def _deliver_chunk(self, request: _Request) -> None:
        await self._started_settled.wait()
        if self._spooling:
            await self._to_spool(request)
            return
        async with self._sender.upload_slots:
            await self._deliver(
                request,
                lambda: self._client.upload_chunk(self.call_id, request.order - 1, request.pcm),
            )

    async def _deliver_ended(self, request: _Request) -> None:
        try:
            await self._started_settled.wait()
            while self._chunks:
                await asyncio.gather(*list(self._chunks), return_exceptions=True)
            await self._deliver(request, lambda: self._client.post_call_ended(request.body or {}))
        finally:
            self._finished.set()
            self._sender.lane_finished(self)

    async def _deliver(self, request: _Request, send: Callable[[], Awaitable[None]]) -> None:
        if self._spooling:
            await self._to_spool(request)
            return
        outcome, error = await attempt(
            send,
            self._sender.options,
            self.stats,
            lambda exc, how: self._log(exc, request.label, how),
        )
        if outcome == "sent":
            self._pending.pop(request.order, None)
            return
        assert error is not None
        self._log(error, request.label, outcome)
        if outcome == "rejected":
            self.stats.failed += 1
            self._pending.pop(request.order, None)
            return
        self._spooling = True
        await self._to_spool(request)

    async def _to_spool(self, request: _Request) -> None:
        if self._pending.pop(request.order, None) is None:
            return  # already spooled or settled
        self._spooling = True
        try:
            await asyncio.wait_for(
                asyncio.to_thread(self.spool.write, request.record()), _SPOOL_WRITE_TIMEOUT
            )
        except Exception as exc:
            self.stats.dropped += 1
            logger.error(
                f"pipecat-roark: {request.label} of call {self.call_id} could not be kept in "
                f"the spool at {self.spool.directory}: {exc!r}"
            )
        else:
            self.stats.spooled += 1

    async def _spool_remaining(self) -> None:
        """Stop waiting for the network: everything not yet delivered goes to the spool."""
        self._spooling = True
        running = [t for t in self._tasks if not t.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for request in sorted(self._pending.values(), key=lambda r: r.order):
            await self._to_spool(request)
        self._finished.set()
        self._sender.lane_finished(self)

    def _spool_now_blocking(self) -> None:
        """At process exit, with no event loop left: write what is pending, synchronously."""
        for request in sorted(self._pending.values(), key=lambda r: r.order):
            try:
                self.spool.write(request.record())
                self.stats.spooled += 1
            except Exception as exc:
                self.stats.dropped += 1
                logger.error(f"pipecat-roark: {request.label} lost at exit: {exc!r}")
        self._pending.clear()


class Sender:
    """The process's background sender for one event loop."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sender] = (
        weakref.WeakKeyDictionary()
    )
    _alive: weakref.WeakSet[Sender] = weakref.WeakSet()
    _exit_hook_installed = False

    def __init__(self, options: DeliveryOptions) -> None:
        self.options = options
        self.upload_slots = asyncio.Semaphore(options.max_parallel_uploads)
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(options.queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lanes: dict[CallLane, None] = {}
        self._replays: dict[tuple[Path, str], float] = {}
        Sender._alive.add(self)
        Sender._install_exit_hook()

    @classmethod
    def for_running_loop(cls, options: DeliveryOptions | None = None) -> Sender:
        """The running loop's sender, made with ``options`` if there is none yet."""
        loop = asyncio.get_running_loop()
        sender = cls._by_loop.get(loop)
        if sender is None:
            sender = cls._by_loop[loop] = cls(options or DeliveryOptions())
        return sender

    @classmethod
    def existing(cls) -> Sender | None:
        return cls._by_loop.get(asyncio.get_running_loop())

    def open_lane(self, call_id: str, *, base_url: str, api_key: str, spool: Spool) -> CallLane:
        lane = CallLane(self, call_id, self.client(base_url, api_key), api_key, spool)
        self._lanes[lane] = None
        self._maybe_replay(lane)
        return lane

    def client(self, base_url: str, api_key: str) -> BackendClient:
        return BackendClient(
            self._ensure_session(),
            base_url=base_url,
            api_key=api_key,
            timeout=self.options.request_timeout,
        )

    def submit(self, request: _Request) -> None:
        self._ensure_worker()
        lane = request.lane
        too_much = request.kind == "chunk" and sum(
            other.buffered_bytes for other in self._lanes
        ) > (self.options.max_buffered_bytes)
        if not too_much:
            try:
                self._queue.put_nowait(request)
                return
            except asyncio.QueueFull:
                pass
        # The call's path never waits: what memory cannot hold goes to disk.
        lane._spooling = True
        self.spawn(lane._to_spool(request))

    def spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def lane_finished(self, lane: CallLane) -> None:
        if self._lanes.pop(lane, None) is None:
            return
        if not lane._spooling:
            self._maybe_replay(lane)

    async def close_if_idle(self) -> None:
        """An idle sender holds no connections: the session closes when the last call in
        flight has settled (before the end of a call returns), and a new one opens with the
        next call."""
        if not self._lanes and self._queue.empty() and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def aclose(self) -> None:
        """Stop sending: cancel what is still under way and close the HTTP session."""
        pending = [t for t in (self._worker, *self._tasks) if t is not None and not t.done()]
        for lane in list(self._lanes):
            pending += [t for t in lane._tasks if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._lanes.clear()
        Sender._by_loop.pop(asyncio.get_running_loop(), None)

    # -- private ------------------------------------------------------------------------

    def _maybe_replay(self, lane: CallLane) -> None:
        """Drain the spool when an observer starts, and again (at most once per interval)
        after a call was delivered whole: the backend is up."""
        from .replay import replay_in_background

        key = (lane.spool.directory, lane.base_url)
        last = self._replays.get(key)
        now = time.monotonic()
        if last is not None and now - last < self.options.replay_interval:
            return
        self._replays[key] = now
        self.spawn(replay_in_background(self, lane.spool, lane.base_url, lane.api_key, lane.stats))

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

    @classmethod
    def _install_exit_hook(cls) -> None:
        if not cls._exit_hook_installed:
            cls._exit_hook_installed = True
            atexit.register(cls._spool_everything_at_exit)

    @classmethod
    def _spool_everything_at_exit(cls) -> None:
        for sender in list(cls._alive):
            for lane in list(sender._lanes):
                lane._spool_now_blocking()
