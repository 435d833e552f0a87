"""Deploying for real: a TLS balancer in front, a store clients reach at its public address.

``X-Forwarded-*`` count only from the addresses ``--forwarded-allow-ips`` names; presigned
URLs are signed for ``--s3-public-endpoint-url`` while the server itself keeps using
``--s3-endpoint-url``; the server runs on a bucket-only S3 identity.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from pipecat_roark.server.embed import ensure_project_key
from pipecat_roark.server.settings import ServerSettings

from .conftest import base_settings, open_harness
from .harness import PRESIGN, Harness, pcm, started, wav_frames
from .services import SeaweedS3, ServeProcess
from .test_cli import cli

BALANCER = "127.0.0.3"
"""The balancer's address in these tests: on loopback, but not 127.0.0.1."""
STRANGER = "127.0.0.5"
FORWARDED = {
    "x-forwarded-proto": "https",
    "x-forwarded-for": "203.0.113.7",
    "host": "roark.example.test",
}


def client_from(address: str, base_url: str) -> httpx.AsyncClient:
    """A client whose requests leave from ``address``, as a balancer's or a stranger's would."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30)


@pytest.fixture
def behind_balancer(tmp_path: Path) -> Iterator[tuple[ServeProcess, str]]:
    """``serve`` on SQLite, trusting the balancer's subnet (set through the environment)."""
    settings = base_settings(tmp_path / "data")
    key = asyncio.run(ensure_project_key(settings, "deploy"))
    env = {"ROARK_SERVER_FORWARDED_ALLOW_IPS": f"10.20.0.0/16, {BALANCER}/32"}
    server = ServeProcess.start(["--data-dir", str(settings.data_dir)], env, tmp_path / "log")
    try:
        yield server, key
    finally:
        server.stop()


async def _what_the_server_builds(client: httpx.AsyncClient, key: str) -> dict[str, str]:
    """The login link, the session cookie it sets, and a chunk upload URL."""
    auth = {"authorization": f"Bearer {key}", **FORWARDED}
    link = await client.post("/v1/dashboard/login-links", headers=auth, json={})
    assert link.status_code == 200, link.text
    url = link.json()["data"]["url"]
    parts = urlsplit(url)
    opened = await client.get(f"{parts.path}?{parts.query}", headers=FORWARDED)
    assert opened.status_code == 303, opened.text
    call_id = f"fwd-{uuid.uuid4().hex[:8]}"
    begun = await client.post("/v1/integrations/pipecat", json=started(call_id), headers=auth)
    assert begun.status_code == 200, begun.text
    presigned = await client.post(
        PRESIGN,
        json={"pipecatCallId": call_id, "chunkIndex": 0, "contentType": "audio/pcm"},
        headers=auth,
    )
    assert presigned.status_code == 200, presigned.text
    return {
        "link": url,
        "cookie": opened.headers["set-cookie"],
        "upload": presigned.json()["uploadUrl"],
    }


