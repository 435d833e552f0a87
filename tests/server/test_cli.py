"""The command line: ``serve`` in a real process, ``keys create|list``, settings precedence."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipecat_roark.server.settings import ServerSettings

from .services import ServeProcess


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipecat_roark.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    created = cli("keys", "create", "--project", "acme", "--data-dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rk_live_")
    assert len(key) > 40
    assert "\n" not in key
    database = (tmp_path / "pipecat-roark.sqlite3").read_bytes()
    for suffix in ("", "-wal"):
        path = tmp_path / f"pipecat-roark.sqlite3{suffix}"
        if path.exists():
            assert key.encode() not in path.read_bytes()
    assert database

    listed = cli("keys", "list", "--data-dir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("acme\trk_live_")
    assert key not in listed.stdout


def test_keys_create_and_list_print_no_log_lines(tmp_path: Path) -> None:
    # The first run creates the database (migrations log at DEBUG); the second finds it current.
    for project in ("first", "second"):
        created = cli("keys", "create", "--project", project, "--data-dir", str(tmp_path))
        assert created.returncode == 0, created.stderr
        assert created.stderr.splitlines() == [
            f"(project {project!r}; the key is shown only now, only its hash is stored)"
        ]
    listed = cli("keys", "list", "--data-dir", str(tmp_path))
    assert listed.returncode == 0
    assert listed.stderr == ""
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["first", "second"]


def test_a_relative_data_dir_is_the_folder_under_the_working_directory(tmp_path: Path) -> None:
    key = cli("keys", "create", "--project", "rel", "--data-dir", "data", cwd=tmp_path)
    assert key.returncode == 0, key.stderr
    server = ServeProcess.start(["--data-dir", "data"], {}, tmp_path / "serve.log", cwd=tmp_path)
    try:
        request = urllib.request.Request(
            server.url + "/v1/integrations/pipecat/chunk-upload-url",
            data=json.dumps({"pipecatCallId": "rel-call", "chunkIndex": 0}).encode(),
            headers={"content-type": "application/json", "x-roark-api-key": key.stdout.strip()},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            upload_url = json.loads(answer.read())["uploadUrl"]
        chunk = urllib.request.Request(
            upload_url, data=b"\x01\x00" * 160, method="PUT", headers={"content-type": "audio/pcm"}
        )
        with urllib.request.urlopen(chunk, timeout=10) as answer:
            assert answer.status in (200, 204)
    finally:
        assert server.stop() in (0, -15)
    assert (tmp_path / "data" / "pipecat-roark.sqlite3").is_file()
    stored = [path for path in (tmp_path / "data" / "blobs").rglob("*") if path.is_file()]
    assert [path.read_bytes() for path in stored] == [b"\x01\x00" * 160]
    relative = ServerSettings(data_dir=Path("data"))
    assert relative.resolved_data_dir == Path.cwd() / "data"
    assert relative.resolved_blob_url == (Path.cwd() / "data" / "blobs").as_uri()


def test_serve_warns_when_the_dashboard_needs_no_login(tmp_path: Path) -> None:
    server = ServeProcess.start(
        ["--no-auth"], {"ROARK_SERVER_DATA_DIR": str(tmp_path)}, tmp_path / "s.log"
    )
    server.stop()
    warnings = [line for line in server.log.read_text().splitlines() if "WARNING" in line]
    assert any("--no-auth" in line and "local development only" in line for line in warnings)


def test_the_command_modules_import_only_the_standard_library() -> None:
    probe = (
        "import sys; import pipecat_roark.server, pipecat_roark.server.cli, "
        "pipecat_roark.server.settings; "
        "heavy = {'fastapi', 'sqlalchemy', 'uvicorn', 'alembic', 'pipecat', 'aiobotocore'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_settings_come_from_arguments_then_environment_then_defaults() -> None:
    environ = {
        "ROARK_SERVER_PORT": "9000",
        "ROARK_SERVER_HOST": "0.0.0.0",
        "ROARK_SERVER_RETENTION_DAYS": "7",
    }
    settings = ServerSettings.from_sources({"port": 9100, "host": None}, environ)
    assert (settings.port, settings.host, settings.retention_days) == (9100, "0.0.0.0", 7.0)
    assert ServerSettings.from_sources({}, {}).port == 8787
    default = ServerSettings.from_sources({}, {})
    assert default.resolved_database_url.endswith("pipecat-roark/server/pipecat-roark.sqlite3")
    assert default.resolved_blob_url.endswith("pipecat-roark/server/blobs")


def test_serve_runs_from_the_environment_and_stops_on_sigterm(tmp_path: Path) -> None:
    key = cli("keys", "create", "--project", "cli", "--data-dir", str(tmp_path)).stdout.strip()
    server = ServeProcess.start(
        [],
        {"ROARK_SERVER_DATA_DIR": str(tmp_path), "ROARK_SERVER_LOG_JSON": "1"},
        tmp_path / "serve.log",
    )
    try:
        request = urllib.request.Request(
            server.url + "/v1/integrations/pipecat",
            data=json.dumps(
                {
                    "event": "call-started",
                    "pipecatCallId": "cli-call",
                    "eventTimestamp": "2026-01-01T00:00:00Z",
                    "agentId": "a",
                }
            ).encode(),
            headers={"content-type": "application/json", "x-roark-api-key": key},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        assert (tmp_path / "blobs").is_dir()
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.stop() in (0, -15)
    records = [json.loads(line)["record"] for line in server.log.read_text().splitlines()]
    messages = [record["message"] for record in records]
    assert "Application shutdown complete." in messages
    assert any('"POST /v1/integrations/pipecat HTTP/1.1" 200' in m for m in messages)


def test_serve_keeps_an_idle_connection_open_longer_than_its_clients_do(tmp_path: Path) -> None:
    # With uvicorn's default of 5 s, a client whose own idle expiry is as long (httpx) or
    # longer (aiohttp, 15 s) sends its next request on a connection being closed: a read
    # error instead of an answer.
    server = ServeProcess.start([], {"ROARK_SERVER_DATA_DIR": str(tmp_path)}, tmp_path / "s.log")
    try:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/readyz")
        assert connection.getresponse().read()
        time.sleep(6.0)
        connection.request("GET", "/readyz")
        answer = connection.getresponse()
        assert answer.status == 200
        answer.read()
        connection.close()
    finally:
        server.stop()


def test_commands_started_together_on_a_new_data_dir_all_find_one_schema(tmp_path: Path) -> None:
    """Each command brings the SQLite schema up to date when it opens the database; six at
    once (``serve`` starting beside ``keys create``) take turns instead of adding the same
    column twice."""
    data = tmp_path / "data"
    env = {**os.environ, "ROARK_SERVER_DATA_DIR": str(data)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "pipecat_roark.cli", "keys", "create", "--project", f"p{n}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr[-2000:]
    listed = cli("keys", "list", env={"ROARK_SERVER_DATA_DIR": str(data)})
    assert all(f"p{n}" in listed.stdout for n in range(6))
