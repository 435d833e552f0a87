"""Benchmark 10: searching 10 000 calls by their words, against the substring scan it replaced.

On SQLite and on PostgreSQL (the test suite's throwaway cluster), ``calls`` ended calls of
generated talk (words drawn from a vocabulary with a few common and many rare words, a tool
call in every third call) are written straight into the calls table and the search index is
rebuilt from them (its time is reported). Then each query form of docs/dashboard.md,
"Searching calls", runs as ``GET /v1/call?searchText=`` runs it (the first page of 20 and
the total, ``pagination.fetch_page``), ``repeats`` times after a warm-up, and so does the
substring scan (``ILIKE '%text%'`` over the transcript and the pipecatCallId) on the same
text in the same run. Every form's whole answer is checked against a scan in Python over
the generated calls.

``python -m benchmarks.search_scale [--smoke] [--results DIR]``
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select

from benchmarks import cli
from benchmarks.report import Report, percentile, server_versions, table
from benchmarks.servers import services

__all__ = ["main"]

NAME = "search_scale"
COMMON = ("order", "refund", "delivery", "address", "thanks", "please", "today", "account")


@dataclass(frozen=True)
class Size:
    calls: int
    repeats: int
    words_per_call: int


FULL = Size(calls=10_000, repeats=20, words_per_call=120)
SMOKE = Size(calls=300, repeats=2, words_per_call=40)


def _vocabulary(rng: random.Random) -> list[str]:
    rare = {"".join(rng.choice("abcdefghiklmnoprstuvw") for _ in range(7)) for _ in range(4000)}
    return sorted(rare)


def _calls(size: Size) -> list[dict[str, Any]]:
    """The generated calls: id, transcript text, tool calls."""
    rng = random.Random(11)
    rare = _vocabulary(rng)
    calls = []
    for index in range(size.calls):
        words = [
            rng.choice(COMMON) if rng.random() < 0.3 else rng.choice(rare)
            for _ in range(size.words_per_call)
        ]
        lines = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12)]
        tools = []
        if index % 3 == 0:
            tools = [
                {"kind": "tool_call", "name": "lookup_order", "arguments": '{"city": "Oslo"}'},
                {"kind": "tool_result", "content": f"order {rng.choice(rare)} shipped"},
            ]
        text = "\n".join(lines)
        calls.append({"pipecat_call_id": f"bench-{index}", "text": text, "tools": tools})
    return calls


def _queries(calls: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Each query form: label, the query, and the text the substring scan is given."""
    middle = calls[len(calls) // 2]["text"].split("\n")[0].rstrip(".").lower().split()
    rare = next(word for word in middle if word not in COMMON)
    phrase = " ".join(middle[2:4])
    return [
        ("one common word", "refund", "refund"),
        ("one rare word", rare, rare),
        ("two words (AND)", f"refund {rare}", f"refund {rare}"),
        ("a quoted phrase", f'"{phrase}"', phrase),
        ("a phrase and a word", f'"{phrase}" {rare}', phrase),
        ("a tool-call word", "oslo", "oslo"),
        ("a pipecatCallId", calls[7]["pipecat_call_id"], calls[7]["pipecat_call_id"]),
        ("no call has it", "zzzzzz", "zzzzzz"),
    ]


def _scan(calls: list[dict[str, Any]], query: str) -> set[str]:
    """The calls a query must find, by a scan in Python."""
    from pipecat_roark.server.search_terms import call_text, document, matches, parse

    terms = parse(query)
    return {
        call["pipecat_call_id"]
        for call in calls
        if call["pipecat_call_id"] in (query, query.strip())
        or matches(terms, document(call_text(call["text"], call["tools"])))
    }


async def _fill(state: Any, calls: list[dict[str, Any]]) -> tuple[str, float]:
    from pipecat_roark.server import schema
    from pipecat_roark.server.search_index import rebuild

    async with state.begin() as connection:
        project = (await connection.execute(schema.projects.select())).first()
        start = datetime(2026, 3, 1, tzinfo=timezone.utc)
        rows = []
        for index, call in enumerate(calls):
            at = start + timedelta(seconds=index * 60)
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "project_id": project.id,
                    "pipecat_call_id": call["pipecat_call_id"],
                    "status": "ENDED",
                    "started_received": True,
                    "ended_received": True,
                    "started_at": at,
                    "transcript_text": call["text"],
                    "tool_calls": call["tools"],
                    "stitch_count": 0,
                    "created_at": at,
                    "updated_at": at,
                    "last_activity_at": at,
                }
            )
        for first in range(0, len(rows), 1000):
            await connection.execute(insert(schema.calls), rows[first : first + 1000])
    async with state.begin() as connection:
        started = time.perf_counter()
        await connection.run_sync(rebuild)
    return str(project.id), time.perf_counter() - started


