"""The load generator of ``ingest_load``: simulated calls sending the ingestion protocol.

``python -m benchmarks.ingest_client '<Load as JSON>'`` runs in its own process, as an
asyncio client with a bounded connection pool, and prints one JSON line: the latency of
every request due inside the measured window, by kind, the errors, and its own CPU time.
``generate`` runs one from another process. Bounded: every call stops at the end of the
window, every request at its timeout.

Each of ``calls`` slots plays calls back to back, as a pipeline serving one caller after
another: call-started, then one 256 KiB stereo chunk (presign POST, then PUT to the URL it
got) every 4.1 s of audio, a shorter last chunk, then call-ended with a transcript. Calls
last 2 to 6 minutes; a slot's first call is the rest of one already under way, so calls end
at their steady rate from the start. The audio clock runs ``speed`` times faster than real
time. Slots start spread over the first chunk interval, so the requests arrive evenly
rather than in waves. A call's requests go one after another, as the observer sends them;
a late answer delays the call's next request, which then counts from when it was due.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

__all__ = ["Load", "Measured", "generate", "main"]

EVENTS = "/v1/integrations/pipecat"
PRESIGN = "/v1/integrations/pipecat/chunk-upload-url"
RATE = 16000
CHANNELS = 2
CHUNK_BYTES = 256 * 1024
CHUNK_SECONDS = CHUNK_BYTES / (RATE * CHANNELS * 2)


@dataclass(frozen=True)
class Load:
    """What one generator process sends; ``urls`` are the replicas, taken in turn."""

    urls: list[str]
    key: str
    calls: int
    speed: float
    seconds: float
    """Length of the measured window, after one chunk interval of warm-up."""
    prefix: str
    chunks_min: int = 30
    chunks_max: int = 90
    """Full chunks per call: 2 to 6 minutes of audio."""
    connections: int = 256
    timeout: float = 10.0
    seed: int = 0


@dataclass
class Measured:
    """Milliseconds per request kind, for requests due inside the window."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    calls_started: int = 0
    calls_ended: int = 0
    chunks: int = 0
    window: float = 0.0
    cpu: float = 0.0
    """This process's CPU time (every thread), seconds."""

    def add(self, kind: str, milliseconds: float) -> None:
        self.latencies.setdefault(kind, []).append(milliseconds)

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{kind}: {what}"[:300])