@pytest.mark.parametrize(
    ("address", "scheme", "secure"),
    [(BALANCER, "https", True), (STRANGER, "http", False)],
    ids=["from-the-balancer", "from-elsewhere-ignored"],
)
async def test_forwarded_https_counts_only_from_an_allowed_address(
    behind_balancer: tuple[ServeProcess, str], address: str, scheme: str, secure: bool
) -> None:
    server, key = behind_balancer
    async with client_from(address, server.url) as client:
        built = await _what_the_server_builds(client, key)
    assert built["link"].startswith(f"{scheme}://roark.example.test/login/link?token=")
    assert built["upload"].startswith(f"{scheme}://roark.example.test/")
    attributes = [part.strip().lower() for part in built["cookie"].split(";")]
    assert ("secure" in attributes) is secure
    assert "httponly" in attributes


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--forwarded-allow-ips", "10.0.0.0/33", "is not an IP address, a CIDR or '*'"),
        ("--forwarded-allow-ips", "10.0.0.1,balancer", "'balancer' is not an IP address"),
        ("--s3-public-endpoint-url", "s3.example.com", "is not an http(s)://host[:port] URL"),
    ],
)
def test_bad_deploy_settings_stop_serve_with_a_clear_message(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    result = cli("serve", "--data-dir", str(tmp_path), flag, value)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_deploy_settings_come_from_the_environment_and_default_as_before() -> None:
    assert ServerSettings.from_sources({}, {}).forwarded_allow_ips == "127.0.0.1"
    assert ServerSettings.from_sources({}, {}).resolved_s3_public_endpoint_url is None
    private = {"ROARK_SERVER_S3_ENDPOINT_URL": "http://seaweedfs:8333"}
    assert (
        ServerSettings.from_sources({}, private).resolved_s3_public_endpoint_url
        == "http://seaweedfs:8333"
    )
    public = ServerSettings.from_sources(
        {},
        private
        | {
            "ROARK_SERVER_S3_PUBLIC_ENDPOINT_URL": "https://s3.example.com",
            "ROARK_SERVER_FORWARDED_ALLOW_IPS": "*",
        },
    )
    assert public.resolved_s3_public_endpoint_url == "https://s3.example.com"
    assert public.s3_endpoint_url == "http://seaweedfs:8333"
    assert public.forwarded_allow_ips == "*"


BUCKET = "calls"
LIMITED = {"accessKey": "roark-server", "secretKey": "roark-server-secret"}


@pytest.fixture(scope="module")
def limited_s3() -> Iterator[SeaweedS3]:
    """SeaweedFS with an admin, who makes the bucket, and an identity limited to it."""
    store = SeaweedS3.start(
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        identities=[
            {
                "name": "roark-server",
                "credentials": [LIMITED],
                "actions": [f"Read:{BUCKET}", f"Write:{BUCKET}", f"List:{BUCKET}"],
            }
        ],
    )
    try:
        asyncio.run(_create_bucket(store.endpoint, BUCKET))
        yield store
    finally:
        store.stop()


async def _create_bucket(endpoint: str, bucket: str) -> None:
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1"
    ) as admin:
        await admin.create_bucket(Bucket=bucket)


def public_address(endpoint: str) -> str:
    """The same store under another name: SigV4 signs the host, so URLs differ in kind."""
    parts = urlsplit(endpoint)
    assert parts.hostname == "127.0.0.1"
    return f"{parts.scheme}://localhost:{parts.port}"


@pytest.fixture
async def public_store(
    limited_s3: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LIMITED["accessKey"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LIMITED["secretKey"])
    settings = base_settings(tmp_path / "data").replace(
        blob_url=f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=limited_s3.endpoint,
        s3_public_endpoint_url=public_address(limited_s3.endpoint),
        no_auth=True,
    )
    async for harness in open_harness(settings):
        yield harness


async def test_presigned_urls_name_the_public_endpoint_and_work_there(
    public_store: Harness,
) -> None:
    server = public_store
    private = str(server.settings.s3_endpoint_url)
    public = str(server.settings.s3_public_endpoint_url)
    assert (await server.client.get("/readyz")).status_code == 200  # bucket-only identity

    chunks = [pcm(6400, seed=i) for i in range(3)]
    await server.start("public")
    for index, data in enumerate(chunks):
        presigned = await server.upload("public", index, data)
        assert presigned["uploadUrl"].startswith(public + "/"), presigned
    await server.end("public")
    call_uuid = await server.call_id("public")
    await server.wait_stitched(call_uuid)

    call = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]
    recording_url = call["recordingUrl"]
    assert recording_url.startswith(public + "/"), recording_url
    async with httpx.AsyncClient(timeout=30) as client:
        whole = await client.get(recording_url)
        assert whole.status_code == 200
        assert wav_frames(whole.content)[2] == b"".join(chunks)
        ranged = await client.get(recording_url, headers={"range": "bytes=0-43"})
        assert ranged.status_code == 206
        assert ranged.content == whole.content[:44]
        # Signed for the public host: the same URL at the private address is refused.
        elsewhere = await client.get(recording_url.replace(public, private))
        assert elsewhere.status_code == 403

    page = await server.client.get(f"/calls/{call_uuid}")
    assert page.status_code == 200, page.text
    policy = page.headers["content-security-policy"]
    media = next(part for part in policy.split(";") if part.strip().startswith("media-src"))
    assert public in media.split()
    assert private not in policy
