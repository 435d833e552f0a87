"""The PostgreSQL cluster and the settings of each database the generated data sets go to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipecat_roark.server.settings import ServerSettings
from tests.server.services import PostgresCluster, postgres_bin_dir


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        if os.environ.get("ROARK_REQUIRE_SERVICES") == "1":
            pytest.fail("PostgreSQL binaries not found (ROARK_REQUIRE_SERVICES=1)")
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql)")
    cluster = PostgresCluster.start(bin_dir)
    yield cluster
    cluster.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> ServerSettings:
    settings = ServerSettings(data_dir=tmp_path / "data", run_workers=False)
    if request.param == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        settings = settings.replace(database_url=cluster.create_database())
    return settings
