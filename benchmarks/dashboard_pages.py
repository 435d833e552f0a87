"""Benchmark 6: the dashboard's calls list and a 60-minute call's page, 10 000 calls stored.

``pipecat-roark serve`` runs on SQLite + folder as a real process on 127.0.0.1. A 60-minute
call goes in over the protocol as the observer sends it (its audio in 256 KiB chunks, then
call-ended with every turn, tool call and metric: ``benchmarks.call_record``), and so does a
4-minute call; once both are stitched, the 4-minute call's row is copied in SQL until the
project holds 10 000 calls (as the dashboard tests build theirs: sending 10 000 calls would
take minutes). Then each page is asked for ``repeats`` times in a row over one keep-alive
connection, with the project's key: the time to the whole answer, as the browser would
wait for it. Once more while a load generator sends ingest traffic at the same server
(``benchmarks.ingest_client``): reads must not queue behind ingest writes.

``python -m benchmarks.dashboard_pages [--smoke] [--results DIR]``
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import cli
from benchmarks.call_record import call_ended, call_started
from benchmarks.ingest_client import CHUNK_BYTES, Load, generate
from benchmarks.report import Report, median, percentile, server_versions, table
from benchmarks.servers import Serving, Setup, services, serving

__all__ = ["main"]

NAME = "dashboard_pages"
GOAL_MS = 200.0
EVENTS = "/v1/integrations/pipecat"
PRESIGN = "/v1/integrations/pipecat/chunk-upload-url"
RATE = 16000
CHANNELS = 2


@dataclass(frozen=True)
class Size:
    minutes: float
    calls: int
    repeats: int
    load_calls: int
    load_speed: float
    load_seconds: float


FULL = Size(minutes=60, calls=10_000, repeats=15, load_calls=100, load_speed=2.0, load_seconds=8.0)
SMOKE = Size(minutes=1, calls=50, repeats=2, load_calls=4, load_speed=16.0, load_seconds=1.0)


@dataclass
class Page:
    label: str
    path: str
    idle: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    size: int = 0


class _Client:
    def __init__(self, url: str, key: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self.headers = {"x-roark-api-key": key, "authorization": f"Bearer {key}"}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.url + path, json=body, headers=self.headers) as answer:
            if answer.status != 200:
                raise RuntimeError(f"{path}: {answer.status} {await answer.text()}")
            data: dict[str, Any] = await answer.json()
            return data

    async def get(self, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        async with self.session.get(self.url + path, headers=self.headers) as answer:
            body = await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{path}: {answer.status} {body[:300]!r}")
        return (time.perf_counter() - started) * 1e3, body

    async def upload(self, call_id: str, index: int, data: bytes) -> None:
        body = {"pipecatCallId": call_id, "chunkIndex": index, "contentType": "audio/pcm"}
        url = (await self.post(PRESIGN, body))["uploadUrl"]
        async with self.session.put(
            url, data=data, headers={"content-type": "audio/pcm"}
        ) as answer:
            if answer.status != 200:
                raise RuntimeError(f"PUT chunk {index}: {answer.status}")

    async def send_call(self, call_id: str, started: datetime, minutes: float) -> str:
        """The whole call as the observer sends it; returns the server's id of it."""
        await self.post(EVENTS, call_started(call_id, started))
        block = _speech_block()
        total = int(minutes * 60 * RATE) * CHANNELS * 2
        pending = asyncio.Semaphore(8)

        async def one(index: int, offset: int) -> None:
            async with pending:
                await self.upload(call_id, index, block[: min(CHUNK_BYTES, total - offset)])

        await asyncio.gather(
            *(one(i, offset) for i, offset in enumerate(range(0, total, CHUNK_BYTES)))
        )
        ended = await self.post(EVENTS, call_ended(call_id, started, minutes))
        return str(ended["callId"])

    async def wait_stitched(self, call_uuid: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, body = await self.get(f"/v1/call/{call_uuid}/pipecat")
            if b'"stitchCount":0' not in body:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"call {call_uuid} was not stitched in {timeout:.0f}s")


def _speech_block() -> bytes:
    from benchmarks.stitching import _speech_block as block

    return block()


def _fill(database: Path, template: str, calls: int) -> int:
    """Copies the template call's row until the database holds ``calls`` calls."""
    connection = sqlite3.connect(database, timeout=30)
    try:
        present = connection.execute("SELECT count(*) FROM calls").fetchone()[0]
        columns = [row[1] for row in connection.execute("PRAGMA table_info(calls)")]
        changed = ("id", "pipecat_call_id", "started_at", "created_at")
        chosen = ", ".join("?" if name in changed else name for name in columns)
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        rows = []
        for number in range(max(0, calls - present)):
            at = (start + timedelta(minutes=number)).strftime("%Y-%m-%d %H:%M:%S.%f")
            values = {"id": str(uuid.uuid4()), "pipecat_call_id": f"copy-{number}"}
            values |= {"started_at": at, "created_at": at}
            rows.append((*(values[name] for name in columns if name in changed), template))
        with connection:
            connection.executemany(
                f"INSERT INTO calls ({', '.join(columns)}) SELECT {chosen} FROM calls WHERE id = ?",
                rows,
            )
        count: int = connection.execute("SELECT count(*) FROM calls").fetchone()[0]
        return count
    finally:
        connection.close()


