"""Every command and code block in the docs runs as written.

Shell blocks run in bash with this checkout's ``pipecat-roark`` first on the PATH, a fresh
home and data folder, and the few substitutions a reader makes too: a free port for
``serve``, this machine's PostgreSQL and S3 server for the example hosts, and the key the
previous line printed. ``pip install`` lines are checked (our name, extras that exist)
rather than run: the registry is not this test's to change. The README's quick start is run
by tests/observer/test_readme_example.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs the [server] extra")
pytest.importorskip("tomllib", reason="Python 3.11 or newer")

import tomllib

from pipecat_roark.cli import DISTRIBUTION
from tests.server.services import free_port
from tests.support.backend import RecordingBackend
from tests.support.snippets import DOCS, REPO, RUNNABLE, Snippet, named, snippets

BIN = Path(sys.executable).parent

RUN_HERE = {
    "demo",
    "install",
    "install-checkout",
    "own-recorder",
    "replay",
    "serve",
    "server-start",
    "backup",
    "rebuild-latency",
    "rebuild-counts",
    "rebuild-search",
    "scale",
    "embed",
    "delivery-object",
}
RUN_ELSEWHERE = {
    "quick-start": "tests/observer/test_readme_example.py",
    "disconnect": "tests/observer/test_webrtc_endings.py (on a real SmallWebRTC transport)",
    "quick-start-run-1.x": "tests/observer/test_readme_example.py",
    "quick-start-run-0.0.x": "tests/observer/test_readme_example.py",
    "replay-options": "tests/delivery/test_shared_spool.py (--wait, --allow-pending, the report) "
    "and tests/observer/test_miswired.py (--send-orphans)",
    "slowest-replies": "tests/server/test_attribution.py (the same command against a server)",
    "traces-setup": "tests/demo/test_demo_traces.py (Pipecat's tracing, the real OTLP exporter)",
    "deploy-settings": "tests/server/test_deploy.py (the same settings, read from the environment)",
    "test-suite": "scripts/test itself, the command that runs this file (.ci/run runs it)",
}


def test_every_block_a_reader_runs_is_run_by_a_test() -> None:
    unnamed, unknown = [], []
    for path in DOCS:
        for snippet in snippets(path):
            if snippet.language not in RUNNABLE:
                continue
            if snippet.name is None:
                unnamed.append(snippet.where)
            elif snippet.name not in RUN_HERE and snippet.name not in RUN_ELSEWHERE:
                unknown.append(f"{snippet.where} ({snippet.name})")
    assert not unnamed, f"blocks no test runs (name them <!-- snippet: NAME -->): {unnamed}"
    assert not unknown, f"named blocks no test knows: {unknown}"


# -- pip install: our name, real extras --------------------------------------------------------


def _project() -> dict[str, Any]:
    with open(REPO / "pyproject.toml", "rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def test_the_distribution_name_is_the_one_messages_give() -> None:
    assert _project()["name"] == DISTRIBUTION
    # Roark's own distribution, a different package with the same module.
    assert DISTRIBUTION != "pipecat-roark"


def test_every_pip_install_in_the_docs_names_this_project_and_extras_it_has() -> None:
    project = _project()
    extras = set(project["optional-dependencies"])
    commands = [
        (path.relative_to(REPO), match.group(1))
        for path in DOCS
        for match in re.finditer(r"pip install ([^`\n#]+)", path.read_text())
    ]
    assert len(commands) >= 6
    for where, command in commands:
        for requirement in shlex.split(command):
            name, _, rest = requirement.partition("[")
            assert name in (project["name"], "."), f"{where}: pip install {requirement}"
            assert set(filter(None, rest.rstrip("]").split(","))) <= extras, (where, requirement)
    readme = (REPO / "README.md").read_text()
    assert "pip uninstall pipecat-roark" in readme  # the replaced package, said plainly


# -- shell blocks ----------------------------------------------------------------------------


@dataclass
class Shell:
    """A reader's shell: this checkout's commands, a fresh home, a free ``serve`` port."""

    home: Path
    env: dict[str, str]
    port: int
    servers: list[subprocess.Popen[bytes]]

    @property
    def data_dir(self) -> Path:
        return self.home / ".local/share/pipecat-roark/server"

    def run(self, snippet: Snippet, **substitutions: str) -> str:
        """Runs the block's commands in one bash; ``serve`` lines go to the background."""
        script = ["set -euo pipefail"]
        for command in snippet.commands():
            for old, new in substitutions.items():
                command = command.replace(old, new)
            if command.startswith("pip install"):
                continue  # checked above, not run
            if command.startswith("scripts/demo"):
                command = "pipecat-roark demo" + command.removeprefix("scripts/demo")
            if command.startswith("pipecat-roark serve"):
                self.servers.append(self._background(command))
                continue
            script.append(command)
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, f"{snippet.where}: {done.stderr[-2000:]}"
        return done.stdout

    def _background(self, command: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"serve-{len(self.servers)}.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(
            ["bash", "-c", "exec " + command], env=self.env, cwd=self.home, stdout=log, stderr=log
        )
        log.close()
        return server

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        """Waits for ``serve`` to answer (a slow start is a busy machine, not a failure)."""
        for _ in range(int(timeout / 0.1)):
            assert all(s.poll() is None for s in self.servers), self.logs()
            try:
                urllib.request.urlopen(self.url() + "/readyz", timeout=2).close()
                return
            except OSError:
                subprocess.run(["sleep", "0.1"], check=True)
        raise AssertionError(f"serve did not get ready: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-1500:] for p in self.home.glob("serve-*.log"))

    def stop_servers(self) -> None:
        for server in self.servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        self.servers.clear()


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ROARK_", "XDG_")) and key != "VIRTUAL_ENV"
    }
    port = free_port()
    env.update(
        HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ROARK_SERVER_PORT=str(port),
        ROARK_SPOOL_DIR=str(home / "spool"),
    )
    reader = Shell(home, env, port, [])
    yield reader
    reader.stop_servers()


