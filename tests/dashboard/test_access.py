"""Who sees what: login by key or link, sessions, CSRF, one project per session, --no-auth."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pipecat_roark.server.settings import ServerSettings
from tests.server.harness import pcm

from .live import LiveServer, Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def secret_call(globex: Protocol) -> str:
    """A call of project globex, with a recording."""
    globex.start("globex-secret")
    globex.upload("globex-secret", 0, pcm(32_000))
    call_id = globex.end(
        "globex-secret",
        transcript=[
            {
                "role": "user",
                "content": "the globex secret",
                "timestamp": "2026-01-01T12:00:00+00:00",
                "endTimestamp": "2026-01-01T12:00:01+00:00",
                "audioOffsetMs": 100,
                "endAudioOffsetMs": 900,
            }
        ],
    )
    globex.wait_stitched(call_id)
    return call_id


def _session(live: LiveServer, key: str) -> httpx.Client:
    """A browser-like client logged in through the form, with its cookies."""
    client = httpx.Client(base_url=live.url, timeout=30)
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    answer = client.post(
        "/login",
        data={"key": key, "csrf": csrf.group(1), "next": "/calls"},
        headers={"origin": live.url},
    )
    assert answer.status_code == 303, answer.text
    return client


async def test_not_logged_in_goes_to_the_login_form_and_back(context: Any, acme: Protocol) -> None:
    page = await context.new_page()
    await page.goto("/calls?agent=x")
    assert re.search(r"/login\?next=%2Fcalls%3Fagent%3Dx$", page.url), page.url
    await page.fill("#key", "rk_live_not-a-key")
    await page.click("button[type=submit]")
    assert "not known here" in (await page.text_content("[role=alert]") or "")
    await page.fill("#key", acme.key)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"/calls\?agent=x$"))
    assert "acme" in (await page.text_content("header .project") or "")
    cookie = next(c for c in await context.cookies() if c["name"] == "roark_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert acme.key not in cookie["value"]

    await page.click("form.logout button")
    await page.wait_for_url(re.compile(r"/login$"))
    await page.goto("/calls")
    assert "/login" in page.url


async def test_pages_and_twins_without_a_login(live: LiveServer) -> None:
    for path in ("/calls", "/agents", "/calls/x", "/agents/x"):
        answer = httpx.get(live.url + path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=" + quote(path, safe="")
    for path in ("/calls.json", "/calls/x.json", "/calls/x/peaks.json", "/calls/x/recording"):
        assert httpx.get(live.url + path).status_code == 401
    bad = {"authorization": "Bearer rk_live_nope"}
    assert httpx.get(live.url + "/calls.json", headers=bad).status_code == 401


async def test_a_session_of_one_project_cannot_open_anothers_call(
    live: LiveServer, acme: Protocol, globex: Protocol, secret_call: str
) -> None:
    mine = _session(live, globex.key)
    assert mine.get(f"/calls/{secret_call}").status_code == 200
    assert mine.get(f"/calls/{secret_call}/peaks.json").status_code == 200
    recording = mine.get(f"/calls/{secret_call}/recording", follow_redirects=True)
    assert recording.status_code == 200
    assert recording.headers["content-type"] == "audio/wav"

    theirs = _session(live, acme.key)
    page = theirs.get(f"/calls/{secret_call}")
    assert page.status_code == 404
    assert "globex secret" not in page.text
    for path in (".json", "/peaks.json", "/recording"):
        assert theirs.get(f"/calls/{secret_call}{path}").status_code == 404
    assert theirs.get("/calls.json", params={"q": "secret"}).json()["data"] == []
    theirs.close()
    mine.close()


async def test_the_recording_plays_with_range_requests(
    live: LiveServer, globex: Protocol, secret_call: str
) -> None:
    client = _session(live, globex.key)
    whole = client.get(f"/calls/{secret_call}/recording", follow_redirects=True)
    part = client.get(
        f"/calls/{secret_call}/recording", headers={"range": "bytes=44-99"}, follow_redirects=True
    )
    assert part.status_code == 206
    assert part.content == whole.content[44:100]
    client.close()


async def test_forms_refuse_a_missing_token_or_another_sites_origin(
    live: LiveServer, acme: Protocol
) -> None:
    client = httpx.Client(base_url=live.url)
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    no_token = client.post("/login", data={"key": acme.key})
    assert no_token.status_code == 400
    cross_site = client.post(
        "/login",
        data={"key": acme.key, "csrf": token.group(1)},
        headers={"origin": "https://evil.example"},
    )
    assert cross_site.status_code == 400
    assert "roark_session" not in client.cookies
    headers = form.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"

    session = _session(live, acme.key)
    # Logging out needs the session's token: a cross-site POST cannot end a session.
    assert session.post("/logout", data={}).status_code == 303
    assert session.get("/calls").status_code == 200
    page = session.get("/calls").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    assert session.post("/logout", data={"csrf": token.group(1)}).status_code == 303
    session.cookies.delete("roark_session")
    client.close()
    session.close()


async def test_a_login_link_opens_a_session_and_a_bad_one_does_not(
    live: LiveServer, acme: Protocol
) -> None:
    link = acme.login_link("/agents")
    client = httpx.Client(timeout=30)
    opened = client.get(link)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/agents"
    assert client.get(live.url + "/agents").status_code == 200

    tampered = link.replace("token=", "token=x")
    assert httpx.get(tampered).status_code == 400
    offsite = acme.login_link("//evil.example/x")
    assert httpx.get(offsite).headers["location"] == "/calls"
    refused = acme.http.post("/v1/dashboard/login-links", json={"expiresInSeconds": 10})
    assert refused.status_code == 422
    client.close()


async def test_no_auth_is_refused_anywhere_but_127_0_0_1(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        ServerSettings(no_auth=True, host="0.0.0.0")
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipecat_roark.cli",
            "serve",
            "--no-auth",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode != 0
    assert "--no-auth is only allowed with --host 127.0.0.1" in answer.stderr


async def test_no_auth_on_127_0_0_1_shows_the_only_project_without_a_login(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.server.conftest import base_settings

    settings = base_settings(tmp_path_factory.mktemp("noauth") / "data").replace(no_auth=True)
    server = LiveServer(settings).start()
    try:
        client = Protocol(server.url, server.key("local"))
        call_id = client.end("local-call")
        answer = httpx.get(f"{server.url}/calls/{call_id}")
        assert answer.status_code == 200
        assert "no login" in answer.text
        # A second project: the login page offers both, still without a key.
        server.key("other")
        assert httpx.get(f"{server.url}/calls").status_code == 303
        form = httpx.get(f"{server.url}/login")
        assert "local" in form.text
        assert "other" in form.text
        client.close()
    finally:
        server.stop()
