"""One call's requests, in protocol order, off the call's path.

A lane keeps the protocol's order (call-started before any chunk, every chunk settled
before call-ended) while chunk uploads run concurrently up to the delivery's bound.
Observers only call its non-blocking methods; nothing they do waits for the network.

What cannot be delivered goes to the spool instead of being lost: a request whose retries
run out, a call whose key the backend refuses, what is still pending when the end of a
call stops waiting, what the memory bounds cannot hold, and what is pending at process
exit. Once one request of a call is spooled, the rest of that call follows it there, in
order, through one writer that holds the call's lock until the call is finished, so no
replay takes the call half written.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger

from .client import BackendClient
from .retry import DeliveryOptions, DeliveryStats, FailureLog, attempt
from .spool import ORDER_CALL_ENDED, ORDER_CALL_STARTED, CallWriter, Spool, SpoolRecord

__all__ = ["CallLane", "LaneHost", "Request"]

_SPOOL_WRITE_TIMEOUT = 10.0


class LaneHost(Protocol):
    """What a lane needs from the delivery that runs it (on one event loop)."""

    @property
    def options(self) -> DeliveryOptions: ...

    @property
    def upload_slots(self) -> asyncio.Semaphore: ...

    def submit(self, request: Request) -> None: ...

    def lane_finished(self, lane: CallLane) -> None: ...

    async def close_if_idle(self) -> None: ...


@dataclass(slots=True)
class Request:
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
        return SpoolRecord(
            self.kind,
            self.lane.call_id,
            self.lane.base_url,
            self.order,
            payload,
            started=self.lane.has_call_started,
        )


class CallLane:
    """One call's requests, in protocol order. Its public methods never block or raise."""

    def __init__(
        self, host: LaneHost, call_id: str, client: BackendClient, api_key: str, spool: Spool
    ) -> None:
        self.call_id = call_id
        self.base_url = client.base_url
        self.api_key = api_key
        self.stats = DeliveryStats()
        self.spool = spool
        self._host = host
        self._client = client
        self._pending: dict[int, Request] = {}
        self._buffered = 0
        self._spooling = False
        self._writer: CallWriter | None = None
        self._to_write: deque[Request] = deque()
        self._writing: asyncio.Task[None] | None = None
        self._started_requested = False
        self._started_settled = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._chunks: set[asyncio.Task[None]] = set()
        self._finished = asyncio.Event()
        self._log = FailureLog(call_id)

    @property
    def has_call_started(self) -> bool:
        """call-started was given to this lane (sent, or spooled before the rest)."""
        return self._started_requested

    # -- what the observer calls --------------------------------------------------------

    def call_started(self, body: dict[str, Any]) -> None:
        self._started_requested = True
        self._submit(Request(self, "call-started", ORDER_CALL_STARTED, body=body))

    def chunk(self, index: int, pcm: bytes) -> None:
        self._submit(Request(self, "chunk", index + 1, pcm=pcm))

    def call_ended(self, body: dict[str, Any]) -> None:
        self._submit(Request(self, "call-ended", ORDER_CALL_ENDED, body=body))

    async def flush(self, timeout: float) -> bool:
        """Wait for call-ended to settle; at the timeout, spool what is left. True if all
        of the call was delivered or rejected (nothing left to send)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._finished.wait()), timeout)
        except asyncio.TimeoutError:
            await self._spool_remaining()
        await self._host.close_if_idle()
        return not self._spooling

    @property
    def buffered_bytes(self) -> int:
        """Audio this call holds in memory, waiting to be sent or written to the spool."""
        return self._buffered

    @property
    def pending_requests(self) -> int:
        """Requests this call holds in memory, waiting to be sent or written to the spool."""
        return len(self._pending) + len(self._to_write)

    @property
    def spooling(self) -> bool:
        """True once the rest of the call goes to the spool."""
        return self._spooling

    # -- what the delivery calls ----------------------------------------------------------

    def dispatch(self, request: Request) -> None:
        """Start sending ``request`` (the delivery's worker calls this, in order)."""
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

    def divert(self, request: Request) -> None:
        """Memory is full: this request, and the rest of the call, go to the spool.

        A chunk is written at once, on the caller's path: past the bounds, the call waits
        for the disk rather than memory growing with the outage. The events (two a call)
        take the ordinary way, which keeps call-ended behind every chunk.
        """
        self._spooling = True
        if request.kind != "chunk":
            self.dispatch(request)
            return
        if self._settle(request):
            self._write_now(request)

    def running_tasks(self) -> list[asyncio.Task[None]]:
        return [task for task in (*self._tasks, self._writing) if task and not task.done()]

    def spool_pending_blocking(self) -> None:
        """At process exit, with no event loop left: write what is pending, synchronously."""
        waiting = sorted([*self._pending.values(), *self._to_write], key=lambda r: r.order)
        self._pending.clear()
        self._to_write.clear()
        writer = self._writer or self.spool.open_call(self.base_url, self.call_id)
        for request in waiting:
            try:
                writer.write(request.record())
                self.stats.spooled += 1
            except Exception as exc:
                self.stats.dropped += 1
                logger.error(f"pipecat-roark: {request.label} lost at exit: {exc!r}")
        writer.close()

    # -- private --------------------------------------------------------------------------

    def _submit(self, request: Request) -> None:
        self._pending[request.order] = request
        self._buffered += len(request.pcm)
        self._host.submit(request)

    def _settle(self, request: Request, *, to_write: bool = False) -> bool:
        """Forget a request (sent, rejected, or written to the spool); False if it was
        already settled. One ``to_write`` keeps its bytes counted until it is written."""
        if self._pending.pop(request.order, None) is None:
            return False
        if not to_write:
            self._buffered -= len(request.pcm)
        return True

    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver_started(self, request: Request) -> None:
        try:
            await self._deliver(request, lambda: self._client.post_event(request.body or {}))
        finally:
            self._started_settled.set()

    async def _deliver_chunk(self, request: Request) -> None:
        await self._started_settled.wait()
        if self._spooling:
            self._to_spool(request)
            return
        async with self._host.upload_slots:
            await self._deliver(
                request,
                lambda: self._client.upload_chunk(self.call_id, request.order - 1, request.pcm),
            )

    async def _deliver_ended(self, request: Request) -> None:
        try:
            await self._started_settled.wait()
            while self._chunks:
                await asyncio.gather(*list(self._chunks), return_exceptions=True)
            await self._deliver(request, lambda: self._client.post_call_ended(request.body or {}))
        except asyncio.CancelledError:
            raise  # cancelled by the end of the call giving up: that finishes the lane
        except Exception:
            logger.exception(f"pipecat-roark: delivering call {self.call_id} failed")
        await self._finish()

    async def _deliver(self, request: Request, send: Callable[[], Awaitable[None]]) -> None:
        if self._spooling:
            self._to_spool(request)
            return
        outcome, error = await attempt(
            send,
            self._host.options,
            self.stats,
            lambda exc, how: self._log(exc, request.label, how),
        )
        if outcome == "sent":
            self._settle(request)
            return
        assert error is not None
        self._log(error, request.label, outcome)
        if outcome == "rejected":
            self.stats.failed += 1
            self._settle(request)
            return
        self._to_spool(request)

    def _to_spool(self, request: Request) -> None:
        """Queue ``request`` for this call's spool writer, which writes in order."""
        self._spooling = True
        if not self._settle(request, to_write=True):
            return  # already spooled or settled
        self._to_write.append(request)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self._write_spooled())

    async def _write_spooled(self) -> None:
        while self._to_write:
            request = self._to_write[0]
            writer = self._open_writer()
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(writer.write, request.record()), _SPOOL_WRITE_TIMEOUT
                )
            except Exception as exc:
                self._lost(request, exc)
            else:
                self.stats.spooled += 1
            finally:
                self._to_write.popleft()
                self._buffered -= len(request.pcm)
        if self._finished.is_set():  # a straggler after the end: let replays have the call
            await asyncio.to_thread(self.close_writer)

    def _write_now(self, request: Request) -> None:
        try:
            self._open_writer().write(request.record())
        except Exception as exc:
            self._lost(request, exc)
        else:
            self.stats.spooled += 1
        if self._finished.is_set():  # a straggler after the end: let replays have the call
            self.close_writer()

    def _open_writer(self) -> CallWriter:
        if self._writer is None:
            self._writer = self.spool.open_call(self.base_url, self.call_id)
        return self._writer

    def _lost(self, request: Request, exc: BaseException) -> None:
        self.stats.dropped += 1
        logger.error(
            f"pipecat-roark: {request.label} of call {self.call_id} could not be kept in the "
            f"spool at {self.spool.directory}: {exc!r}"
        )

    async def _spool_written(self) -> None:
        while self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)

    async def _spool_remaining(self) -> None:
        """Stop waiting for the network: everything not yet delivered goes to the spool."""
        self._spooling = True
        running = [t for t in self._tasks if not t.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for request in sorted(self._pending.values(), key=lambda r: r.order):
            self._to_spool(request)
        await self._finish()

    async def _finish(self) -> None:
        await self._spool_written()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.close)  # replays may take the call from now on
        if not self._finished.is_set():
            self._finished.set()
            self._host.lane_finished(self)

    def close_writer(self) -> None:
        """Let replays have what this call spooled (when the delivery closes)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
