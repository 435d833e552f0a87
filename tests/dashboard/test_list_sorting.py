"""The calls list you work with: each sort and each filter, page by page, against the same
question asked directly of the generated calls; and the view lives in its URL."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pipecat_roark.stats import percentile
from tests.server.conftest import base_settings

from .conftest import logged_in
from .live import LiveServer, Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

START = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)


@dataclass
class Made:
    """One generated call, as sent: what the list's answers are checked against."""

    id: str
    agent: str
    started: datetime
    duration_ms: int
    latencies: list[float] | None  # None: the call carries no metrics
    interruptions: int | None
    tool_error: bool
    words: str

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 0.5) if self.latencies else None


def _tools(call_id: str, kind: str, at: str) -> list[dict[str, Any]]:
    if kind == "none":
        return []
    call = {"kind": "tool_call", "toolCallId": f"{call_id}-t", "name": "lookup", "arguments": "{}"}
    call["timestamp"] = at
    if kind == "unanswered":
        return [call]
    content = json.dumps({"error": "timeout"} if kind == "error" else {"ok": True})
    result = {"kind": "tool_result", "toolCallId": f"{call_id}-t", "content": content}
    return [call, result | {"timestamp": at}]


def _generate(client: Protocol, count: int) -> list[Made]:
    rng = random.Random(16)
    made: list[Made] = []
    durations = rng.sample(range(20_000, 600_000, 1000), count)
    for number in range(count):
        pipecat_id = f"sorting-{number}"
        started = START + timedelta(days=number % 5, minutes=37 * number)
        has_metrics = number % 6 != 5
        latencies = [round(rng.uniform(0.2, 3.0), 3) for _ in range(rng.randint(1, 4))]
        interruptions = rng.randint(0, 3) if has_metrics else None
        tool = ("none", "ok", "error", "unanswered")[number % 4]
        metrics = (
            [{"kind": "turn_latency", "value": v, "audioOffsetMs": 1000} for v in latencies]
            + [{"kind": "interruption", "value": 0.5, "audioOffsetMs": 2000}] * (interruptions or 0)
            if has_metrics
            else None
        )
        words = f"number {number} speaking"
        body: dict[str, Any] = {
            "callStartedAt": started.isoformat(),
            "callEndedAt": (started + timedelta(milliseconds=durations[number])).isoformat(),
            "transcript": [
                {
                    "role": "user",
                    "content": words,
                    "timestamp": started.isoformat(),
                    "endTimestamp": (started + timedelta(seconds=1)).isoformat(),
                    "audioOffsetMs": 100,
                    "endAudioOffsetMs": 900,
                }
            ],
            "toolCalls": _tools(pipecat_id, tool, started.isoformat()),
        }
        if metrics is not None:
            body["metrics"] = metrics
        agent = "agent-even" if number % 2 == 0 else "agent-odd"
        client.start(pipecat_id, agentId=agent, agentName=agent)
        call_id = client.end(pipecat_id, **body)
        made.append(
            Made(
                id=call_id,
                agent=agent,
                started=started,
                duration_ms=durations[number],
                latencies=latencies if has_metrics else None,
                interruptions=interruptions,
                tool_error=tool in ("error", "unanswered"),
                words=words,
            )
        )
    return made


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def generated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Protocol, list[Made], dict[str, str]]]:
    """The same generated calls on each database (the JSON filters are written per dialect)."""
    settings = base_settings(tmp_path_factory.mktemp("sorting") / "data")
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        settings = settings.replace(database_url=postgres.create_database())
    live = LiveServer(settings).start()
    client = Protocol(live.url, live.key("sorting"))
    made = _generate(client, 30)
    agents = {a["customId"]: a["id"] for a in client.get("/v1/agent")["data"]}
    yield client, made, agents
    client.close()
    live.stop()


def _walk(client: Protocol, query: dict[str, str]) -> list[str]:
    """Every call of the list in its order, page by page (7 a page) through the JSON twin."""
    ids: list[str] = []
    params = {**query, "limit": "7"}
    for _ in range(20):
        page = client.get("/calls.json", **params)
        ids += [row["id"] for row in page["data"]]
        if not page["pagination"]["hasMore"]:
            return ids
        params["after"] = page["pagination"]["nextCursor"]
    raise AssertionError("the list never ended")


def _expected(
    made: list[Made], key: Callable[[Made], Any], order: str, keep: Callable[[Made], bool]
) -> list[str]:
    """Sorted by ``key`` (ties by id, the same way round), calls without the figure last."""
    kept = [m for m in made if keep(m)]
    known = [m for m in kept if key(m) is not None]
    unknown = [m for m in kept if key(m) is None]
    descending = order == "desc"
    known.sort(key=lambda m: (key(m), m.id), reverse=descending)
    unknown.sort(key=lambda m: m.id, reverse=descending)
    return [m.id for m in known + unknown]


