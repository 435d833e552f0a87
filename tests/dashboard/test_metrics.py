"""Call metrics in the server: figures stored per call, aggregated per agent and per day.

The aggregates are checked against a computation made here, with numpy, from the values the
server stored for each call (read back through the REST API), on SQLite + folder and on
PostgreSQL + S3.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from tests.server.harness import Harness
from tests.support.migrations import NOW, old_database

DAYS = ("2026-02-10", "2026-02-11", "2026-02-12")


def _call(number: int, agent: str, day: str, rng: np.random.Generator) -> dict[str, Any]:
    """A call-ended whose metrics vary: some calls carry none, some no latencies."""
    started = datetime.fromisoformat(f"{day}T{8 + number % 12:02d}:15:00+00:00")
    turns: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    at = 0
    for index in range(int(rng.integers(2, 9))):
        role = "assistant" if index % 2 == 0 else "user"
        turns.append(
            {
                "role": role,
                "content": f"{role} {index}",
                "timestamp": started.isoformat(),
                "endTimestamp": started.isoformat(),
                "audioOffsetMs": at,
                "endAudioOffsetMs": at + 900,
            }
        )
        if role == "assistant" and index and number % 5 != 3:
            value = round(float(rng.uniform(0.2, 2.5)), 3)
            metrics.append(
                {"kind": "turn_latency", "value": value, "audioOffsetMs": at, "turnIndex": index}
            )
            if rng.random() < 0.3:
                metrics.append(
                    {
                        "kind": "interruption",
                        "value": 0.4,
                        "audioOffsetMs": at + 400,
                        "botTurnOffsetMs": at,
                        "playedFraction": 0.5,
                    }
                )
        at += 1500
    body: dict[str, Any] = {
        "callStartedAt": started.isoformat(),
        "callEndedAt": (started + timedelta(minutes=2)).isoformat(),
        "eventTimestamp": (started + timedelta(minutes=2)).isoformat(),
        "transcript": turns,
    }
    if number % 7 != 6:  # every seventh call was sent without metrics
        body["metrics"] = metrics
    return body


async def test_per_agent_daily_aggregates_equal_a_direct_computation(server: Harness) -> None:
    rng = np.random.default_rng(7)
    for number in range(30):
        agent = "agent-north" if number % 3 else "agent-south"
        pipecat_id = f"metric-call-{number}"
        await server.start(pipecat_id, agentId=agent, agentName=agent.title())
        answer = await server.end(pipecat_id, **_call(number, agent, DAYS[number % 3], rng))
        assert answer.status_code == 200, answer.text

    # What the server stored for each call, read back through the REST API.
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    cuts: dict[tuple[str, str], int] = defaultdict(int)
    bot_turns: dict[tuple[str, str], int] = defaultdict(int)
    calls: dict[tuple[str, str], int] = defaultdict(int)
    listing = (await server.get("/v1/call", limit=100)).json()["data"]
    assert len(listing) == 30
    for call in listing:
        agent = call["agents"][0]["id"]
        day = call["startedAt"][:10]
        key = (agent, day)
        calls[key] += 1
        stored = await server.details(call["id"])
        analytics = (await server.get(f"/v1/call/{call['id']}/analytics")).json()["data"]
        if not stored["metrics"] and analytics["responseLatencies"] is None:
            continue  # sent without metrics: unknown, not zero
        values = [m["value"] for m in stored["metrics"] if m["kind"] == "turn_latency"]
        assert analytics["responseLatencies"] == values
        if values:
            assert analytics["responseLatencyP50"] == pytest.approx(np.percentile(values, 50))
        latencies[key] += values
        cuts[key] += sum(1 for m in stored["metrics"] if m["kind"] == "interruption")
        transcript = (await server.get(f"/v1/call/{call['id']}/transcript")).json()["data"]
        bot_turns[key] += sum(1 for e in transcript["entries"] if e["role"] == "AGENT")

    agents = {a["customId"]: a["id"] for a in (await server.get("/v1/agent")).json()["data"]}
    for agent in agents.values():
        answer = await server.get(
            f"/v1/agent/{agent}/analytics", **{"from": DAYS[0], "to": "2026-02-13"}
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert [d["date"] for d in data["days"]] == [*DAYS, "2026-02-13"]
        for day in data["days"]:
            key = (agent, day["date"])
            values = latencies.get(key, [])
            assert day["calls"] == calls.get(key, 0)
            assert day["responses"] == len(values)
            if values:
                assert day["responseLatencyP50"] == pytest.approx(np.percentile(values, 50))
                assert day["responseLatencyP95"] == pytest.approx(np.percentile(values, 95))
            else:
                assert day["responseLatencyP50"] is None
            assert day["interruptions"] == cuts.get(key, 0)
            if bot_turns.get(key):
                assert day["interruptionRate"] == pytest.approx(cuts[key] / bot_turns[key])
        every = [v for (a, _), vs in latencies.items() if a == agent for v in vs]
        assert data["total"]["responseLatencyP95"] == pytest.approx(np.percentile(every, 95))
        assert data["total"]["calls"] == sum(n for (a, _), n in calls.items() if a == agent)

        # The agent page reads the same figures.
        twin = await server.get(f"/agents/{agent}.json", **{"from": DAYS[0], "to": "2026-02-13"})
        assert twin.status_code == 200, twin.text
        assert twin.json()["trends"]["days"] == data["days"]


async def test_analytics_are_scoped_and_checked(sqlite_server: Harness) -> None:
    server = sqlite_server
    await server.start("scoped")
    await server.end("scoped")
    call = await server.call_id("scoped")
    agent = (await server.get("/v1/agent")).json()["data"][0]["id"]
    other = await server.client.get(
        f"/v1/call/{call}/analytics", headers={"authorization": "Bearer rk_live_nope"}
    )
    assert other.status_code == 401
    assert (await server.get("/v1/call/nope/analytics")).status_code == 404
    assert (await server.get("/v1/agent/nope/analytics")).status_code == 404
    backwards = await server.get(
        f"/v1/agent/{agent}/analytics", **{"from": "2026-02-02", "to": "2026-02-01"}
    )
    assert backwards.status_code == 422
    too_long = await server.get(
        f"/v1/agent/{agent}/analytics", **{"from": "2024-01-01", "to": "2026-01-01"}
    )
    assert too_long.status_code == 422
    default = (await server.get(f"/v1/agent/{agent}/analytics")).json()["data"]
    assert len(default["days"]) == 30
    assert default["to"] == datetime.now(timezone.utc).date().isoformat()


def test_calls_stored_before_the_figures_existed_get_them_on_upgrade(tmp_path: Path) -> None:
    with old_database(tmp_path / "old.sqlite3", "0001") as old:
        old.connection.execute(
            sa.text(
                "INSERT INTO calls (id, project_id, pipecat_call_id, status, started_received, "
                "ended_received, stitch_count, created_at, updated_at, last_activity_at, "
                "transcript, tool_calls, metrics) VALUES ('c', 'p', 'old-call', 'ENDED', 1, 1, 0, "
                ":now, :now, :now, :transcript, :tools, :metrics)"
            ),
            {
                "now": NOW,
                "transcript": '[{"role": "assistant", "content": "hi"}, {"role": "user", '
                '"content": "yo"}, {"role": "assistant", "content": "ok"}]',
                "tools": '[{"kind": "tool_call", "toolCallId": "1"}, {"kind": "tool_result"}]',
                "metrics": '[{"kind": "turn_latency", "value": 0.5}, '
                '{"kind": "turn_latency", "value": 1.5}, {"kind": "interruption"}]',
            },
        )
        old.upgrade()
        row = old.connection.execute(
            sa.text(
                "SELECT turn_count, assistant_turn_count, tool_call_count, interruption_count, "
                "response_latencies, response_latency_p50 FROM calls WHERE id = 'c'"
            )
        ).one()
    assert tuple(row) == (3, 2, 1, 1, "[0.5, 1.5]", 1.0)
