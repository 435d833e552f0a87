"""HTML error pages for the browser (404, 403, 500) with a way back; the API keeps JSON.
And the recording loads on demand: ``preload="metadata"`` and ranges (206)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import HTTPException

from pipecat_roark.server.errors import StorageUnavailable
from tests.server.harness import pcm

from .conftest import logged_in
from .live import LiveServer, Protocol

SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@SESSION_LOOP
async def test_an_unknown_route_is_an_html_page_with_a_way_back(
    context: Any, acme: Protocol
) -> None:
    page = await logged_in(context, acme)
    for path in ("/no/such/page", "/calls/no-such-call", "/agents/no-such-agent"):
        answer = await page.goto(path)
        assert answer is not None
        assert answer.status == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert await page.text_content("h1") == "Not found (404)"
        back = page.locator("main a", has_text="Back to the calls")
        assert await back.get_attribute("href") == "/calls"
    await back.click()
    await page.wait_for_url("**/calls")
    assert page.errors == []


def test_the_api_and_the_twins_keep_json(live: LiveServer, acme: Protocol) -> None:
    for path in ("/v1/no-such-route", "/calls/no-such-call.json", "/v1/call/no-such-call"):
        answer = acme.http.get(path, headers=HTML)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("application/json"), path
        assert answer.json()["error"]["code"] == "not_found"
    # Not logged in, a browser gets the page; a script gets JSON.
    assert httpx.get(f"{live.url}/no/such/page", headers=HTML).status_code == 404
    assert httpx.get(f"{live.url}/no/such/page", headers=HTML).text.startswith("<!doctype html>")
    assert httpx.get(f"{live.url}/no/such/page").json()["error"]["code"] == "not_found"


def test_forbidden_a_failure_and_an_outage_are_html_pages_too(live: LiveServer) -> None:
    # Faults the dashboard's own routes do not produce on demand, injected as routes.
    def forbidden() -> None:
        raise HTTPException(403, "no")

    def failing() -> None:
        raise RuntimeError("a bug")

    def outage() -> None:
        raise StorageUnavailable("the disk is gone")

    live.app.add_api_route("/test-only/forbidden", forbidden)
    live.app.add_api_route("/test-only/failing", failing)
    live.app.add_api_route("/test-only/outage", outage)
    with httpx.Client(base_url=live.url) as client:
        answer = client.get("/test-only/forbidden", headers=HTML)
        assert answer.status_code == 403
        assert '<h1 id="error-heading">Forbidden' in answer.text
        assert 'href="/login"' in answer.text  # no viewer: the way back is the login page
        answer = client.get("/test-only/outage", headers=HTML)
        assert answer.status_code == 503
        assert "Unavailable" in answer.text
        assert answer.headers["retry-after"] == "1"
        answer = client.get("/test-only/outage")
        assert answer.json()["error"]["code"] == "storage_unavailable"
    # After an unexpected error the server closes the connection: one connection each.
    answer = httpx.get(f"{live.url}/test-only/failing", headers=HTML)
    assert answer.status_code == 500
    assert "Something went wrong" in answer.text
    assert "a bug" not in answer.text
    answer = httpx.get(f"{live.url}/test-only/failing")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"


@SESSION_LOOP
async def test_the_recording_loads_on_demand_and_answers_ranges(
    context: Any, acme: Protocol
) -> None:
    acme.start("range-call")
    acme.upload("range-call", 0, pcm(64_000))
    call_id = acme.end("range-call")
    acme.wait_stitched(call_id)
    page = await logged_in(context, acme, f"/calls/{call_id}")
    await page.wait_for_selector("#call[data-ready='1']")
    assert await page.get_attribute("#player", "preload") == "metadata"

    session = {c["name"]: c["value"] for c in await context.cookies()}
    with httpx.Client(base_url=acme.url, cookies=session) as browser:
        signed = browser.get(f"/calls/{call_id}/recording")
        assert signed.status_code == 307
        whole = httpx.get(signed.headers["location"])
        assert whole.status_code == 200
        assert whole.headers["accept-ranges"] == "bytes"
        part = httpx.get(signed.headers["location"], headers={"range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(whole.content)}"
        assert part.content == whole.content[1000:2000]
    assert page.errors == []
