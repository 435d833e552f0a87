"""What one server process holds while it runs, shared by the routes and the workers."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from .blobs import BlobStore
from .settings import ServerSettings

__all__ = ["ServerState", "get_state"]


def _replica_id() -> str:
    """Names the process holding a job lease, so an operator can tell which replica it is."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class ServerState:
    settings: ServerSettings
    engine: AsyncEngine
    blobs: BlobStore
    secret: str
    replica_id: str = field(default_factory=_replica_id)
    stitch_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state
