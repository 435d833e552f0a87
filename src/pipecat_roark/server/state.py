"""What one server process holds while it runs, shared by the routes and the workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .blobs import BlobStore
from .settings import ServerSettings

__all__ = ["KEY_CACHE_SECONDS", "KnownKeys", "ServerState", "get_state"]

KEY_CACHE_SECONDS = 10.0


class KnownKeys:
    """API keys this process found lately (hash -> project id), for ``KEY_CACHE_SECONDS``.

    Every ingest request carries the key; looking it up each time is a database round trip
    per request, as much work as the chunk's own write. A key deleted from the database is
    refused once its entry expires; an unknown key is never cached.
    """

    def __init__(self, seconds: float = KEY_CACHE_SECONDS, size: int = 1024) -> None:
        self.seconds = seconds
        self.size = size
        self._known: dict[str, tuple[str, float]] = {}

    def get(self, key_hash: str) -> str | None:
        found = self._known.get(key_hash)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, key_hash: str, project_id: str) -> None:
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[key_hash] = (project_id, time.monotonic() + self.seconds)


def _replica_id() -> str:
    """Names the process holding a job lease, so an operator can tell which replica it is."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class ServerState:
    settings: ServerSettings
    engine: AsyncEngine
    """Writes: through ``begin()``."""
    reader: AsyncEngine
    """Reads: ``reader.connect()`` (``database.read_engine``), never writes."""
    blobs: BlobStore
    secret: str
    replica_id: str = field(default_factory=_replica_id)
    stitch_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    known_keys: KnownKeys = field(default_factory=KnownKeys)
    write_lock: asyncio.Lock | None = None
    """On SQLite, this process's writers take turns here (see ``begin``)."""
    spans_dropped: int = 0
    """Spans this replica dropped because no call claimed their trace in time."""
    spans_swept_at: float = 0.0
    """When this replica last swept the spans no call claimed (monotonic seconds)."""

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on exit; on SQLite, in this process's turn.

        SQLite has one writer at a time. Without the turn, a writer that finds the lock taken
        sleeps in SQLite's busy handler, up to 100 ms a try, and the lock stands idle while
        it sleeps: under load most of the time goes to sleeping, not writing. Taking turns
        here hands the lock on as soon as it is free, first come first served. Other
        processes on the same file still meet at the busy handler.
        """
        if self.write_lock is None:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self.write_lock, self.engine.begin() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def at_once(self) -> AsyncIterator[AsyncConnection]:
        """A connection for a write that is one statement, its own transaction.

        On PostgreSQL it sends no BEGIN and no COMMIT: two round trips fewer, and a
        request's share of the database's CPU and the replica's. On SQLite, ``begin``.
        """
        if self.engine.dialect.name != "postgresql":
            async with self.begin() as connection:
                yield connection
            return
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection


async def get_state(request: Request) -> ServerState:
    # A coroutine, not a plain function: FastAPI runs plain dependencies in its threadpool,
    # a thread round trip on every request for an attribute read.
    state: ServerState = request.app.state.server
    return state
