"""Real services for the tests: a throwaway PostgreSQL cluster and an S3-compatible server.

Both listen on 127.0.0.1 only, on free ports, in folders under /tmp, and are stopped by the
session fixtures that start them.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MotoServer",
    "PostgresCluster",
    "SeaweedS3",
    "ServeProcess",
    "cli_key",
    "free_port",
    "postgres_bin_dir",
    "serve_storage",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; run it as the ``postgres`` account then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class PostgresCluster:
    bin_dir: Path
    root: Path
    port: int

    @classmethod
    def start(cls, bin_dir: Path) -> PostgresCluster:
        root = Path(tempfile.mkdtemp(prefix="roark-pg-", dir="/tmp"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        cluster = cls(bin_dir, root, free_port())
        subprocess.run(
            _as_postgres_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(root / "data"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        cluster._pg_ctl_start()
        return cluster

    def _pg_ctl_start(self) -> None:
        # fsync off: an immediate stop (the outage test) is a process crash, not a power
        # loss, so the page cache keeps every write. With fsync on, crash recovery first
        # fsyncs every file of every test database, which took over a minute on a busy disk.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres_user(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.root / "data"),
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "-t",
                    "180",
                    "-o",
                    options,
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            _as_postgres_user(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.root / "data"),
                    "-m",
                    mode,
                    "-w",
                    "stop",
                ]
            ),
            check=False,
            capture_output=True,
        )

    def restart(self, timeout: float = 180.0) -> None:
        """Start again after ``stop``. After an immediate stop the old server's backends can
        outlive its postmaster for a moment on a loaded machine, and a new postmaster
        refuses to start while they hold the shared memory: try until they are gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._pg_ctl_start()
                return
            except subprocess.CalledProcessError as exc:
                if time.monotonic() > deadline:
                    log = (self.root / "log").read_text(errors="replace")[-2000:]
                    message = f"PostgreSQL did not restart: {exc.stderr!r}\n{log}"
                    raise RuntimeError(message) from exc
                time.sleep(0.5)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.run_sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def run_sql(self, sql: str, database: str = "postgres") -> str:
        """Statements run by the superuser, each on its own (as ``psql -f`` runs a file)."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-At",
            ],
            input=sql,
            text=True,
            check=True,
            capture_output=True,
        )
        return result.stdout


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint: str

    @classmethod
    def start(cls) -> MotoServer:
        port = free_port()
        executable = Path(sys.executable).with_name("moto_server")
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                return cls(process, endpoint)
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        process.kill()
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def serve_storage(data_dir: Path, postgres: PostgresCluster | None) -> list[str]:
    """``serve`` arguments for a data dir, and a fresh PostgreSQL database when given one."""
    storage = ["--data-dir", str(data_dir)]
    if postgres is not None:
        storage += ["--database-url", postgres.create_database()]
    return storage


def cli_key(project: str, storage: list[str]) -> str:
    """A project's API key, made by ``pipecat-roark keys create`` as an operator would."""
    command = [sys.executable, "-m", "pipecat_roark.cli", "keys", "create", "--project", project]
    created = subprocess.run(
        [*command, *storage],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return created.stdout.strip()


@dataclass
class ServeProcess:
    """``pipecat-roark serve`` in its own process, on a free 127.0.0.1 port."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @classmethod
    def start(
        cls, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
    ) -> ServeProcess:
        server = cls.launch(args, env, log, cwd)
        server.wait_ready()
        return server

    @classmethod
    def launch(
        cls, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
    ) -> ServeProcess:
        """Start the process without waiting for it to be ready."""
        port = free_port()
        handle = open(log, "ab")  # noqa: SIM115 - stays open for the child
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipecat_roark.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        handle.close()
        return cls(process, f"http://127.0.0.1:{port}", log)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/readyz", timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"serve did not get ready: {self.log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=10)


def _free_port_pair() -> int:
    """A free port whose +10000 neighbour (SeaweedFS's gRPC port) is free too, both below the
    range the kernel hands out to outgoing connections: a port of that range, free when
    probed, may be a busy client's by the time SeaweedFS binds it (as after a load test)."""
    import random

    lowest_ephemeral = _lowest_ephemeral_port()
    for _ in range(200):
        port = random.randint(10000, lowest_ephemeral - 10001)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


def _lowest_ephemeral_port() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return max(int(text.split()[0]), 20001)
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


@dataclass
class SeaweedS3:
    """SeaweedFS's S3 gateway: unlike moto, it enforces SigV4 on presigned URLs."""

    process: subprocess.Popen[bytes]
    endpoint: str
    root: Path

    @classmethod
    def start(
        cls,
        access_key: str,
        secret_key: str,
        *,
        identities: Sequence[dict[str, Any]] = (),
        volumes: int = 5,
    ) -> SeaweedS3:
        """An admin identity with these keys, plus ``identities`` (read once, at start).

        Each bucket takes volumes of 64 MB as it fills: ``volumes`` bounds them all, so a
        store taking many buckets or much data needs more than the tests' few."""
        executable = Path(sys.executable).with_name("weed")
        root = Path(tempfile.mkdtemp(prefix="roark-weed-", dir="/tmp"))
        (root / "data").mkdir()
        identities = {
            "identities": [
                {
                    "name": "tests",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                *identities,
            ]
        }
        (root / "s3.json").write_text(__import__("json").dumps(identities))
        master, volume, filer, s3 = (_free_port_pair() for _ in range(4))
        log = open(root / "weed.log", "wb")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [
                str(executable),
                "server",
                f"-dir={root / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                "-master.volumeSizeLimitMB=64",
                f"-volume.max={volumes}",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.config={root / 's3.json'}",
                # Off: they listen on fixed ports (8181, 9101), so a second server on the
                # machine (another test worker) would die on start; and no reports home.
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        endpoint = f"http://127.0.0.1:{s3}"
        # Four servers in one process: on a busy machine they take a while to come up.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                urllib.request.urlopen(endpoint + "/", timeout=1).close()
            except urllib.error.HTTPError:
                return cls(process, endpoint, root)  # answering (403 to anonymous) is up
            except OSError:
                time.sleep(0.2)
                continue
            return cls(process, endpoint, root)
        process.kill()
        process.wait(timeout=10)
        said = (root / "weed.log").read_bytes()[-2000:].decode(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"SeaweedFS did not start; it said:\n{said}")

    def stop(self) -> None:
        self.process.kill()  # it ignores SIGTERM for a long while
        self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
