"""A generated project of N ended calls, as ingest would have stored them, for timings at scale.

Sending a million calls over the protocol would take days; writing them straight into the
tables in bulk takes minutes: a transaction per batch of calls, INSERTs of many rows on
SQLite (with ``synchronous=OFF``: a crash only means generating again), COPY on PostgreSQL,
then ANALYZE (and VACUUM on PostgreSQL, as autovacuum would have). Each call is shaped as
the observer sends it (``benchmarks.call_record``): turns with transcript text, tool calls
and their results (some failing), interruptions, per-turn metrics and each reply's latency
breakdown. Calls are spread over ``agents`` agents (a few busy, most quiet; two prompt
revisions each) and ``days`` days, with ended reasons and durations of several shapes; one
call in ten carries no metrics (an observer with metrics off); every K-th call holds the
word ``marker(K)`` (``MARKERS``). No recordings.

The derived rows are those ingest writes: the call's figure columns (``analytics.
call_figures``), its transcript text, and its replies in ``reply_parts`` and
``latency_rollups`` (the server's own ``reply_index`` row builders; calls are made in start
order, so each hour's rollups are written once, whole), and its searched text in
``call_search`` (``search_index.row_of``). ``tests/benchmarks/test_dataset.py`` checks them
against ``reply_index.rebuild`` and ``search_index.rebuild``. Each agent's call count and
each revision's and each word's are counted, and each agent's days summed, at the end
(``agent_counts``, ``agent_days.rebuild``, ``search_counts.rebuild``, ``search_sets.rebuild``).
Deterministic for a seed.

``python -m benchmarks.dataset --database-url URL --calls N [--seed S]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from benchmarks.latency_attribution import PARTS

__all__ = ["MARKERS", "Generated", "Shape", "generate", "main", "marker"]

BATCH = 2000
_SHORTEST_CALL_SECS = 20
_EXCHANGE_MS = 10_000
_REASONS = (
    ("customer-ended-call", 55),
    ("assistant-ended-call", 30),
    ("client-disconnected", 10),
    ("silence-timed-out", 3),
    ("pipeline-error", 2),
)
_QUESTIONS = (
    "I would like to check on order {n}, please.",
    "Can you tell me when my parcel {n} will arrive?",
    "I need to change the delivery address for order {n}.",
    "Why was I charged twice for order {n}?",
    "Could you cancel the subscription on account {n}?",
    "My code {n} does not work at checkout.",
)
_ANSWERS = (
    "Sure, I can help with that; your order ships today from our main warehouse.",
    "Thanks for waiting. The courier has it now and it should arrive by Friday.",
    "I have updated the delivery address; you will get a confirmation by email.",
    "I see the second charge; it is a hold and will be released within three days.",
    "Done: the subscription ends at the close of this billing period.",
    "That code expired last week, but I can apply a new one for you now.",
)

MARKERS = (200, 100, 25, 20)
"""The word ``marker(K)`` is in every K-th call (by index), so searches of a known share of
the calls can be timed: at a million calls 5 000, 10 000, 40 000 and 50 000 matches, on
either side of where a search changes how it is read (server/search.py)."""

Progress = Callable[[int, int], None]


def marker(every: int) -> str:
    return f"onein{every}"


@dataclass(frozen=True)
class Shape:
    """How many calls and how they spread: the last day is ``end`` (UTC), inclusive."""

    calls: int
    agents: int = 20
    days: int = 90
    seed: int = 17
    end: date = date(2026, 11, 30)

    @property
    def first(self) -> datetime:
        return datetime.combine(
            self.end - timedelta(days=self.days - 1), datetime.min.time(), timezone.utc
        )


@dataclass(frozen=True)
class _Agent:
    id: str
    prompts: tuple[str, str]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _at(started: datetime, offset_ms: int) -> str:
    return (started + timedelta(milliseconds=offset_ms)).isoformat()


def _part_secs(rng: random.Random, key: str, slow: float) -> float:
    return round(rng.uniform(0.02, 0.35) * (slow if key == "llm_inference" else 1), 4)


def _breakdown(rng: random.Random, turn: int, offset_ms: int, slow: float) -> dict[str, Any]:
    parts = [
        {
            "key": key,
            "label": key,
            "owner": owner,
            "ownerKind": kind,
            "durationSecs": _part_secs(rng, key, slow),
        }
        for key, owner, kind in PARTS
    ]
    return {
        "kind": "latency_breakdown",
        "value": round(sum(p["durationSecs"] for p in parts), 4),
        "turnIndex": turn,
        "audioOffsetMs": offset_ms,
        "contributions": parts,
    }


def _conversation(
    rng: random.Random, started: datetime, seconds: int, with_metrics: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]] | None]:
    """A call's transcript, tool records and metrics (None when the observer sent none)."""
    transcript: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    slow = rng.choice((1.0, 1.0, 1.0, 2.5))
    for number in range(max(1, seconds * 1000 // _EXCHANGE_MS // 6)):
        user_at = number * _EXCHANGE_MS
        latency_ms = int(rng.lognormvariate(6.7, 0.35) * slow)
        bot_at = user_at + 2400 + latency_ms
        interrupted = rng.random() < 0.08
        bot_ms = 1700 if interrupted else 3500
        order = rng.randrange(1000, 99999)
        transcript.append(
            {
                "role": "user",
                "content": rng.choice(_QUESTIONS).format(n=order),
                "timestamp": _at(started, user_at),
                "endTimestamp": _at(started, user_at + 2400),
                "audioOffsetMs": user_at,
                "endAudioOffsetMs": user_at + 2400,
                "userId": "caller",
            }
        )
        transcript.append(
            {
                "role": "assistant",
                "content": rng.choice(_ANSWERS),
                "timestamp": _at(started, bot_at),
                "endTimestamp": _at(started, bot_at + bot_ms),
                "audioOffsetMs": bot_at,
                "endAudioOffsetMs": bot_at + bot_ms,
            }
        )
        if rng.random() < 0.25:
            tool_at = user_at + 2700
            call_id = f"tool-{number}"
            tools.append(
                {
                    "kind": "tool_call",
                    "toolCallId": call_id,
                    "name": "lookup_order",
                    "arguments": json.dumps({"order": order}),
                    "timestamp": _at(started, tool_at),
                    "audioOffsetMs": tool_at,
                }
            )
            failed = rng.random() < 0.1
            content = {"error": "timeout"} if failed else {"status": "shipped", "order": order}
            tools.append(
                {
                    "kind": "tool_result",
                    "toolCallId": call_id,
                    "content": json.dumps(content),
                    "timestamp": _at(started, tool_at + 40),
                    "audioOffsetMs": tool_at + 40,
                }
            )
        metrics += [
            {
                "kind": "ttfb",
                "processor": "OpenAILLMService#0",
                "model": "gpt-4o",
                "value": round(latency_ms / 2000, 3),
                "timestamp": _at(started, user_at + 2420),
                "audioOffsetMs": user_at + 2420,
            },
            {
                "kind": "turn_latency",
                "value": latency_ms / 1000,
                "audioOffsetMs": bot_at,
                "userSpeechEndMs": user_at + 2400,
                "timestamp": _at(started, bot_at),
                "turnIndex": len(transcript) - 1,
            },
            _breakdown(rng, len(transcript) - 1, bot_at, slow),
        ]
        if interrupted:
            metrics.append(
                {
                    "kind": "interruption",
                    "audioOffsetMs": bot_at + bot_ms,
                    "timestamp": _at(started, bot_at + bot_ms),
                    "botTurnOffsetMs": bot_at,
                    "value": bot_ms / 1000,
                }
            )
    return transcript, tools, metrics if with_metrics else None


class _Generator:
    """Calls in start order, with the rows ingest derives from each."""

    def __init__(self, shape: Shape, project_id: str) -> None:
        self.shape = shape
        self.project_id = project_id
        self.rng = random.Random(shape.seed)
        self.agents = [
            _Agent(_uuid(self.rng), (_uuid(self.rng), _uuid(self.rng))) for _ in range(shape.agents)
        ]
        # A few busy agents, most quiet (Zipf-like weights).
        self.weights = [1 / (rank + 1) for rank in range(shape.agents)]
        self.reasons = [reason for reason, _ in _REASONS]
        self.reason_weights = [weight for _, weight in _REASONS]
        self.step = timedelta(days=shape.days) / max(shape.calls, 1)

    def agent_rows(self) -> list[dict[str, Any]]:
        created = self.shape.first - timedelta(days=1)
        return [
            {
                "id": agent.id,
                "project_id": self.project_id,
                "custom_id": f"agent-{number:02d}",
                "name": f"Agent {number:02d}",
                "created_at": created,
                "updated_at": created,
            }
            for number, agent in enumerate(self.agents)
        ]

    def prompt_rows(self) -> list[dict[str, Any]]:
        created = self.shape.first - timedelta(days=1)
        rows = []
        for number, agent in enumerate(self.agents):
            for revision, prompt_id in enumerate(agent.prompts):
                prompt = (
                    f"Agent {number:02d}: you help customers with orders (revision {revision})."
                )
                rows.append(
                    {
                        "id": prompt_id,
                        "agent_id": agent.id,
                        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
                        "prompt": prompt,
                        "created_at": created,
                    }
                )
        return rows

    def call(self, index: int) -> dict[str, Any]:
        from pipecat_roark.server.analytics import call_figures

        rng = self.rng
        started = self.shape.first + self.step * index
        agent = rng.choices(self.agents, self.weights)[0]
        prompt = agent.prompts[0 if index * 2 < self.shape.calls else 1]
        seconds = int(min(rng.lognormvariate(4.9, 0.7), 3600)) + _SHORTEST_CALL_SECS
        ended = started + timedelta(seconds=seconds)
        row: dict[str, Any] = {
            "id": _uuid(rng),
            "project_id": self.project_id,
            "pipecat_call_id": f"call-{index:08d}-{rng.getrandbits(32):08x}",
            "agent_id": agent.id,
            "prompt_id": prompt,
            "status": "ENDED",
            "started_received": True,
            "started_at": started,
            "ended_at": ended,
            "stitch_count": 0,
            "created_at": started,
            "updated_at": ended,
            "last_activity_at": ended,
            "agent_spoke_first": False,
            "ingest_warnings": None,
        }
        if rng.random() < 0.02:  # call-ended never came: the server ended it after silence
            return row | {
                "ended_received": False,
                "finalised_by": "inactivity",
                "ended_reason": "inactivity-timeout",
                "transcript": None,
                "transcript_text": None,
                "tool_calls": None,
                "metrics": None,
                "duration_ms": None,
                "sample_rate": None,
                "num_channels": None,
                "turn_count": None,
                "assistant_turn_count": None,
                "tool_call_count": None,
                "tool_failure_count": None,
                "interruption_count": None,
                "response_latencies": None,
                "response_latency_p50": None,
            }
        transcript, tools, metrics = _conversation(rng, started, seconds, rng.random() >= 0.1)
        marked = [marker(every) for every in MARKERS if index % every == 0]
        if marked:
            first = transcript[0]
            transcript[0] = first | {"content": " ".join([first["content"], *marked])}
        return row | {
            "ended_received": True,
            "finalised_by": "call-ended",
            "ended_reason": rng.choices(self.reasons, self.reason_weights)[0],
            "transcript": transcript,
            "transcript_text": "\n".join(turn["content"] for turn in transcript),
            "tool_calls": tools,
            "metrics": metrics,
            "duration_ms": seconds * 1000,
            "sample_rate": 16000,
            "num_channels": 2,
            **call_figures(transcript, tools, metrics),
        }


class _Hours:
    """Reply rows and hourly rollups of calls given in start order: an hour is written whole."""

    def __init__(self) -> None:
        self.open: dict[Any, list[float]] = {}
        self.hour: tuple[date, int] | None = None

    def add(self, call: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The call's ``reply_parts`` rows, and the rollup rows of the hours it closed."""
        from pipecat_roark.server.reply_index import grouped_durations, part_rows

        if not call["ended_received"]:
            return [], []
        view = _CallView(call)
        parts = part_rows(view)
        started = call["started_at"]
        hour = (started.date(), started.hour)
        closed: list[dict[str, Any]] = []
        if self.hour is not None and hour != self.hour:
            closed = self.flush()
        self.hour = hour
        for key, values in grouped_durations(parts).items():
            self.open.setdefault(key, []).extend(values)
        return parts, closed

    def flush(self) -> list[dict[str, Any]]:
        from pipecat_roark.server.reply_index import rollup_rows

        rows = rollup_rows(self.open)
        self.open = {}
        return rows


class _CallView:
    """The attributes ``reply_index`` reads of a stored call."""

    def __init__(self, call: dict[str, Any]) -> None:
        self.id = call["id"]
        self.project_id = call["project_id"]
        self.agent_id = call["agent_id"]
        self.prompt_id = call["prompt_id"]
        self.started = call["started_at"]
        self.metrics = call["metrics"]


def _search_row(call: dict[str, Any]) -> list[dict[str, Any]]:
    """The call's ``call_search`` row, as ingest indexes an ended call's text."""
    from pipecat_roark.server.search_index import row_of

    if not call["ended_received"]:
        return []
    return [row_of(call["id"], call["transcript_text"], call["tool_calls"])]


def _batches(generator: _Generator, hours: _Hours, total: int) -> Iterator[tuple[list[Any], ...]]:
    calls: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    rollups: list[dict[str, Any]] = []
    searched: list[dict[str, Any]] = []
    for index in range(total):
        call = generator.call(index)
        call_parts, closed = hours.add(call)
        calls.append(call)
        parts += call_parts
        rollups += closed
        searched += _search_row(call)
        if len(calls) == BATCH:
            yield calls, parts, rollups, searched
            calls, parts, rollups, searched = [], [], [], []
    yield calls, parts, rollups + hours.flush(), searched


Batch = list[tuple[Table, list[dict[str, Any]]]]


def _make_batches(shape: Shape, project_id: str, out: Any) -> None:
    """In a process of its own: every batch of the calls, sent down ``out`` (a pipe), then
    None. Made as ``generate`` would make them: the same seed gives the same calls."""
    for batch in _batches(_Generator(shape, project_id), _Hours(), shape.calls):
        out.send(batch)
    out.send(None)


async def _made_apart(shape: Shape, project_id: str) -> AsyncIterator[tuple[list[Any], ...]]:
    """The batches of ``shape``'s calls, made in another process while this one writes the
    batch before: making a call's rows and writing them both hold the GIL, so in one process
    (threads included) they took turns on one core."""
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    receiving, sending = context.Pipe(duplex=False)
    maker = context.Process(target=_make_batches, args=(shape, project_id, sending), daemon=True)
    maker.start()
    sending.close()
    loop = asyncio.get_running_loop()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="dataset") as waiting:
            while (batch := await loop.run_in_executor(waiting, receiving.recv)) is not None:
                yield batch
    finally:
        receiving.close()
        maker.kill()
        maker.join()


async def _executemany(connection: AsyncConnection, batch: Batch) -> None:
    """One transaction of INSERTs, each with every row of a table (SQLite)."""
    async with connection.begin():
        for table, rows in batch:
            if rows:
                await connection.execute(insert(table), rows)


async def _copy(connection: AsyncConnection, batch: Batch) -> None:
    """One transaction of COPYs (PostgreSQL): rows as the INSERTs would store them, a JSON
    column's None as JSON null, a column a row leaves out as NULL."""
    driver = (await connection.get_raw_connection()).driver_connection
    async with driver.transaction():
        for table, rows in batch:
            if not rows:
                continue
            names = [c.name for c in table.c if c.name in rows[0]]
            json_names = {c.name for c in table.c if isinstance(c.type, JSON)}
            records = [
                tuple(json.dumps(row[name]) if name in json_names else row[name] for name in names)
                for row in rows
            ]
            await driver.copy_records_to_table(table.name, records=records, columns=names)


@dataclass(frozen=True)
class Generated:
    """Where a generation's time went, in seconds."""

    written: float
    """Making the calls and writing them."""
    counted: float
    """Counting and summing them after (the agents' counts and days, the words' counts and
    sets, the statistics)."""

    def __str__(self) -> str:
        return f"written in {self.written:.0f} s, counted in {self.counted:.0f} s"


async def generate(
    database_url: str, shape: Shape, *, project: str = "bench", progress: Progress | None = None
) -> Generated:
    """Write ``shape.calls`` calls into the project named ``project`` (made if missing)."""
    from pipecat_roark.server import agent_counts, agent_days, schema, search_counts, search_sets
    from pipecat_roark.server.auth import ensure_project
    from pipecat_roark.server.database import open_database

    async with open_database(database_url) as engine, engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # a bulk load: losing it to a crash only means generating it again
            raw = (await connection.get_raw_connection()).driver_connection
            for pragma in ("synchronous=OFF", "cache_size=-262144"):  # outside a transaction
                await raw.execute(f"PRAGMA {pragma}")
        async with connection.begin():
            project_id = await ensure_project(connection, project)
            generator = _Generator(shape, project_id)
            await connection.execute(insert(schema.agents), generator.agent_rows())
            await connection.execute(insert(schema.agent_prompts), generator.prompt_rows())
        started = time.monotonic()
        write = _copy if not sqlite else _executemany
        tables = (schema.calls, schema.reply_parts, schema.latency_rollups, schema.call_search)
        done = 0
        async for batch in _made_apart(shape, project_id):
            await write(connection, list(zip(tables, batch, strict=True)))
            done += len(batch[0])
            if progress is not None:
                progress(done, shape.calls)
        written = time.monotonic()
        async with connection.begin():
            # Each agent's call count, as `pipecat-roark rebuild-counts` makes it, and each
            # word's, as `pipecat-roark rebuild-search` does.
            await connection.run_sync(agent_counts.rebuild)
            await connection.run_sync(agent_counts.rebuild_revisions)
            await connection.run_sync(agent_days.rebuild)
            await connection.run_sync(search_counts.rebuild)
            await connection.run_sync(search_sets.rebuild)
            # As after months of ingest: the planner's statistics.
            await connection.exec_driver_sql("ANALYZE")
        if not sqlite:
            # And the visibility map autovacuum keeps: without it a count reads each row's
            # page, not just the index. VACUUM runs outside a transaction.
            settled = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await settled.exec_driver_sql("VACUUM")
        return Generated(written - started, time.monotonic() - written)


def _printer() -> Progress:
    started = time.monotonic()
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 5 or done == total:
            last[0] = now
            rate = done / max(now - started, 1e-9)
            print(
                f"{done}/{total} calls, {now - started:.0f} s, {rate:.0f} calls/s",
                file=sys.stderr,
                flush=True,
            )

    return show


def main(argv: list[str] | None = None) -> None:
    parsed = argparse.ArgumentParser(description=__doc__)
    parsed.add_argument("--database-url", required=True, help="sqlite:///… or postgresql://…")
    parsed.add_argument("--calls", type=int, required=True)
    parsed.add_argument("--seed", type=int, default=Shape.seed)
    parsed.add_argument("--agents", type=int, default=Shape.agents)
    parsed.add_argument("--days", type=int, default=Shape.days)
    parsed.add_argument("--project", default="bench", help="the project's name (made if missing)")
    args = parsed.parse_args(argv)
    shape = Shape(args.calls, agents=args.agents, days=args.days, seed=args.seed)
    generated = asyncio.run(
        generate(args.database_url, shape, project=args.project, progress=_printer())
    )
    print(f"{shape.calls} calls {generated}", file=sys.stderr)


if __name__ == "__main__":
    main()
