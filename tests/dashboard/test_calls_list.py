"""The calls list: figures per call, search, filters in the URL, pages, and its cost."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import event

from pipecat_roark.stats import percentile
from tests.server.conftest import base_settings

from .conftest import logged_in, screenshot
from .live import LiveServer, Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

WORDS = ("aubergine", "lighthouse", "saxophone", "meadow", "quartz", "harbour", "velvet")


@pytest.fixture(scope="module")
def listing(live: LiveServer) -> Iterator[dict[str, Any]]:
    """Project ``lists``: seven calls of agent A (one word each), two of agent B."""
    client = Protocol(live.url, live.key("lists"))
    start = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
    ids: dict[str, str] = {}
    for number, word in enumerate(WORDS):
        at = start + timedelta(hours=number)
        ids[word] = client.end(
            f"list-a-{number}",
            callStartedAt=at.isoformat(),
            callEndedAt=(at + timedelta(minutes=1)).isoformat(),
            callEndedReason="client-disconnected" if number % 2 else "agent-ended",
            transcript=[_turn("user", f"Tell me about the {word.upper()} please", 500)],
        )
        client.start(f"list-a-{number}", agentId="agent-a", agentName="Agent A")
    for number in range(2):
        at = start + timedelta(days=1, hours=number)
        client.end(
            f"list-b-{number}",
            callStartedAt=at.isoformat(),
            callEndedAt=(at + timedelta(minutes=1)).isoformat(),
            transcript=[_turn("user", "Something else entirely", 500)],
        )
        client.start(f"list-b-{number}", agentId="agent-b", agentName="Agent B")
    agents = {a["customId"]: a["id"] for a in client.get("/v1/agent")["data"]}
    yield {"client": client, "ids": ids, "agents": agents}
    client.close()


def _turn(role: str, text: str, at: int) -> dict[str, Any]:
    return {
        "role": role,
        "content": text,
        "timestamp": "2026-03-01T09:00:00+00:00",
        "endTimestamp": "2026-03-01T09:00:01+00:00",
        "audioOffsetMs": at,
        "endAudioOffsetMs": at + 1000,
    }


async def _rows(page: Any) -> list[str]:
    ids: list[str] = await page.eval_on_selector_all(
        "table.calls tbody tr", "rows => rows.map(r => r.dataset.callId)"
    )
    return ids


async def test_search_finds_a_call_by_a_word_said_in_it(
    context: Any, listing: dict[str, Any]
) -> None:
    page = await logged_in(context, listing["client"])
    await page.fill("#q", "saxophone")
    await page.press("#q", "Enter")
    await page.wait_for_url(re.compile(r"q=saxophone"))
    assert await _rows(page) == [listing["ids"]["saxophone"]]
    # The filter lives in the URL: opening it again shows the same list.
    shared = page.url
    await page.goto("/calls")
    await page.goto(shared)
    assert await page.input_value("#q") == "saxophone"
    assert await _rows(page) == [listing["ids"]["saxophone"]]
    await page.goto("/calls?q=nothing-said-like-this")
    assert await _rows(page) == []
    assert "match these filters" in (await page.text_content("main") or "")
    assert page.errors == []


async def test_the_agent_filter_and_pagination_walk_every_call_once(
    context: Any, listing: dict[str, Any]
) -> None:
    page = await logged_in(context, listing["client"])
    await page.select_option("#agent", listing["agents"]["agent-a"])
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(re.compile(r"agent="))
    assert len(await _rows(page)) == 7
    newest_first = [listing["ids"][w] for w in reversed(WORDS)]
    assert await _rows(page) == newest_first

    await page.goto(f"/calls?agent={listing['agents']['agent-a']}&limit=3")
    pages = [await _rows(page)]
    while await page.locator("a[rel=next]").count():
        await page.click("a[rel=next]")
        query = parse_qs(urlsplit(page.url).query)
        assert query["agent"] == [listing["agents"]["agent-a"]]
        assert query["limit"] == ["3"]
        pages.append(await _rows(page))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == newest_first
    await page.click("a[rel=prev]")
    assert await _rows(page) == pages[1]
    await page.click("a[rel=prev]")
    assert await _rows(page) == pages[0]
    assert await page.locator("a[rel=prev]").count() == 0

    await page.goto(f"/calls?agent={listing['agents']['agent-b']}")
    assert len(await _rows(page)) == 2
    await page.goto(f"/calls?agent={listing['agents']['agent-a']}&reason=agent-ended")
    assert len(await _rows(page)) == 4
    await page.goto("/calls?from=2026-03-02&to=2026-03-02")
    assert len(await _rows(page)) == 2
    assert page.errors == []


async def test_each_row_shows_the_calls_figures(
    context: Any, showcase_project: tuple[Protocol, list[Any]]
) -> None:
    client, calls = showcase_project
    page = await logged_in(context, client)
    newest = max(calls, key=lambda call: call.started)
    row = page.locator(f"tr[data-call-id='{newest.call_id}']")
    cells = [c.strip() for c in await row.locator("td").all_text_contents()]
    latencies = client.get(f"/v1/call/{newest.call_id}/analytics")["data"]["responseLatencies"]
    cuts = [m for m in client.details(newest.call_id)["metrics"] if m["kind"] == "interruption"]
    p50 = f"{percentile(latencies, 0.5):.2f} s"
    assert cells[4:9] == ["7", "1", str(len(cuts)), "available", p50]
    assert cells[2] in ("Booking bot", "Support bot")
    assert cells[3] in ("client-disconnected", "agent-ended")
    listing = client.get("/calls.json")
    assert [c["id"] for c in listing["data"]] == await _rows(page)
    await screenshot(page, "calls-list.png")
    assert page.errors == []


# -- a 10 000-call project ------------------------------------------------------------------


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """A server whose project holds 10 000 calls: one sent over the protocol, the rest
    copies of its row with their own ids and start times (inserted in one transaction,
    since sending 10 000 call-ended requests would take minutes)."""
    data_dir = tmp_path_factory.mktemp("crowded") / "data"
    server = LiveServer(base_settings(data_dir).replace(run_workers=False)).start()
    key = server.key("crowded")
    client = Protocol(server.url, key)
    template = client.end("template-call", transcript=[_turn("user", "the only words", 500)])
    database = sqlite3.connect(data_dir / "pipecat-roark.sqlite3")
    columns = [row[1] for row in database.execute("PRAGMA table_info(calls)")]
    changed = ("id", "pipecat_call_id", "started_at", "created_at")
    select = ", ".join("?" if name in changed else name for name in columns)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []
    for number in range(1, 10_000):
        at = (start + timedelta(minutes=number)).strftime("%Y-%m-%d %H:%M:%S.%f")
        values = {"id": str(uuid.uuid4()), "pipecat_call_id": f"bulk-{number}"}
        values |= {"started_at": at, "created_at": at}
        rows.append(tuple(values[name] for name in columns if name in changed))
    with database:
        database.executemany(
            f"INSERT INTO calls ({', '.join(columns)}) SELECT {select} FROM calls WHERE id = ?",
            [(*row, template) for row in rows],
        )
    database.close()
    client.close()
    yield server, key
    server.stop()


class _Reads:
    """Counts the statements a request runs and the rows they hand to the server."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.rows = 0

    def before(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.statements.append((statement, parameters))

    def after(self, _conn: Any, cursor: Any, *_: Any) -> None:
        # The asyncio adapters fetch a result's rows into the cursor as they execute.
        self.rows += len(getattr(cursor, "_rows", ()) or ())


async def test_a_10000_call_project_lists_one_page_without_reading_all_calls(
    crowded: tuple[LiveServer, str], tmp_path: Path
) -> None:
    server, key = crowded
    headers = {"authorization": f"Bearer {key}"}
    reads = _Reads()
    engine = server.engine.sync_engine
    event.listen(engine, "before_cursor_execute", reads.before)
    event.listen(engine, "after_cursor_execute", reads.after)
    try:
        answer = httpx.get(f"{server.url}/calls", headers=headers, timeout=30)
        first = (reads.rows, len(reads.statements))
        twin = httpx.get(f"{server.url}/calls.json", headers=headers, timeout=30).json()
    finally:
        event.remove(engine, "before_cursor_execute", reads.before)
        event.remove(engine, "after_cursor_execute", reads.after)
    assert answer.status_code == 200
    assert answer.text.count("<tr data-call-id=") == 50
    assert "More than 1\u2009000 calls" in answer.text
    rows, statements = first
    assert rows >= 50
    assert rows <= 50 + 1 + 10  # the page (and one to know there is more), the viewer, choices
    assert statements <= 8
    assert len(twin["data"]) == 50
    assert twin["pagination"]["hasMore"] is True
    assert twin["pagination"]["totalIsCapped"] is True

    # The page query walks the (project, started, id) index: no scan, no sort of all calls.
    page_query, parameters = next(
        s for s in reads.statements if "LIMIT" in s[0] and "ORDER BY" in s[0]
    )
    database = sqlite3.connect(server.settings.resolved_database_url.removeprefix("sqlite:///"))
    plan = " | ".join(
        row[3] for row in database.execute(f"EXPLAIN QUERY PLAN {page_query}", parameters)
    )
    database.close()
    assert "ix_calls_project_started" in plan, plan
    assert "TEMP B-TREE" not in plan, plan

    # Deep pages cost the same: follow the cursor a hundred pages in.
    cursor = twin["pagination"]["nextCursor"]
    seen = {c["id"] for c in twin["data"]}
    for _ in range(3):
        page = httpx.get(
            f"{server.url}/calls.json", params={"after": cursor, "limit": 200}, headers=headers
        ).json()
        assert not seen & {c["id"] for c in page["data"]}
        seen |= {c["id"] for c in page["data"]}
        cursor = page["pagination"]["nextCursor"]
    assert len(seen) == 650