def _substring(text: str) -> ColumnElement[bool]:
    """The search this index replaced: a case-insensitive substring, a scan."""
    from pipecat_roark.server import schema
    from pipecat_roark.server.search import contains_text

    calls = schema.calls.c
    return or_(contains_text(text, calls.transcript_text, calls.pipecat_call_id))


async def _timed(state: Any, project_id: str, search: str | Any, repeats: int) -> list[float]:
    """Times of the API's first page and total for a query as the server plans it (``search``
    a string), or for a condition."""
    from pipecat_roark.server import schema
    from pipecat_roark.server.pagination import fetch_page
    from pipecat_roark.server.search import plan_call_search

    calls = schema.calls

    async def page() -> None:
        async with state.reader.connect() as connection:
            sort_key: Any = calls.c.created_at
            conditions = [calls.c.project_id == project_id]
            counted_as = [[*conditions, search]]
            if isinstance(search, str):
                plan = await plan_call_search(connection, project_id, search)
                sort_key = plan.sort_key(sort_key)
                counted_as = plan.exact_count_with(conditions)
                conditions.append(plan.page)
            else:
                conditions.append(search)
            await fetch_page(
                connection,
                calls,
                conditions=conditions,
                sort_name="createdAt",
                sort_key=sort_key,
                key_type=datetime,
                direction="desc",
                after=None,
                limit=20,
                counted_as=counted_as,
            )

    await page()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await page()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _found(state: Any, project_id: str, query: str) -> set[str]:
    from pipecat_roark.server import schema
    from pipecat_roark.server.search import plan_call_search

    calls = schema.calls.c
    async with state.reader.connect() as connection:
        plan = await plan_call_search(connection, project_id, query)
        found = await connection.scalars(
            select(calls.pipecat_call_id).where(calls.project_id == project_id, plan.page)
        )
        return set(found)


async def _backend(
    label: str, database_url: str | None, size: Size, calls: list[dict[str, Any]]
) -> tuple[list[list[str]], str, bool]:
    from pipecat_roark.server.app import open_state
    from pipecat_roark.server.embed import ensure_project_key
    from pipecat_roark.server.settings import ServerSettings

    rows = []
    exact = True
    with tempfile.TemporaryDirectory(prefix="roark-search-bench-") as workdir:
        settings = ServerSettings(data_dir=Path(workdir), run_workers=False)
        if database_url is not None:
            settings = settings.replace(database_url=database_url)
        await ensure_project_key(settings, "bench")
        async with open_state(settings) as state:
            project_id, rebuild_secs = await _fill(state, calls)
            for form, query, text in _queries(calls):
                found = await _found(state, project_id, query)
                expected = _scan(calls, query)
                exact = exact and found == expected
                new = await _timed(state, project_id, query, size.repeats)
                old = await _timed(state, project_id, _substring(text), size.repeats)
                rows.append(
                    [
                        label,
                        form,
                        f"`{query}`",
                        f"{len(found)}{'' if found == expected else ' **≠ scan**'}",
                        f"{percentile(new, 50):.1f} / {percentile(new, 95):.1f}",
                        f"{percentile(old, 50):.1f} / {percentile(old, 95):.1f}",
                        f"{percentile(old, 50) / percentile(new, 50):.1f}x",
                    ]
                )
    return rows, f"{label}: index rebuilt from {size.calls} calls in {rebuild_secs:.1f} s", exact


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    calls = _calls(size)
    rows: list[list[str]] = []
    notes = []
    exact = True
    with services() as held:
        for label, url in (
            ("SQLite", None),
            ("PostgreSQL", held.need_postgres().create_database()),
        ):
            backend_rows, note, backend_exact = await _backend(label, url, size, calls)
            rows += backend_rows
            notes.append(f"- {note}.")
            exact = exact and backend_exact
    report = Report(
        NAME,
        "Searching calls: the index against the substring scan",
        f"{size.calls} ended calls of {size.words_per_call} generated words each (a tool call "
        f"in every third), stored straight into the calls table. Each query as the calls list "
        f"runs it (first page of 20 and the total), {size.repeats} times after one warm-up: "
        "p50 / p95 in ms, the index and the old substring scan (`ILIKE`) on the same text, "
        "and the ratio of their medians. `calls` is how many calls the query finds.",
        versions=server_versions(SQLite=sqlite3.sqlite_version),
    )
    report.add(
        table(
            ["database", "query form", "query", "calls", "index ms", "substring ms", "speed-up"],
            rows,
        ),
        f"- Every query's answer equals a scan in Python over the generated calls: "
        f"{'yes' if exact else '**no**'}.",
        *notes,
    )
    if not exact:
        raise SystemExit("search answers differ from the scan:\n" + report.markdown())
    return report


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or NAME, argv, _measure)


if __name__ == "__main__":
    main()
