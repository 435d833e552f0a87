"""Benchmark: memory during a long outage, and what arrives once the backend is back.

A worker process plays many concurrent calls, un-paced (each call hands over its audio as
fast as the event loop lets it), through one ``Delivery`` with its documented defaults,
while the backend refuses connections. It reads its own RSS every 50 ms. Every request
ends up in the spool. Then the backend comes up on the same port, ``pipecat-roark replay``
sends the spool, and the backend's counts say whether every request of every call
arrived, once, with call-ended after the call's chunks.

The claim: the worker's RSS grows by no more than the configured bounds (64 MiB of audio
held, ``max_buffered_bytes``; the request bound, ``max_pending_requests``, holds small
objects) plus 30 MB, and 100 % is delivered with no duplicate.

``python -m benchmarks.outage_memory [--smoke] [--results DIR] [--set FIELD=VALUE]``
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.backend import closed_port_url

from benchmarks import cli
from benchmarks.backend import BenchBackend
from benchmarks.report import Report, server_versions, table

__all__ = ["main"]

NAME = "outage_memory"
_MB = 1e6
_SLACK_MB = 30.0
_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Size:
    calls: int
    minutes: float
    sample_rate: int
    chunk_bytes: int
    """16-bit mono at ``sample_rate``; 32 KiB is 2 s at 8 kHz."""


FULL = Size(calls=50, minutes=10.0, sample_rate=8000, chunk_bytes=32 * 1024)
SMOKE = Size(calls=3, minutes=0.2, sample_rate=8000, chunk_bytes=32 * 1024)


def _chunks(size: Size) -> int:
    return max(1, int(size.minutes * 60 * size.sample_rate * 2) // size.chunk_bytes)


async def _calls(url: str, spool_dir: str, size: Size) -> dict[str, Any]:
    """The worker: every call through one default-configured ``Delivery``."""
    from benchmarks.memory import _peak_rss, _rss
    from pipecat_roark.delivery.delivery import Delivery

    delivery = Delivery(spool_dir=spool_dir)
    baseline = _rss()
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(_rss())
            await asyncio.sleep(0.05)

    async def call(number: int) -> dict[str, int]:
        call_id = f"outage-{number:03d}"
        lane = delivery.open_lane(call_id, base_url=url, api_key="k")
        event = {"pipecatCallId": call_id, "agentId": "a"}
        lane.call_started({**event, "event": "call-started"})
        for index in range(_chunks(size)):
            # A new buffer each time, as a recorder hands over: nothing shared.
            lane.chunk(index, (index % 251).to_bytes(1, "little") * size.chunk_bytes)
            await asyncio.sleep(0)
        lane.call_ended({**event, "event": "call-ended"})
        await lane.flush(10.0)
        return lane.stats.as_dict()

    sampler = asyncio.ensure_future(sample())
    started = time.monotonic()
    stats = await asyncio.gather(*(call(number) for number in range(size.calls)))
    took = time.monotonic() - started
    sampler.cancel()
    await delivery.aclose()
    totals = {key: sum(s[key] for s in stats) for key in stats[0]}
    return {
        "baseline": baseline,
        "peak_sampled": max(samples, default=baseline),
        "peak_rss": _peak_rss(),
        "seconds": took,
        "stats": totals,
        "bound": delivery.options.max_buffered_bytes,
        "max_pending_requests": delivery.options.max_pending_requests,
    }


def worker(url: str, spool_dir: str, size_json: str) -> None:
    size = Size(**json.loads(size_json))
    print(json.dumps(asyncio.run(_calls(url, spool_dir, size))), flush=True)


async def _run(size: Size, spool_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    url = closed_port_url()  # nothing listens: every connection is refused
    code = "import sys; from benchmarks.outage_memory import worker; worker(*sys.argv[1:])"
    env = {**os.environ, "ROARK_SPOOL_DIR": spool_dir}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code, url, spool_dir, json.dumps(asdict(size))],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the worker failed:\n{done.stderr[-4000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])

    backend = BenchBackend()  # the backend comes back, where the calls were sent
    await backend.start(port=urlsplit(url).port or 0)
    try:
        started = time.monotonic()
        replay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipecat_roark.cli",
            "replay",
            "--api-key",
            "k",
            cwd=_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        stdout, _ = await asyncio.wait_for(replay.communicate(), 3600)
        keys = backend.natural_keys()
        ids = [f"outage-{number:03d}" for number in range(size.calls)]
        arrived = {
            "replay_status": replay.returncode,
            "replay_summary": stdout.decode().strip().splitlines()[0] if stdout else "",
            "replay_seconds": time.monotonic() - started,
            "expected": size.calls * (_chunks(size) + 2),
            "distinct": len(set(keys)),
            "duplicates": len(keys) - len(set(keys)),
            "complete_calls": sum(
                backend.receipt(call_id).complete
                and backend.receipt(call_id).chunks == _chunks(size)
                for call_id in ids
            ),
        }
    finally:
        await backend.stop()
    return measured, arrived


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    with tempfile.TemporaryDirectory(prefix="roark-outage-bench-") as spool_dir:
        measured, arrived = await _run(size, spool_dir)
    growth = (max(measured["peak_sampled"], measured["peak_rss"]) - measured["baseline"]) / _MB
    allowed = measured["bound"] / _MB + _SLACK_MB
    delivered = arrived["distinct"] / arrived["expected"]
    audio_mb = size.calls * _chunks(size) * size.chunk_bytes / _MB
    report = Report(
        NAME,
        "Delivery: memory during an outage, and delivery after it",
        __doc__.split("\n\n")[1] if __doc__ else "",
        versions=server_versions(),
    )
    report.add(
        table(
            ["figure", "value"],
            [
                ["calls, concurrent, un-paced", str(size.calls)],
                [
                    "audio per call",
                    f"{size.minutes:g} min, {size.sample_rate} Hz mono, "
                    f"{_chunks(size)} chunks of {size.chunk_bytes // 1024} KiB",
                ],
                ["audio in all", f"{audio_mb:.0f} MB"],
                ["calls played in", f"{measured['seconds']:.0f} s"],
                ["RSS before the calls", f"{measured['baseline'] / _MB:.0f} MB"],
                ["RSS growth, peak", f"**{growth:.0f} MB**"],
                [
                    "allowed: bounds + 30 MB",
                    f"{allowed:.0f} MB ({measured['bound'] / _MB:.0f} MB of audio, "
                    f"{measured['max_pending_requests']} requests)",
                ],
                ["requests spooled / dropped", _stats(measured["stats"])],
                ["replay", f"{arrived['replay_summary']} in {arrived['replay_seconds']:.0f} s"],
                [
                    "delivered",
                    f"**{delivered:.0%}** ({arrived['distinct']} of {arrived['expected']} "
                    f"requests), {arrived['duplicates']} duplicate(s), "
                    f"{arrived['complete_calls']}/{size.calls} calls complete",
                ],
            ],
        ),
        f"Verdict: RSS {'within' if growth <= allowed else '**over**'} the bounds + 30 MB; "
        f"{'everything' if delivered == 1 and not arrived['duplicates'] else '**not all**'} "
        "delivered exactly once.",
    )
    return report


def _stats(stats: dict[str, int]) -> str:
    return f"{stats['spooled']} / {stats['dropped']} (sent live {stats['sent']})"


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or "", argv, _measure)


if __name__ == "__main__":
    main()
