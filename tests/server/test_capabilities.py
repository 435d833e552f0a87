"""Capabilities (signed URLs, login links) work once, for what they were made for, and never
reach the log. Against a real ``serve`` process on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .harness import EVENTS, PRESIGN, ended, pcm, started, wav_frames
from .services import ServeProcess, cli_key, serve_storage

FRAME = 4  # stereo 16-bit


@dataclass
class Live:
    server: ServeProcess
    key: str
    data_dir: Path

    def client(self) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.key}", "x-roark-api-key": self.key}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def log(self) -> str:
        return self.server.log.read_text(errors="replace")


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    data_dir = tmp_path / "data"
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    storage = serve_storage(data_dir, postgres)
    key = cli_key("p", storage)
    server = ServeProcess.start(storage, {}, tmp_path / "serve.log")
    try:
        yield Live(server, key, data_dir)
    finally:
        server.stop()


def stitched(client: httpx.Client, call_uuid: str, count: int = 1) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        details = client.get(f"/v1/call/{call_uuid}/pipecat").json()["data"]
        if details["recording"]["stitchCount"] >= count:
            return dict(details)
        assert time.monotonic() < deadline, details
        time.sleep(0.05)


def query_value(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


def test_a_scripted_call_leaves_no_capability_in_the_log(live: Live) -> None:
    secrets: list[str] = [live.key]
    with live.client() as client, httpx.Client(timeout=30) as anonymous:
        assert client.post(EVENTS, json=started("logged")).status_code == 200
        upload = client.post(PRESIGN, json={"pipecatCallId": "logged", "chunkIndex": 0})
        upload_url = upload.json()["uploadUrl"]
        secrets.append(query_value(upload_url, "signature"))
        put = anonymous.put(upload_url, content=pcm(3200), headers={"content-type": "audio/pcm"})
        assert put.status_code == 200, put.text
        answer = client.post(EVENTS, json=ended("logged"))
        call_uuid = answer.json()["callId"]
        stitched(client, call_uuid)

        recording_url = client.get(f"/v1/call/{call_uuid}").json()["data"]["recordingUrl"]
        secrets.append(query_value(recording_url, "signature"))
        assert anonymous.get(recording_url).status_code == 200

        link = client.post("/v1/dashboard/login-links", json={"next": f"/calls/{call_uuid}"})
        link_url = link.json()["data"]["url"]
        secrets.append(query_value(link_url, "token"))
        opened = anonymous.get(link_url)
        assert opened.status_code == 303, opened.text
        secrets.append(opened.cookies["roark_session"])

    live.server.stop()
    log = live.log()
    # The access log is on, and has the URLs without their capabilities.
    assert "/v1/recordings/" in log
    assert "/login/link" in log
    for secret in secrets:
        assert secret not in log
    signature_part = secrets[1][:16]
    assert signature_part not in log


def test_an_upload_url_stores_its_bytes_once(live: Live) -> None:
    first, other = pcm(3200, seed=1), pcm(3200, seed=2)
    with live.client() as client, httpx.Client(timeout=30) as anonymous:
        client.post(EVENTS, json=started("once"))
        upload_url = client.post(PRESIGN, json={"pipecatCallId": "once", "chunkIndex": 0}).json()[
            "uploadUrl"
        ]
        headers = {"content-type": "audio/pcm"}
        # A PUT that failed (half a frame) changes nothing and may be retried.
        assert anonymous.put(upload_url, content=first[:-1], headers=headers).status_code == 422
        assert anonymous.put(upload_url, content=first, headers=headers).status_code == 200
        call_uuid = client.post(EVENTS, json=ended("once")).json()["callId"]
        stitched(client, call_uuid)
        recording_url = client.get(f"/v1/call/{call_uuid}").json()["data"]["recordingUrl"]
        before = anonymous.get(recording_url).content
        assert wav_frames(before)[2] == first

        replayed = anonymous.put(upload_url, content=other, headers=headers)
        assert replayed.status_code == 409, replayed.text
        assert replayed.json()["error"]["code"] == "chunk_already_uploaded"
        # A fresh URL for the same chunk is no way around it.
        fresh = client.post(PRESIGN, json={"pipecatCallId": "once", "chunkIndex": 0})
        assert (
            anonymous.put(fresh.json()["uploadUrl"], content=other, headers=headers).status_code
            == 409
        )
        # The client's own retry after a lost answer: the same bytes, acknowledged, unchanged.
        assert anonymous.put(upload_url, content=first, headers=headers).status_code == 200

        details = stitched(client, call_uuid)
        assert details["recording"]["stitchCount"] == 1
        assert anonymous.get(recording_url).content == before
        stored = live.data_dir / "blobs" / "calls" / call_uuid / "chunks"
        assert [path.read_bytes() for path in sorted(stored.iterdir())] == [first]


def test_a_login_link_opens_one_session_once(live: Live) -> None:
    with live.client() as client:
        link = client.post("/v1/dashboard/login-links", json={"next": "/calls"})
        assert link.status_code == 200, link.text
        url = link.json()["data"]["url"]
        # Made in the same second for the same key: still a link of its own.
        other = client.post("/v1/dashboard/login-links", json={}).json()["data"]["url"]
    assert other != url
    with httpx.Client(timeout=30) as browser:
        opened = browser.get(url)
        assert opened.status_code == 303
        assert browser.get(live.server.url + "/calls").status_code == 200
        # The session lasts; the link does not.
        browser.cookies.clear()
        again = browser.get(url)
        assert again.status_code == 400
        assert "used already" in again.text
        assert "roark_session" not in again.cookies
        assert browser.get(other).status_code == 303


def test_a_login_link_lives_minutes_at_most(live: Live) -> None:
    with live.client() as client:
        too_long = client.post("/v1/dashboard/login-links", json={"expiresInSeconds": 3600})
        assert too_long.status_code == 422
        assert too_long.json()["error"]["field"] == "expiresInSeconds"
        default = client.post("/v1/dashboard/login-links", json={}).json()["data"]
    expires = int(query_value(default["url"], "token").split(".")[2])
    assert expires - time.time() <= 5 * 60 + 1