def _get(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _key(output: str) -> str:
    (key,) = re.findall(r"^rk_live_\S+$", output, re.M)
    return key


@pytest.mark.parametrize("name", ["serve", "server-start"])
def test_install_create_a_key_and_serve(name: str, shell: Shell) -> None:
    (snippet,) = named(name)
    key = _key(shell.run(snippet))
    shell.wait_ready()
    assert _get(shell.url() + "/v1/call", key)["data"] == []
    # The default data folder, under the reader's home.
    assert (shell.data_dir / "pipecat-roark.sqlite3").is_file()


def test_the_demo_blocks_show_the_same_commands() -> None:
    first, *others = named("demo")
    assert [other.commands() for other in others] == [first.commands()] * len(others)


def test_the_demo_at_full_speed_without_serving(shell: Shell) -> None:
    (line,) = [c for c in named("demo")[0].commands() if "--no-serve" in c]
    printed = shell.run(Snippet(REPO, 0, "bash", "demo", line + "\n"))
    assert f"pipecat-roark serve --data-dir {shell.data_dir}" in printed
    # What it says to run next shows the call.
    (call_path,) = re.findall(r"http://127\.0\.0\.1:8787(/calls/[\w-]+)", printed)
    serve = f"pipecat-roark serve --data-dir {shell.data_dir}"
    key = (shell.data_dir / "demo-api-key").read_text().strip()
    shell.run(Snippet(REPO, 0, "sh", "demo", serve + "\n"))
    shell.wait_ready()
    (call,) = _get(shell.url() + "/v1/call", key)["data"]
    assert call_path == f"/calls/{call['id']}"


_WITH_CTRL_C = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def test_the_demo_in_real_time_serves_until_ctrl_c(shell: Shell) -> None:
    (line,) = [c for c in named("demo")[0].commands() if c == "scripts/demo"]
    command = "pipecat-roark demo" + line.removeprefix("scripts/demo")
    demo = subprocess.Popen(
        # As from a terminal, where Ctrl-C reaches the demo: a run of this suite started in the
        # background (`scripts/test &`, nohup) would hand on SIGINT ignored.
        [sys.executable, "-c", _WITH_CTRL_C, *shlex.split(command)],
        # If it does not exit, SIGABRT makes it print every thread's stack (below).
        env={**shell.env, "PYTHONFAULTHANDLER": "1"},
        cwd=shell.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        printed = []
        for text in demo.stdout:  # the call plays on its own clock, about 40 s
            printed.append(text)
            if "press Ctrl-C to stop" in text:
                break
        output = "".join(printed)
        # Keep reading what it prints from here on (its shutdown logs among them): a pipe
        # nobody reads fills up, and a process writing to it waits for ever.
        rest: list[str] = []
        reader = threading.Thread(target=lambda: rest.extend(demo.stdout or ()), daemon=True)
        reader.start()
        (link,) = re.findall(r"Open the call in the dashboard: (\S+)", output)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(link, timeout=30) as page:
            assert page.status == 200
            assert "Alex Morgan" in page.read().decode()
        demo.send_signal(signal.SIGINT)
        try:
            # A bound that catches a demo that never exits, not a measure of how fast.
            status = demo.wait(timeout=180)
        except subprocess.TimeoutExpired:
            demo.send_signal(signal.SIGABRT)
            demo.wait(timeout=30)
            reader.join(timeout=30)
            raise AssertionError("did not exit; its threads:\n" + "".join(rest)[-6000:]) from None
        assert status == 0, "".join(rest)[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def _spool_a_call(shell: Shell, base_url: str, call_id: str) -> None:
    code = textwrap.dedent(f"""
        from pipecat_roark.delivery.spool import (
            ORDER_CALL_ENDED, ORDER_CALL_STARTED, Spool, SpoolRecord,
        )
        import json
        spool = Spool({str(shell.home / "spool")!r})
        def event(body):
            return json.dumps({{"pipecatCallId": {call_id!r}, "eventTimestamp":
                "2026-01-01T00:00:00+00:00", **body}}).encode()
        spool.write(SpoolRecord("call-started", {call_id!r}, {base_url!r}, ORDER_CALL_STARTED,
            event({{"event": "call-started", "agentId": "docs"}})))
        spool.write(SpoolRecord("chunk", {call_id!r}, {base_url!r}, 1, b"\\0\\0" * 3200))
        spool.write(SpoolRecord("call-ended", {call_id!r}, {base_url!r}, ORDER_CALL_ENDED,
            event({{"event": "call-ended", "callEndedReason": "agent-ended",
                   "recordingSampleRate": 16000, "recordingNumChannels": 2}})))
    """)
    subprocess.run([sys.executable, "-c", code], env=shell.env, check=True)


def test_replay_what_the_spool_holds(shell: Shell) -> None:
    key = _key(shell.run(Snippet(REPO, 0, "sh", "", "pipecat-roark keys create --project p\n")))
    shell.run(Snippet(REPO, 0, "sh", "", "pipecat-roark serve\n"))
    shell.wait_ready()
    (snippet,) = named("replay")
    (replay,) = [c for c in snippet.commands() if c == "pipecat-roark replay"]
    (dry_run,) = [c for c in snippet.commands() if c.endswith("--dry-run")]
    (elsewhere,) = [c for c in snippet.commands() if "--base-url" in c]

    # A call spooled for a backend that has gone away, sent to this one instead.
    _spool_a_call(shell, f"http://127.0.0.1:{free_port()}", "meant-for-a-server-that-is-gone")
    listed = shell.run(Snippet(REPO, 0, "bash", "replay", dry_run + "\n"))
    assert "3 record(s) of 1 call(s)" in listed
    assert _get(shell.url() + "/v1/call", key)["data"] == []
    shell.run(Snippet(REPO, 0, "bash", "replay", elsewhere + "\n"), URL=shell.url(), KEY=key)
    stored = _get(shell.url() + "/v1/call", key)["data"]
    assert [call["externalId"] for call in stored] == ["meant-for-a-server-that-is-gone"]

    # A call spooled for this backend, sent where it was meant to go with ROARK_API_KEY.
    _spool_a_call(shell, shell.url(), "meant-for-this-server")
    shell.env["ROARK_API_KEY"] = key
    shell.run(Snippet(REPO, 0, "bash", "replay", replay + "\n"))
    stored = _get(shell.url() + "/v1/call", key)["data"]
    assert {call["externalId"] for call in stored} == {
        "meant-for-this-server",
        "meant-for-a-server-that-is-gone",
    }
    assert "0 record(s)" in shell.run(Snippet(REPO, 0, "bash", "replay", dry_run + "\n"))


def _recorded_call(shell: Shell, key: str) -> dict[str, Any]:
    """The one stored call, once its recording has been joined (in the background)."""
    (call,) = _get(shell.url() + "/v1/call", key)["data"]
    for _ in range(600):
        call = _get(shell.url() + f"/v1/call/{call['id']}", key)["data"]
        if call["recordingUrlAccess"] == "AVAILABLE":
            return dict(call)
        subprocess.run(["sleep", "0.1"], check=True)
    raise AssertionError(f"the recording was not joined: {call}")


def _serve_a_sent_call(shell: Shell, pipecat_call_id: str) -> str:
    """``serve`` running with one call sent to it (through the spool); return the key."""
    key = _key(shell.run(Snippet(REPO, 0, "sh", "", "pipecat-roark keys create --project p\n")))
    shell.run(Snippet(REPO, 0, "sh", "", "pipecat-roark serve\n"))
    shell.wait_ready()
    _spool_a_call(shell, shell.url(), pipecat_call_id)
    shell.env["ROARK_API_KEY"] = key
    shell.run(Snippet(REPO, 0, "sh", "", "pipecat-roark replay\n"))
    return key


def test_backup_and_serve_the_backup(shell: Shell, tmp_path: Path) -> None:
    key = _serve_a_sent_call(shell, "backed-up")
    _recorded_call(shell, key)

    (snippet,) = named("backup")
    backup = tmp_path / "backups"
    shell.run(snippet, **{"/var/backups/pipecat-roark": str(backup)})
    shell.stop_servers()
    (copy,) = backup.iterdir()
    shell.run(Snippet(REPO, 0, "sh", "", f"pipecat-roark serve --data-dir {copy}\n"))
    shell.wait_ready()
    call = _recorded_call(shell, key)
    assert call["externalId"] == "backed-up"
    with urllib.request.urlopen(call["recordingUrl"], timeout=30) as wav:
        assert len(wav.read()) == 44 + 6400  # the WAV header and the one chunk


def test_rebuild_the_latency_index(shell: Shell) -> None:
    _serve_a_sent_call(shell, "indexed")
    shell.stop_servers()
    (snippet,) = named("rebuild-latency")
    printed = shell.run(snippet, **{'"$DATA"': str(shell.data_dir)})
    assert printed == "the latency index was rebuilt from 1 ended calls\n"


def test_count_the_calls_of_each_agent_again(shell: Shell) -> None:
    _serve_a_sent_call(shell, "counted")
    shell.stop_servers()
    (snippet,) = named("rebuild-counts")
    printed = shell.run(snippet, **{'"$DATA"': str(shell.data_dir)})
    assert printed == (
        "the call counts of 1 agents were counted again\n"
        "0 calls without the figure had a failed tool call\n"
    )


def test_rebuild_the_search_index(shell: Shell) -> None:
    _serve_a_sent_call(shell, "searched")
    shell.stop_servers()
    (snippet,) = named("rebuild-search")
    printed = shell.run(snippet, **{'"$DATA"': str(shell.data_dir)})
    assert printed == "the search index was rebuilt from 1 ended calls\n"


def test_the_scale_setup_on_postgresql_and_s3(shell: Shell, postgres: Any, sigv4_s3: Any) -> None:
    (snippet,) = named("scale")
    printed = shell.run(
        snippet,
        **{
            "postgresql://roark:secret@db:5432/roark": postgres.create_database(),
            "s3://call-audio/pipecat": f"s3://docs-{free_port()}/pipecat",
            "https://s3.example.internal": sigv4_s3.endpoint,
            "https://roark.example.internal": shell.url(),
            "0.0.0.0": "127.0.0.1",
        },
    )
    shell.wait_ready()
    key = _key(printed)
    assert _get(shell.url() + "/readyz", key)


# -- python blocks ---------------------------------------------------------------------------


async def test_embedding_the_server(tmp_path: Path) -> None:
    (snippet,) = named("embed")
    namespace: dict[str, Any] = {"path": tmp_path / "data"}
    source = "async def example():\n" + textwrap.indent(snippet.code, "    ")
    source += "    return key, base_url, app\n"
    exec(compile(source, snippet.where, "exec"), namespace)
    key, base_url, app = await namespace["example"]()
    assert key.startswith("rk_live_")
    assert base_url.startswith("http://127.0.0.1:")
    assert callable(app)
    assert (tmp_path / "data" / "pipecat-roark.sqlite3").is_file()


async def test_a_delivery_used_directly(backend: RecordingBackend, tmp_path: Path) -> None:
    from pipecat_roark.wire import CALL_ENDED, CALL_STARTED

    (snippet,) = named("delivery-object")
    code = snippet.code.replace('"/var/spool/roark"', repr(str(tmp_path / "spool")))
    started = {"event": CALL_STARTED, "pipecatCallId": "doc-call", "agentId": "docs"}
    namespace: dict[str, Any] = {
        "call_id": "doc-call",
        "url": backend.url,
        "key": "rk_live_docs",
        "call_started": {**started, "eventTimestamp": "2026-01-01T00:00:00+00:00"},
        "call_ended": {
            "event": CALL_ENDED,
            "pipecatCallId": "doc-call",
            "eventTimestamp": "2026-01-01T00:01:00+00:00",
            "callEndedReason": "agent-ended",
            "recordingSampleRate": 16000,
            "recordingNumChannels": 2,
        },
        "pcm": b"\x01\x00" * 3200,
    }
    source = "async def example():\n" + textwrap.indent(code, "    ")
    source += "    return delivered\n"
    exec(compile(source, snippet.where, "exec"), namespace)
    assert await namespace["example"]() is True
    assert [r.kind for r in backend.requests] == ["call-started", "presign", "upload", "call-ended"]
    assert backend.pcm("doc-call") == b"\x01\x00" * 3200


def test_own_recorder(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipecat_roark import RoarkObserver

    (snippet,) = named("own-recorder")
    namespace: dict[str, Any] = {"RoarkObserver": RoarkObserver}  # from the quick start
    monkeypatch.setenv("ROARK_API_KEY", "rk_live_docs")
    exec(compile(snippet.code, snippet.where, "exec"), namespace)
    roark, recorder = namespace["roark"], namespace["recorder"]
    assert roark.audio_processor is recorder
    assert recorder.num_channels == 2
