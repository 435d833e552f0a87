"""``Delivery``: one explicit object that gets every call to the backend.

It owns what delivery needs, built from its options and nothing else: the HTTP session,
the bounded queue and upload slots, the per-call lanes, the spool and the background
replay. Observers given the same ``Delivery`` share all of it; an observer given none
uses ``default_delivery()``, which is built from the documented defaults of
``DeliveryOptions`` and the default spool folder, and which no caller can configure, so one
observer's arguments never decide another's delivery.

Its event-loop parts (session, queue, worker, lanes) are made per event loop on first use
and kept in the instance, so one ``Delivery`` serves every loop that uses it (a test run,
a thread per loop) without being bound to the first. Memory is bounded during an outage:
past ``max_buffered_bytes`` of audio or ``max_pending_requests`` requests held, a call's
requests go straight to the spool.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import time
import weakref
from pathlib import Path
from typing import Any

import aiohttp
from loguru import logger

from .client import BackendClient
from .lanes import CallLane, Request
from .replay import replay_in_background
from .retry import DeliveryOptions
from .spool import Spool, default_spool_dir

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "Delivery", "default_delivery"]

DEFAULT_FLUSH_TIMEOUT = 10.0
"""Seconds the end of a call waits for its delivery by default; the rest waits in the spool."""


class Delivery:
    """Sends calls' requests in the background, spools what it cannot send, replays it.

    Args:
        options: Retry budget, timeouts, memory bounds and replay interval; defaults to
            ``DeliveryOptions()``.
        spool_dir: Where undeliverable requests are kept; defaults to ``ROARK_SPOOL_DIR``,
            then ``pipecat-roark/spool`` in the user data directory (read when a call
            opens, so the environment can change it).
    """

    def __init__(
        self,
        options: DeliveryOptions | None = None,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.options = options or DeliveryOptions()
        self._spool_dir = Path(spool_dir) if spool_dir is not None else None
        self._spools: dict[Path, Spool] = {}
        self._refusing_extensions: set[str] = set()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDelivery] = (
            weakref.WeakKeyDictionary()
        )
        self._exit_hook = functools.partial(_spool_at_exit, weakref.ref(self))
        atexit.register(self._exit_hook)

    def spool(self, directory: str | os.PathLike[str] | None = None) -> Spool:
        """The spool in ``directory`` (default: this delivery's spool folder)."""
        path = Path(directory) if directory is not None else self._spool_dir
        path = (path or default_spool_dir()).expanduser()
        if path not in self._spools:
            self._spools[path] = Spool(path)
        return self._spools[path]

    def open_lane(
        self, call_id: str, *, base_url: str, api_key: str, spool: Spool | None = None
    ) -> CallLane:
        """A new call's lane, on the running event loop."""
        return self._for_running_loop().open_lane(
            call_id, base_url=base_url, api_key=api_key, spool=spool or self.spool()
        )

    def client(self, base_url: str, api_key: str) -> BackendClient:
        """A client on this delivery's HTTP session (running event loop)."""
        return self._for_running_loop().client(base_url, api_key)

    async def close_if_idle(self) -> None:
        await self._for_running_loop().close_if_idle()

    async def aclose(self) -> None:
        """Stop sending on the running loop: cancel what is under way, close the session.
        What the lanes had not delivered stays in the spool for the next replay."""
        running = self._loops.pop(asyncio.get_running_loop(), None)
        if running is not None:
            await running.aclose()

    def spool_pending_blocking(self) -> None:
        """Write every lane's undelivered requests to the spool, synchronously."""
        for running in list(self._loops.values()):
            running.spool_pending_blocking()

    def _for_running_loop(self) -> _LoopDelivery:
        loop = asyncio.get_running_loop()
        running = self._loops.get(loop)
        if running is None:
            running = self._loops[loop] = _LoopDelivery(self.options, self._refusing_extensions)
        return running


def default_delivery() -> Delivery:
    """The delivery of observers given none: documented defaults, shared, not configurable.

    It is made once, from ``DeliveryOptions()`` and the default spool folder only; a caller
    that wants other settings makes its own ``Delivery`` and passes it.
    """
    return _DEFAULT


class _LoopDelivery:
    """A delivery's parts on one event loop; implements ``lanes.LaneHost``."""

    def __init__(self, options: DeliveryOptions, refusing_extensions: set[str]) -> None:
        self._options = options
        self._refusing_extensions = refusing_extensions
        self._upload_slots = asyncio.Semaphore(options.max_parallel_uploads)
        self._queue: asyncio.Queue[Request] = asyncio.Queue(options.queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lanes: dict[CallLane, None] = {}
        self._replays: dict[tuple[Path, str], float] = {}

    @property
    def options(self) -> DeliveryOptions:
        return self._options

    @property
    def upload_slots(self) -> asyncio.Semaphore:
        return self._upload_slots

    def open_lane(self, call_id: str, *, base_url: str, api_key: str, spool: Spool) -> CallLane:
        lane = CallLane(self, call_id, self.client(base_url, api_key), api_key, spool)
        self._lanes[lane] = None
        self._maybe_replay(lane)
        return lane

    def client(self, base_url: str, api_key: str) -> BackendClient:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return BackendClient(
            self._session,
            base_url=base_url,
            api_key=api_key,
            timeout=self._options.request_timeout,
            refusing_extensions=self._refusing_extensions,
        )

    def submit(self, request: Request) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._run())
        if not self._over_bounds(request):
            try:
                self._queue.put_nowait(request)
                return
            except asyncio.QueueFull:
                pass
        # The call's path never waits: what memory cannot hold goes to disk.
        request.lane.divert(request)

    def lane_finished(self, lane: CallLane) -> None:
        if self._lanes.pop(lane, None) is None:
            return
        if not lane.spooling:
            self._maybe_replay(lane)

    async def close_if_idle(self) -> None:
        """An idle delivery holds no connections: the session closes when the last call
        in flight has settled, and a new one opens with the next call."""
        if not self._lanes and self._queue.empty() and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def aclose(self) -> None:
        pending = [t for t in (self._worker, *self._tasks) if t is not None and not t.done()]
        for lane in self._lanes:
            pending += lane.running_tasks()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for lane in self._lanes:
            lane.close_writer()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._lanes.clear()

    def spool_pending_blocking(self) -> None:
        for lane in list(self._lanes):
            lane.spool_pending_blocking()

    def _over_bounds(self, request: Request) -> bool:
        if request.kind == "chunk" and (
            sum(lane.buffered_bytes for lane in self._lanes) > self._options.max_buffered_bytes
        ):
            return True
        held = sum(lane.pending_requests for lane in self._lanes)
        return held > self._options.max_pending_requests

    def _maybe_replay(self, lane: CallLane) -> None:
        """Drain the spool when an observer starts, and again (at most once per interval)
        after a call was delivered whole: the backend is up."""
        key = (lane.spool.directory, lane.base_url)
        last = self._replays.get(key)
        now = time.monotonic()
        if last is not None and now - last < self._options.replay_interval:
            return
        self._replays[key] = now
        task = asyncio.ensure_future(
            replay_in_background(
                lane.spool,
                lane.base_url,
                lane.api_key,
                self._options,
                lane.stats,
                refusing_extensions=self._refusing_extensions,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while True:
            request = await self._queue.get()
            try:
                request.lane.dispatch(request)
            except Exception:
                logger.exception("pipecat-roark: delivery worker failed on one request")


def _spool_at_exit(delivery: weakref.ref[Delivery]) -> None:
    alive = delivery()
    if alive is not None:
        alive.spool_pending_blocking()


_DEFAULT = Delivery()