SORT_KEYS: dict[str, Callable[[Made], Any]] = {
    "started": lambda m: m.started,
    "duration": lambda m: m.duration_ms,
    "latency": lambda m: m.p50,
    "interruptions": lambda m: m.interruptions,
}


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("sort", list(SORT_KEYS))
async def test_each_sort_walks_every_call_once_in_order(
    generated: tuple[Protocol, list[Made], dict[str, str]], sort: str, order: str
) -> None:
    client, made, _ = generated
    got = _walk(client, {"sort": sort, "order": order})
    assert got == _expected(made, SORT_KEYS[sort], order, lambda m: True)


def _filters(agents: dict[str, str]) -> dict[str, tuple[dict[str, str], Callable[[Made], bool]]]:
    day = START + timedelta(days=1)
    return {
        "agent": ({"agent": agents["agent-odd"]}, lambda m: m.agent == "agent-odd"),
        "date range": (
            {"from": day.date().isoformat(), "to": (day + timedelta(days=1)).date().isoformat()},
            lambda m: day.date() <= m.started.date() <= (day + timedelta(days=1)).date(),
        ),
        "longer than": ({"min_duration": "300"}, lambda m: m.duration_ms >= 300_000),
        "shorter than": ({"max_duration": "120.5"}, lambda m: m.duration_ms <= 120_500),
        "interrupted": ({"interrupted": "1"}, lambda m: (m.interruptions or 0) > 0),
        "tool error": ({"tool_error": "1"}, lambda m: m.tool_error),
        "slowest above": (
            {"latency_above": "2.5"},
            lambda m: m.latencies is not None and max(m.latencies) > 2.5,
        ),
    }


FILTERS = (
    "agent",
    "date range",
    "longer than",
    "shorter than",
    "interrupted",
    "tool error",
    "slowest above",
)


@pytest.mark.parametrize("name", FILTERS)
async def test_each_filter_returns_what_the_calls_say(
    generated: tuple[Protocol, list[Made], dict[str, str]], name: str
) -> None:
    client, made, agents = generated
    query, keep = _filters(agents)[name]
    expected = _expected(made, SORT_KEYS["started"], "desc", keep)
    assert 0 < len(expected) < len(made), name  # the filter is a real choice on this set
    assert _walk(client, query) == expected
    # With a sort too, and every filter at once.
    assert _walk(client, {**query, "sort": "duration", "order": "asc"}) == _expected(
        made, SORT_KEYS["duration"], "asc", keep
    )


async def test_filters_combine(generated: tuple[Protocol, list[Made], dict[str, str]]) -> None:
    client, made, agents = generated
    filters = _filters(agents)
    query = {**filters["agent"][0], **filters["longer than"][0], "sort": "latency"}
    expected = _expected(
        made,
        SORT_KEYS["latency"],
        "desc",
        lambda m: filters["agent"][1](m) and filters["longer than"][1](m),
    )
    assert _walk(client, query) == expected


async def test_the_view_lives_in_the_url_and_each_row_has_a_snippet(
    context: Any, generated: tuple[Protocol, list[Made], dict[str, str]]
) -> None:
    client, made, _ = generated
    page = await logged_in(context, client)
    await page.check("#interrupted")
    await page.fill("#latency_above", "1.5")
    await page.select_option("#sort", "interruptions")
    await page.select_option("#order", "asc")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url("**/calls?*sort=interruptions*")
    query = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items() if v[0]}
    assert query == {
        "interrupted": "1",
        "latency_above": "1.5",
        "sort": "interruptions",
        "order": "asc",
    }
    expected = _expected(
        made,
        SORT_KEYS["interruptions"],
        "asc",
        lambda m: (m.interruptions or 0) > 0 and max(m.latencies or [0]) > 1.5,
    )
    rows = await page.eval_on_selector_all(
        "table.calls tbody tr", "rows => rows.map(r => r.dataset.callId)"
    )
    assert rows == expected
    # Shared, the URL opens the same view with the form filled in.
    shared = page.url
    other = await logged_in(context, client, "/calls")
    await other.goto(shared)
    assert await other.is_checked("#interrupted")
    assert await other.input_value("#latency_above") == "1.5"
    assert await other.input_value("#sort") == "interruptions"
    snippets = await other.eval_on_selector_all(
        "table.calls tbody tr .snippet", "cells => cells.map(c => c.textContent)"
    )
    by_id = {m.id: m.words for m in made}
    assert snippets == [by_id[i] for i in expected]
    assert page.errors == []
