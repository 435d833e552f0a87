"""Benchmark 7: an agent's latency attribution (where its reply time goes) over 10 000 calls.

``pipecat-roark serve`` (SQLite + folder) runs in this process on 127.0.0.1, holding
``calls`` ended calls of one agent over two weeks, each with two replies broken into five
parts as the observer sends them (``latency_breakdown`` metrics), written straight into the
calls table (sending them would take minutes). Then, over one keep-alive connection, each
answer is asked for ``repeats`` times in a row: the agent's daily analytics
(``/v1/agent/{id}/analytics``, the baseline: the same calls, figures precomputed at
ingest), its attribution (``/latency``), "what got slower" between the two weeks
(``/latency/slower``) and its slowest replies. The calls are written straight into the
table, so the latency index is rebuilt after (``pipecat-roark rebuild-latency``); its time is
reported too. The claim is the ratio to the baseline.

``python -m benchmarks.latency_attribution [--smoke] [--results DIR]``
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert

from benchmarks import cli
from benchmarks.report import Report, median, server_versions, table

__all__ = ["PARTS", "breakdowns", "main"]

NAME = "latency_attribution"
GOAL_MS = 200.0
FIRST_DAY = date(2026, 3, 1)
DAYS = 14
PARTS = (
    ("endpointing_wait", "config: VAD stop_secs", "setting"),
    ("transcription", "STT#0", "service"),
    ("llm_inference", "LLM#0", "service"),
    ("speech_synthesis", "TTS#0", "service"),
    ("pipeline", "pipecat", "pipeline"),
)


@dataclass(frozen=True)
class Size:
    calls: int
    repeats: int


FULL = Size(calls=10_000, repeats=10)
SMOKE = Size(calls=200, repeats=2)


def breakdowns(rng: random.Random) -> list[dict[str, Any]]:
    """A call's two replies, each its five parts drawn from ``rng``."""
    replies = []
    for turn in (1, 3):
        parts = [
            {"key": k, "label": k, "owner": o, "ownerKind": kind, "durationSecs": rng.random()}
            for k, o, kind in PARTS
        ]
        replies.append(
            {
                "kind": "latency_breakdown",
                "value": sum(p["durationSecs"] for p in parts),
                "turnIndex": turn,
                "audioOffsetMs": 4000 * turn,
                "contributions": parts,
            }
        )
    return replies


async def _fill(settings: Any, calls: int) -> tuple[str, float]:
    from pipecat_roark.server import schema
    from pipecat_roark.server.app import open_state
    from pipecat_roark.server.reply_index import rebuild

    rng = random.Random(7)
    async with open_state(settings) as state, state.begin() as connection:
        project = (await connection.execute(schema.projects.select())).first()
        agent = str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        await connection.execute(
            insert(schema.agents).values(
                id=agent,
                project_id=project.id,
                custom_id="bench-bot",
                created_at=now,
                updated_at=now,
            )
        )
        rows = []
        for index in range(calls):
            started = datetime.combine(
                FIRST_DAY + timedelta(days=index % DAYS), datetime.min.time(), timezone.utc
            ) + timedelta(seconds=index % 80_000)
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "project_id": project.id,
                    "pipecat_call_id": f"bench-{index}",
                    "agent_id": agent,
                    "status": "ENDED",
                    "started_received": True,
                    "ended_received": True,
                    "started_at": started,
                    "metrics": breakdowns(rng),
                    "stitch_count": 0,
                    "created_at": started,
                    "updated_at": started,
                    "last_activity_at": started,
                }
            )
        await connection.execute(insert(schema.calls), rows)
        # Written straight into the table: the latency index is made as
        # `pipecat-roark rebuild-latency` makes it.
        started = time.perf_counter()
        await connection.run_sync(rebuild)
    return agent, time.perf_counter() - started


async def _timed(session: aiohttp.ClientSession, url: str, repeats: int) -> list[float]:
    async with session.get(url) as warm:
        assert warm.status == 200, await warm.text()
        await warm.read()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        async with session.get(url) as answer:
            await answer.read()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _measure(options: cli.Options) -> Report:
    from pipecat_roark.server.embed import ensure_project_key, serve_in_background
    from pipecat_roark.server.settings import ServerSettings

    size = options.size(FULL, SMOKE)
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    week = FIRST_DAY + timedelta(days=7)
    window = f"from={FIRST_DAY}&to={last}"
    answers = [
        ("daily analytics (baseline)", f"analytics?{window}"),
        ("attribution, two weeks", f"latency?{window}"),
        (
            "what got slower, week on week",
            f"latency/slower?beforeFrom={FIRST_DAY}&beforeTo={week - timedelta(days=1)}"
            f"&afterFrom={week}&afterTo={last}",
        ),
        ("the 20 slowest replies", "slowest-replies?sinceDays=366&limit=20"),
    ]
    with tempfile.TemporaryDirectory(prefix="roark-attribution-bench-") as workdir:
        settings = ServerSettings(data_dir=Path(workdir), run_workers=False)
        key = await ensure_project_key(settings, "bench")
        agent, rebuild_secs = await _fill(settings, size.calls)
        async with (
            serve_in_background(settings) as base_url,
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session,
        ):
            measured = [
                (label, await _timed(session, f"{base_url}/v1/agent/{agent}/{path}", size.repeats))
                for label, path in answers
            ]
    baseline = median(measured[0][1])
    report = Report(
        NAME,
        "Latency attribution over an agent's calls",
        f"`pipecat-roark serve` on SQLite + folder in this process on 127.0.0.1 with "
        f"{size.calls} calls of one agent over {DAYS} days, two replies of five parts each. "
        f"Time to the whole answer over a keep-alive connection, {size.repeats} times after "
        "one warm-up, median (min-max), and the ratio of the median to the baseline's.",
        versions=server_versions(SQLite=sqlite3.sqlite_version),
    )
    rows = [
        [
            label,
            f"{median(times):.0f} ({min(times):.0f}-{max(times):.0f})",
            f"{median(times) / baseline:.1f}x",
        ]
        for label, times in measured
    ]
    worst = max(median(times) for _, times in measured[1:])
    report.add(
        table(["answer", "ms", "vs baseline"], rows),
        f"- Goal: < {GOAL_MS:.0f} ms for the attribution: "
        f"{'met' if worst < GOAL_MS else 'missed'} (slowest median {worst:.0f} ms).",
        f"- The latency index (each reply's parts and their hourly rollups, kept at ingest) "
        f"was rebuilt from the {size.calls} calls in {rebuild_secs:.1f} s.",
    )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
