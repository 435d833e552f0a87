"""Running the server inside another program: a project key, and uvicorn on a free port.

The demo and the tests use these to serve calls in the same process and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn

from .app import create_app
from .auth import create_key, ensure_project
from .database import open_database
from .settings import KEEP_ALIVE_SECS, ServerSettings

__all__ = ["ensure_project_key", "serve_in_background"]


async def ensure_project_key(settings: ServerSettings, project_name: str) -> str:
    """Create the project if needed and return a new API key for it (shown only now)."""
    async with (
        open_database(settings.resolved_database_url) as engine,
        engine.begin() as connection,
    ):
        project_id = await ensure_project(connection, project_name)
        return await create_key(connection, project_id)


EMBEDDED_SHUTDOWN_SECS = 5


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host program keeps Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def serve_in_background(
    settings: ServerSettings, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve on ``host`` (a free port unless given) in this event loop; yield the base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    bound_port = listener.getsockname()[1]
    base_url = f"http://{host}:{bound_port}"
    if settings.public_url is None:
        settings = settings.replace(public_url=base_url)
    config = uvicorn.Config(
        create_app(settings),
        lifespan="on",
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=KEEP_ALIVE_SECS,
        # Ctrl-C on the host program ends it within seconds, whatever is still open.
        timeout_graceful_shutdown=EMBEDDED_SHUTDOWN_SECS,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.02)
        yield base_url
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()
