"""The ASGI app: ``create_app(settings)`` wires storage, routes, limits and workers.

Starting the app (its lifespan) connects the database, applies migrations, opens the blob
store and starts this replica's background workers; stopping it undoes that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from loguru import logger

from .._version import __version__
from . import (
    analytics_api,
    api,
    attribution_api,
    dashboard,
    health,
    ingest,
    recordings,
    traces,
    uploads,
)
from .blobs import open_blob_store
from .dashboard.errorpages import failure_page
from .database import open_database, read_engine
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware
from .private_files import make_private_dirs
from .request_guard import RequestGuard
from .settings import ServerSettings
from .signing_secret import load_signing_secret
from .state import ServerState
from .worker import run_workers

__all__ = ["create_app", "open_state"]

_WORKER_STOP_GRACE = 5.0


@contextlib.asynccontextmanager
async def open_state(settings: ServerSettings) -> AsyncIterator[ServerState]:
    """Connected storage with a current schema, closed again on exit."""
    make_private_dirs(settings.resolved_data_dir, tighten=True)
    async with open_database(settings.resolved_database_url) as engine:
        secret = await load_signing_secret(settings, engine)
        blobs = await open_blob_store(
            settings.resolved_blob_url,
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_public_endpoint_url=settings.s3_public_endpoint_url,
            s3_region=settings.s3_region,
        )
        try:
            yield ServerState(
                settings=settings,
                engine=engine,
                reader=read_engine(engine),
                blobs=blobs,
                secret=secret,
                write_lock=asyncio.Lock() if engine.dialect.name == "sqlite" else None,
            )
        finally:
            await blobs.close()


async def _stop_workers(state: ServerState, workers: asyncio.Task[None]) -> None:
    """Let the step under way finish (a cancelled query can hold SQLite's write lock)."""
    state.stopping.set()
    done, _ = await asyncio.wait([workers], timeout=_WORKER_STOP_GRACE)
    if not done:
        # A long stitch: drop it; its lease expires and a replica takes the job again.
        workers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await workers


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The server as an ASGI app; settings default to the environment and defaults."""
    settings = settings or ServerSettings.from_sources()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_state(settings) as state:
            app.state.server = state
            workers = asyncio.create_task(run_workers(state)) if settings.run_workers else None
            logger.info(
                "serving: database {} blobs {}",
                state.engine.url.render_as_string(hide_password=True),
                state.blobs.kind,
            )
            try:
                yield
            finally:
                if workers is not None:
                    await _stop_workers(state, workers)

    app = FastAPI(
        title="pipecat-roark server",
        version=__version__,
        description="A self-hosted backend for the Roark Pipecat ingestion protocol, with "
        "the Roark REST read subset and a few documented extensions.",
        lifespan=lifespan,
    )
    install_error_handlers(app, settings.retry_after)
    app.add_middleware(BodyLimitMiddleware, upload_prefix=uploads.UPLOAD_PREFIX)
    # Added last: outermost, so it sees every failure.
    app.add_middleware(RequestGuard, failure_page=failure_page)
    routers = (health, ingest, uploads, api, recordings, analytics_api, attribution_api, traces)
    for module in routers:
        app.include_router(module.router)
    dashboard.install(app)
    return app
