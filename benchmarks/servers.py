"""``pipecat-roark serve`` as the backend benchmarks run it: real processes on 127.0.0.1.

A setup is a database and a blob store (SQLite + folder, or PostgreSQL + SeaweedFS's S3
gateway, which checks every presigned URL's SigV4 signature as a real object store does) and
a number of replicas sharing them. PostgreSQL and SeaweedFS are the test suite's throwaway
services (``tests.server.services``), started once per benchmark run and only when a setup
needs them. Every process is stopped on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.server.services import PostgresCluster, SeaweedS3, ServeProcess, postgres_bin_dir

__all__ = [
    "S3_CREDENTIALS",
    "Services",
    "Serving",
    "Setup",
    "cpu_seconds",
    "services",
    "serving",
    "tree_cpu_seconds",
]

# SeaweedFS is started with this identity, and the replicas sign with it.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "benchbenchbench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# A bucket per setup, and a ramp's chunks fill a 64 MB volume every few seconds.
_S3_VOLUMES = 400


@dataclass(frozen=True)
class Setup:
    database: str
    """``sqlite`` or ``postgresql``."""
    replicas: int = 1

    @property
    def label(self) -> str:
        stores = "SQLite + folder" if self.database == "sqlite" else "PostgreSQL + S3 (SeaweedFS)"
        return f"{stores}, {self.replicas} replica{'s' if self.replicas > 1 else ''}"


@dataclass
class Services:
    """PostgreSQL and SeaweedFS, started on first use and stopped by ``close``."""

    postgres: PostgresCluster | None = None
    s3: SeaweedS3 | None = None

    def need_postgres(self) -> PostgresCluster:
        if self.postgres is None:
            bin_dir = postgres_bin_dir()
            if bin_dir is None:
                raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
            self.postgres = PostgresCluster.start(bin_dir)
        return self.postgres

    def need_s3(self) -> SeaweedS3:
        if self.s3 is None:
            self.s3 = SeaweedS3.start(
                S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                volumes=_S3_VOLUMES,
            )
        return self.s3

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time each running service has used so far (PostgreSQL: every backend)."""
        used = {}
        if self.postgres is not None:
            pid_file = self.postgres.root / "data" / "postmaster.pid"
            used["PostgreSQL"] = tree_cpu_seconds(int(pid_file.read_text().split()[0]))
        if self.s3 is not None:
            used["SeaweedFS"] = tree_cpu_seconds(self.s3.process.pid)
        return used

    def close(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
        if self.postgres is not None:
            self.postgres.destroy()


@contextlib.contextmanager
def services() -> Iterator[Services]:
    held = Services()
    try:
        yield held
    finally:
        held.close()


@dataclass
class Serving:
    """The replicas of one setup, and a key of project ``bench``."""

    setup: Setup
    settings_env: dict[str, str]
    key: str
    processes: list[ServeProcess] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [process.url for process in self.processes]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def cpu_seconds(self) -> float:
        """CPU time (user + system, every thread) the replicas have used so far."""
        return sum(cpu_seconds(pid) for pid in self.pids)


def _stat(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name, which may hold spaces."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process, its live descendants, and the children it has already reaped
    (PostgreSQL forks a backend per connection)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry)] = int(_stat(int(entry))[1])
    family, ticks = {root}, 0
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                changed = True
    for pid in family:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat(pid)
            ticks += int(fields[11]) + int(fields[12])
            if pid == root:
                ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _environment(setup: Setup, workdir: Path, held: Services) -> dict[str, str]:
    env = {"ROARK_SERVER_DATA_DIR": str(workdir / "data")}
    if setup.database == "postgresql":
        s3 = held.need_s3()
        env |= S3_CREDENTIALS
        env |= {
            "ROARK_SERVER_DATABASE_URL": held.need_postgres().create_database(),
            "ROARK_SERVER_BLOB_URL": f"s3://bench-{uuid.uuid4().hex[:12]}/recordings",
            "ROARK_SERVER_S3_ENDPOINT_URL": s3.endpoint,
        }
    return env


async def _warm_bucket(blob_url: str, endpoint: str | None) -> None:
    """SeaweedFS grows a new bucket's volumes on its first writes (some 200 ms): do them
    before the first measured PUT, as a store in service would have."""
    from pipecat_roark.server.blobs import open_blob_store

    async def body() -> AsyncIterator[bytes]:
        yield b"warm"

    store = await open_blob_store(blob_url, s3_endpoint_url=endpoint)
    try:
        for number in range(4):
            await store.write_stream(f"warm-up/{number}", body())
        await store.delete_prefix("warm-up/")
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def serving(
    setup: Setup, workdir: Path, held: Services, *, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Serving]:
    """The setup's replicas running (each ready), with a fresh project key."""
    from pipecat_roark.server.embed import ensure_project_key
    from pipecat_roark.server.settings import ServerSettings

    workdir.mkdir(parents=True, exist_ok=True)
    env = _environment(setup, workdir, held) | (extra_env or {})
    for name, value in S3_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    settings = ServerSettings.from_sources(environ=env)
    key = await ensure_project_key(settings, "bench")
    if settings.blob_url and settings.blob_url.startswith("s3://"):
        await _warm_bucket(settings.blob_url, settings.s3_endpoint_url)
    served = Serving(setup, env, key)
    try:
        for number in range(setup.replicas):
            process = ServeProcess.launch([], env, workdir / f"replica-{number}.log")
            served.processes.append(process)
        for process in served.processes:
            await asyncio.to_thread(process.wait_ready, 60)
        yield served
    finally:
        for process in served.processes:
            await asyncio.to_thread(process.stop)