async def _measure_pages(client: _Client, pages: list[Page], repeats: int, *, loaded: bool) -> None:
    for page in pages:
        for _ in range(repeats):
            elapsed, body = await client.get(page.path)
            (page.loaded if loaded else page.idle).append(elapsed)
            page.size = len(body)


async def _run(size: Size, workdir: Path) -> tuple[list[Page], dict[str, Any], int]:
    with services() as held:
        async with serving(Setup("sqlite", 1), workdir / "dashboard", held) as served:
            return await _with_server(size, served, workdir / "dashboard")


async def _with_server(
    size: Size, served: Serving, workdir: Path
) -> tuple[list[Page], dict[str, Any], int]:
    url = served.urls[0]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        client = _Client(url, served.key, session)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        long_call = await client.send_call("long-call", now - timedelta(hours=2), size.minutes)
        typical = await client.send_call("typical-call", now - timedelta(hours=5), 4)
        await client.wait_stitched(long_call, timeout=120)
        await client.wait_stitched(typical, timeout=60)
        stored = _fill(workdir / "data" / "pipecat-roark.sqlite3", typical, size.calls)
        pages = [
            Page("calls list (HTML, first 50)", "/calls"),
            Page("calls list, JSON twin", "/calls.json"),
            Page("calls list, 4th page (cursor)", ""),
            Page("calls list, search a word said", "/calls?q=order+4321"),
            Page(f"{size.minutes:g}-minute call page (HTML)", f"/calls/{long_call}"),
            Page(f"{size.minutes:g}-minute call, JSON twin", f"/calls/{long_call}.json"),
            Page(f"{size.minutes:g}-minute call, waveform peaks", f"/calls/{long_call}/peaks.json"),
        ]
        pages[2].path = await _deep_page(client)
        # Warm-up: the first request of each page pays for imports and templates.
        await _measure_pages(client, pages, 1, loaded=False)
        for page in pages:
            page.idle.clear()
        await _measure_pages(client, pages, size.repeats, loaded=False)
        load = Load(
            urls=served.urls,
            key=served.key,
            calls=size.load_calls,
            speed=size.load_speed,
            seconds=size.load_seconds,
            prefix="dashboard-load",
        )
        ingest = asyncio.create_task(generate(load))
        await asyncio.sleep(2 * CHUNK_BYTES / (RATE * CHANNELS * 2) / size.load_speed)
        await _measure_pages(client, pages, max(1, size.repeats // 3), loaded=True)
        measured = await ingest
    return pages, measured, stored


async def _deep_page(client: _Client) -> str:
    import json

    cursor = None
    for _ in range(3):
        _, body = await client.get(f"/calls.json?after={cursor}" if cursor else "/calls.json")
        cursor = json.loads(body)["pagination"]["nextCursor"] or cursor
    return f"/calls?after={cursor}" if cursor else "/calls"


def _ms(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def _report(size: Size, pages: list[Page], measured: dict[str, Any], stored: int) -> Report:
    report = Report(
        NAME,
        "Dashboard pages with 10 000 calls",
        f"`pipecat-roark serve` on SQLite + folder (a real process on 127.0.0.1) holding "
        f"{stored} calls: one {size.minutes:g}-minute call sent over the protocol with its "
        "audio and every turn, tool call and metric the observer sends, and copies of a "
        "4-minute call. Time from asking for a page to having all of it, over a keep-alive "
        f"connection, {size.repeats} times in a row (after one warm-up), median (min-max). "
        f"*While ingesting*: {max(1, size.repeats // 3)} times each while {size.load_calls} "
        f"calls at {size.load_speed:g}x real time send their chunks to the same server.",
        versions=server_versions(SQLite=sqlite3.sqlite_version),
    )
    rows = [
        [page.label, f"{page.size / 1024:.0f}", f"**{_ms(page.idle)}**", _ms(page.loaded)]
        for page in pages
    ]
    report.add(
        table(["page", "KiB", "ms, idle", "ms, while ingesting"], rows),
        _load_line(measured, size),
        _goals(pages),
    )
    return report


def _load_line(measured: dict[str, Any], size: Size) -> str:
    latencies = measured["latencies"]
    chunks = latencies.get("presign", []) + latencies.get("put", [])
    errors = sum(measured["errors"].values())
    p99 = f"{percentile(chunks, 99):.0f} ms" if chunks else "—"
    return (
        f"- The ingest traffic meanwhile: {measured['chunks']} chunks from {size.load_calls} "
        f"calls, chunk request p99 {p99}, {errors} errors."
    )


def _goals(pages: list[Page]) -> str:
    main_pages = [p for p in pages if "search" not in p.label and "peaks" not in p.label]
    worst = max(median(p.idle) for p in main_pages)
    return (
        f"- Goal: < {GOAL_MS:.0f} ms for the calls list and the call page: "
        f"{'met' if worst < GOAL_MS else 'missed'} (slowest median {worst:.0f} ms)."
    )


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    with tempfile.TemporaryDirectory(prefix="roark-dashboard-bench-") as workdir:
        pages, measured, stored = await _run(size, Path(workdir))
    return _report(size, pages, measured, stored)


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
