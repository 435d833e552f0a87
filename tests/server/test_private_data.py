"""The data dir is its owner's alone, and the signing secret is not in the database: a copy
of the database can forge no upload, download or login."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from pipecat_roark.server import schema
from pipecat_roark.server.settings import ServerSettings
from pipecat_roark.server.signing_secret import SECRET_FILE_NAME

from .conftest import base_settings, open_harness
from .harness import Harness, pcm


async def a_stitched_call(server: Harness, call_id: str = "private") -> str:
    await server.start(call_id)
    await server.upload(call_id, 0, pcm(3200))
    await server.end(call_id)
    call_uuid = await server.call_id(call_id)
    await server.wait_stitched(call_uuid)
    return call_uuid


def modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode)
        for path in [root, *root.rglob("*")]
    }


async def secrets_stored(server: Harness) -> int:
    async with server.state.engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(schema.server_secrets))
    return int(count or 0)


async def test_everything_under_the_data_dir_is_owner_only(server: Harness) -> None:
    await a_stitched_call(server)
    await server.get("/v1/call")
    data_dir = server.settings.resolved_data_dir
    found = modes(data_dir)
    assert SECRET_FILE_NAME in found
    if server.state.engine.dialect.name == "sqlite":
        assert {"pipecat-roark.sqlite3", "pipecat-roark.sqlite3-wal", "blobs"} <= set(found)
        assert any(name.endswith(".wav") for name in found)
    for name, mode in found.items():
        is_dir = (data_dir / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    assert (data_dir / SECRET_FILE_NAME).read_text().strip() == server.state.secret
    assert await secrets_stored(server) == 0


async def test_a_copy_of_the_database_forges_nothing(tmp_path: Path) -> None:
    original = base_settings(tmp_path / "original")
    async for server in open_harness(original):
        call_uuid = await a_stitched_call(server)
        recording_url = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]["recordingUrl"]
        link = await server.post("/v1/dashboard/login-links", {})
        link_url = link.json()["data"]["url"]
        secret = server.state.secret
    database = original.resolved_data_dir / "pipecat-roark.sqlite3"
    assert secret.encode() not in database.read_bytes()

    stolen = base_settings(tmp_path / "stolen")
    stolen.resolved_data_dir.mkdir(mode=0o700)
    shutil.copy(database, stolen.resolved_data_dir / "pipecat-roark.sqlite3")
    async for copy in open_harness(stolen, project="thief"):
        assert copy.state.secret != secret
        download = await copy.client.get(recording_url)
        assert download.status_code == 403, download.text
        login = await copy.client.get(link_url)
        assert login.status_code == 400
        assert "roark_session" not in login.cookies


async def test_a_secret_kept_in_the_database_moves_to_the_file(tmp_path: Path) -> None:
    older = "older-secret-from-the-database"
    settings = base_settings(tmp_path / "data")
    async for server in open_harness(settings):
        async with server.state.engine.begin() as connection:
            await connection.execute(
                insert(schema.server_secrets).values(name="url-signing-key", value=older)
            )
    (settings.resolved_data_dir / SECRET_FILE_NAME).unlink()
    async for server in open_harness(settings):
        assert server.state.secret == older
        assert await secrets_stored(server) == 0
    assert (settings.resolved_data_dir / SECRET_FILE_NAME).read_text().strip() == older


async def test_a_secret_from_the_environment_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    settings = ServerSettings.from_sources(
        {"data_dir": tmp_path / "data"}, {"ROARK_SERVER_SECRET_KEY": "shared-by-replicas"}
    )
    async for server in open_harness(settings):
        assert server.state.secret == "shared-by-replicas"
        assert await secrets_stored(server) == 0
    assert not (settings.resolved_data_dir / SECRET_FILE_NAME).exists()


async def test_an_existing_data_dir_is_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    async for _ in open_harness(base_settings(data_dir)):
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


async def test_a_secret_too_short_to_sign_with_stops_the_start(tmp_path: Path) -> None:
    settings = base_settings(tmp_path / "data")
    settings.resolved_data_dir.mkdir(mode=0o700)
    (settings.resolved_data_dir / SECRET_FILE_NAME).write_text("\n")
    with pytest.raises(ValueError, match=SECRET_FILE_NAME):
        async for _ in open_harness(settings):
            pass