class _Generator:
    def __init__(self, load: Load, session: aiohttp.ClientSession) -> None:
        self.load = load
        self.session = session
        self.headers = {"x-roark-api-key": load.key, "authorization": f"Bearer {load.key}"}
        self.replicas = itertools.cycle(load.urls)
        self.measured = Measured()
        self.chunk = bytes(CHUNK_BYTES)
        self.interval = CHUNK_SECONDS / load.speed
        self.started = time.monotonic()
        self.window_start = self.started + self.interval
        self.window_end = self.window_start + load.seconds
        self.random = random.Random(load.seed)

    def _in_window(self, due: float) -> bool:
        return self.window_start <= due < self.window_end

    async def _request(
        self,
        kind: str,
        due: float,
        method: str,
        url: str,
        *,
        since: float | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """One request due at ``due``; its latency counts from ``since`` (default ``due``).

        Counted when ``due`` is inside the window. None when it failed."""
        counted = self._in_window(due)
        try:
            async with self.session.request(method, url, **kwargs) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if counted:
                self.measured.error(kind, repr(exc))
            return None
        if counted:
            if status == 200:
                self.measured.add(kind, (time.monotonic() - (since or due)) * 1e3)
            else:
                self.measured.error(kind, f"{status} {body[:200]!r}")
        if status != 200:
            return None
        answer: dict[str, Any] = json.loads(body) if body else {}
        return answer.get("data", answer) if isinstance(answer.get("data"), dict) else answer

    async def _post(self, kind: str, due: float, path: str, body: dict[str, Any]) -> Any:
        return await self._request(
            kind, due, "POST", next(self.replicas) + path, json=body, headers=self.headers
        )

    async def _wait_until(self, due: float) -> bool:
        """Sleep until ``due``; False once the window is over."""
        if due >= self.window_end:
            return False
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    async def slot(self, number: int) -> None:
        due = self.started + self.interval * number / self.load.calls
        # The first call is the rest of one under way when the step starts, so that calls
        # end (and are stitched) at their steady rate from the start.
        full = self.random.randint(0, self.load.chunks_max)
        for call in itertools.count():
            if not await self._wait_until(due):
                return
            call_id = f"{self.load.prefix}-{number}-{call}"
            due = await self._call(call_id, due, full)
            full = self.random.randint(self.load.chunks_min, self.load.chunks_max)

    async def _call(self, call_id: str, due: float, full: int) -> float:
        """One call from ``due``; returns when the slot's next call is due."""
        started_at = _iso(time.time())
        await self._post(
            "call-started",
            due,
            EVENTS,
            {
                "event": "call-started",
                "pipecatCallId": call_id,
                "eventTimestamp": started_at,
                "agentId": "load-agent",
                "agentName": "Load agent",
                "agentPrompt": "You answer callers of the load test.",
            },
        )
        if self._in_window(due):
            self.measured.calls_started += 1
        for index in range(full + 1):
            due += self.interval
            if not await self._wait_until(due):
                return due
            size = CHUNK_BYTES if index < full else CHUNK_BYTES // 3 // 4 * 4
            await self._upload(call_id, index, due, size)
        await self._end(call_id, due, started_at, full)
        return due

    async def _upload(self, call_id: str, index: int, due: float, size: int) -> None:
        body = {"pipecatCallId": call_id, "chunkIndex": index, "contentType": "audio/pcm"}
        presigned = await self._post("presign", due, PRESIGN, body)
        if presigned is None:
            return
        await self._request(
            "put",
            due,
            "PUT",
            presigned["uploadUrl"],
            since=time.monotonic(),
            data=self.chunk[:size] if size < CHUNK_BYTES else self.chunk,
            headers={"content-type": "audio/pcm"},
        )
        if self._in_window(due):
            self.measured.chunks += 1

    async def _end(self, call_id: str, due: float, started_at: str, full: int) -> None:
        seconds = (full + 1 / 3) * CHUNK_SECONDS
        transcript = [
            {
                "role": "user" if turn % 2 else "assistant",
                "content": "Where is my order?" if turn % 2 else "Hello, how can I help?",
                "timestamp": started_at,
                "endTimestamp": started_at,
                "audioOffsetMs": turn * 4000,
                "endAudioOffsetMs": turn * 4000 + 2000,
            }
            for turn in range(int(seconds // 4))
        ]
        await self._post(
            "call-ended",
            due,
            EVENTS,
            {
                "event": "call-ended",
                "pipecatCallId": call_id,
                "eventTimestamp": _iso(time.time()),
                "callStartedAt": started_at,
                "callEndedAt": _iso(time.time()),
                "callEndedReason": "client-disconnected",
                "agentSpokeFirst": True,
                "recordingSampleRate": RATE,
                "recordingNumChannels": CHANNELS,
                "transcript": transcript,
                "toolCalls": [],
                "metrics": [
                    {"kind": "turn_latency", "value": 0.8, "audioOffsetMs": t["audioOffsetMs"]}
                    for t in transcript[1::2]
                ],
            },
        )
        if self._in_window(due):
            self.measured.calls_ended += 1


def _iso(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


async def run(load: Load) -> Measured:
    connector = aiohttp.TCPConnector(limit=load.connections, limit_per_host=load.connections)
    timeout = aiohttp.ClientTimeout(total=load.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        generator = _Generator(load, session)
        slots = [asyncio.create_task(generator.slot(n)) for n in range(load.calls)]
        # Every slot stops at the end of the window; a request still out then is bounded
        # by its timeout.
        deadline = generator.window_end - time.monotonic() + load.timeout + 5
        _, pending = await asyncio.wait(slots, timeout=deadline)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
        generator.measured.window = load.seconds
        generator.measured.cpu = time.process_time()
        return generator.measured


async def generate(load: Load) -> dict[str, Any]:
    """Runs a generator process to the end and returns what it measured (``Measured``)."""
    from benchmarks.runner import run_module

    budget = CHUNK_SECONDS / load.speed + load.seconds + load.timeout + 30
    printed = await run_module(
        sys.executable,
        "benchmarks.ingest_client",
        asdict(load),
        what="the load generator",
        timeout=budget,
    )
    return printed[-1]


def main() -> None:
    load = Load(**json.loads(sys.argv[1]))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    measured = asyncio.run(run(load))
    print(json.dumps(asdict(measured)), flush=True)


if __name__ == "__main__":
    main()
