"""Every error is JSON in the usual shape: filters not supported, unknown routes, NUL in a
URL, and the unexpected failure, which names a request id the log holds its traceback by."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import pytest
from loguru import logger

from pipecat_roark.server import api
from pipecat_roark.server.logs import configure_logging

from .harness import Harness


def assert_json_error(answer: Any, status: int, code: str, field: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
        assert field in error["message"]
    assert answer.headers["x-request-id"]


@pytest.mark.parametrize(
    "query",
    [
        {"properties[plan_tier][exists]": "true"},
        {"countedInResults": "true"},
        {"simulationRunPlanJobId": "job-1"},
        {"excludeHiddenRuns": "true"},
    ],
    ids=["properties", "counted", "simulation", "hidden"],
)
async def test_an_unsupported_list_filter_is_a_422_naming_it(
    server: Harness, query: dict[str, str]
) -> None:
    await server.start("filtered")
    (name,) = query
    assert_json_error(await server.get("/v1/call", **query), 422, "unsupported_filter", name)


async def test_supported_filters_still_filter(server: Harness) -> None:
    await server.start("kept")
    answer = await server.get("/v1/call", status="IN_PROGRESS", limit=5, sortBy="startedAt")
    assert answer.status_code == 200, answer.text
    assert [call["externalId"] for call in answer.json()["data"]] == ["kept"]


@pytest.mark.parametrize(
    "path", ["/v1/nothing", "/v1/call/a/b/c", "/v1/integrations/pipecat/nothing", "/v2/call"]
)
async def test_an_unknown_api_route_is_a_json_404(server: Harness, path: str) -> None:
    assert_json_error(await server.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/call/%00", {}, "path"),
        ("/v1/call", {"searchText": "a\x00b"}, "searchText"),
        ("/v1/agent", {"after": "\x00"}, "after"),
        ("/calls", {"q": "\x00"}, "q"),
    ],
)
async def test_nul_in_a_url_is_a_422_naming_where(
    server: Harness, path: str, query: dict[str, str], field: str
) -> None:
    assert_json_error(await server.get(path, **query), 422, "invalid_field", field)


def cursor(*parts: object) -> str:
    """A cursor as this API makes them, holding whatever an edited URL might."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "after"),
    [
        ("/v1/call", cursor("createdAt", "desc", {"t": "2026-01-01T00:00:00"}, "x")),
        ("/v1/call", cursor("createdAt", "desc", {"t": "2026-01-01T00:00:00+00:00"}, "x\x00")),
        ("/v1/call", cursor("createdAt", "desc", {"t": "9999-12-31T23:59:59-23:59"}, "x")),
        ("/v1/call", cursor("status", "desc", "a\ud800", "x")),
        ("/v1/call", cursor("duration", "desc", 10**30, "x")),
        ("/v1/agent", cursor("createdAt", "desc", {"t": "2026-01-01T00:00:00"}, "x")),
        ("/calls.json", cursor("startedAt", "desc", {"t": "2026-01-01T00:00:00"}, "x")),
        ("/calls.json", cursor("startedAt", "desc", {"t": "2026-01-01T00:00:00+00:00"}, "\ud800")),
        ("/calls.json", "W" + "1s" * 5000),
    ],
    ids=[
        "naive",
        "nul-id",
        "out-of-range",
        "surrogate",
        "past-64-bits",
        "agents-naive",
        "page-naive",
        "page-surrogate",
        "page-deep",
    ],
)
async def test_an_edited_cursor_is_never_a_5xx(server: Harness, path: str, after: str) -> None:
    await server.start("listed")
    answer = await server.get(path, after=after)
    assert answer.status_code < 500, answer.text
    if path.startswith("/v1/"):
        assert_json_error(answer, 422, "invalid_field", "after")


@pytest.fixture(params=["serve", "embedded"])
def server_log(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> pytest.CaptureFixture[str]:
    """The log as ``serve`` configures it, or as an application that embeds the server
    might (loguru's defaults, ``diagnose`` on), writing where the test can read it."""
    if request.param == "serve":
        configure_logging(json_lines=False, level="DEBUG")
    else:
        logger.remove()
        logger.add(sys.stderr, diagnose=True, backtrace=True)
    return capsys  # the log is put back after each test (tests/conftest.py)


async def test_an_unexpected_failure_is_a_json_500_logged_without_values(
    server: Harness, server_log: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await server.start("failing")
    call_uuid = await server.call_id("failing")

    def broken(*_: Any, **__: Any) -> None:
        secret_in_a_local = "transcript-words-not-for-logs"
        raise RuntimeError(f"mapping failed ({len(secret_in_a_local)} characters)")

    # A fault no real server produces on demand: the read's mapping raising.
    monkeypatch.setattr(api, "call_out", broken)
    answer = await server.get(f"/v1/call/{call_uuid}")
    assert_json_error(answer, 500, "internal_error")
    request_id = answer.json()["error"]["requestId"]
    assert request_id == answer.headers["x-request-id"]

    log = server_log.readouterr().err
    assert "Traceback" in log
    assert request_id in log
    assert "RuntimeError: mapping failed" in log
    assert "transcript-words-not-for-logs" not in log
