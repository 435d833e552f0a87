"""Property-based fuzzing of the served OpenAPI schema: no 5xx, every answer in the schema.

A bounded number of generated requests per operation against a real ``serve`` process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .services import ServeProcess  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipecat_roark.cli",
            "keys",
            "create",
            "--project",
            "fuzz",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    server = ServeProcess.start(["--data-dir", str(data_dir)], {}, data_dir / "serve.log")
    try:
        yield server.url, created.stdout.strip()
    finally:
        server.stop()
        log = (data_dir / "serve.log").read_text()
        assert "Traceback" not in log, log[-3000:]


def test_no_request_breaks_the_server_or_its_schema(live_server: tuple[str, str]) -> None:
    url, key = live_server
    # The pytest plugin's lazy schemas do not run on this pytest; drive hypothesis directly.
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json").exclude(path_regex=r"/chunks/")
    headers = {"authorization": f"Bearer {key}", "x-roark-api-key": key}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def request_is_answered_within_the_schema(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)

        request_is_answered_within_the_schema()
