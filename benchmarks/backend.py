"""The protocol backend the benchmarked observers send to, on 127.0.0.1 in the parent process.

It is the test suite's ``RecordingBackend``, noting when each call-ended arrived (on the
monotonic clock, which every process on the machine shares) and how many of the call's
chunks it had by then, and keeping only the size of each chunk: an hour of stereo audio
per call adds up. ``silent_backend()`` accepts connections and never answers.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from tests.support.backend import Recorded, RecordingBackend

__all__ = ["BenchBackend", "CallReceipt", "running"]

_EVERY_ENDPOINT = ("call-started", "call-ended", "event", "presign", "upload")


@dataclass
class CallReceipt:
    """What the backend has of one call."""

    ended_at: float | None = None
    """``time.monotonic()`` when call-ended had been received."""
    chunks_before_end: int = 0
    chunks: int = 0
    chunk_bytes: int = 0

    @property
    def complete(self) -> bool:
        """call-ended arrived, after every chunk of the call."""
        return self.ended_at is not None and self.chunks_before_end == self.chunks


@dataclass
class BenchBackend(RecordingBackend):
    receipts: dict[str, CallReceipt] = field(default_factory=dict)

    def receipt(self, call_id: str | None) -> CallReceipt:
        return self.receipts.get(call_id or "", CallReceipt())

    async def _event(self, request: web.Request) -> web.StreamResponse:
        before = len(self.requests)
        response = await super()._event(request)
        now = time.monotonic()
        for recorded in self.requests[before:]:
            if recorded.kind == "call-ended" and recorded.call_id:
                receipt = self.receipts.setdefault(recorded.call_id, CallReceipt())
                if receipt.ended_at is None:
                    receipt.ended_at = now
                    receipt.chunks_before_end = receipt.chunks
        return response

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        fault = await self._apply_fault("upload")
        if fault is not None:
            return fault
        size = 0
        async for data in request.content.iter_any():
            size += len(data)
        call_id = unquote(request.match_info["call_id"])
        index = int(request.match_info["index"])
        self.requests.append(Recorded("upload", size, {}, call_id, index))
        receipt = self.receipts.setdefault(call_id, CallReceipt())
        receipt.chunks += 1
        receipt.chunk_bytes += size
        return web.Response(status=200)


@asynccontextmanager
async def running(*, silent: bool = False, **kwargs: Any) -> AsyncIterator[BenchBackend]:
    """A backend on 127.0.0.1; ``silent`` accepts connections and never answers."""
    backend = BenchBackend(**kwargs)
    if silent:
        backend.faults = {kind: _hang for kind in _EVERY_ENDPOINT}
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


def _hang(count: int) -> str:
    return "hang"
