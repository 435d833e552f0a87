"""Fleet-wide latency attribution on 10 000 generated calls with known part distributions:
the percentiles equal a direct computation, and "what got slower" names the part whose
delay was injected first. Then the same through ``pipecat-roark calls --slowest-replies``."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, update

from pipecat_roark.server import schema
from pipecat_roark.server.app import open_state
from pipecat_roark.server.embed import ensure_project_key, serve_in_background
from pipecat_roark.server.reply_index import rebuild
from pipecat_roark.server.settings import ServerSettings
from tests.server.harness import Harness

CALLS = 10_000
DAYS = 14
FIRST_DAY = date(2026, 3, 1)
REGRESSION_DAY = FIRST_DAY + timedelta(days=7)  # the LLM is 250 ms slower from here on
PARTS = {
    ("endpointing_wait", "config: VAD stop_secs", "setting"): lambda r, day: 0.2,
    ("transcription", "DeepgramSTTService#0", "service"): lambda r, day: r.uniform(0.08, 0.2),
    ("llm_inference", "OpenAILLMService#0", "service"): lambda r, day: (
        r.lognormvariate(-1.2, 0.4) + (0.25 if day >= REGRESSION_DAY else 0.0)
    ),
    ("speech_synthesis", "CartesiaTTSService#0", "service"): lambda r, day: max(
        0.02, r.gauss(0.15, 0.04)
    ),
    ("pipeline", "pipecat", "pipeline"): lambda r, day: r.uniform(0.0, 0.02),
}


TOOL_CALLS = [
    {"kind": "tool_call", "toolCallId": "t1", "name": "check_availability", "audioOffsetMs": 5000},
    {"kind": "tool_result", "toolCallId": "t1", "content": "no errors, 3 tables free",
     "audioOffsetMs": 6000},
    {"kind": "tool_call", "toolCallId": "t2", "name": "book_table", "audioOffsetMs": 8000},
    {"kind": "tool_result", "toolCallId": "t2", "content": {"error": "no table"},
     "audioOffsetMs": 9000},
    {"kind": "tool_call", "toolCallId": "t3", "name": "send_sms", "audioOffsetMs": 11000},
]  # fmt: skip
"""A tool that worked (its answer mentions errors), one that failed, one never answered."""


def generated_calls() -> list[dict[str, Any]]:
    """Two replies per call; the whole set is the same on every run."""
    rng = random.Random(19)
    calls = []
    for index in range(CALLS):
        day = FIRST_DAY + timedelta(days=index % DAYS)
        metrics = []
        for turn in (1, 3):
            parts = [
                {
                    "key": k,
                    "label": k,
                    "owner": o,
                    "ownerKind": kind,
                    "durationSecs": draw(rng, day),
                }
                for (k, o, kind), draw in PARTS.items()
            ]
            metrics.append(
                {
                    "kind": "latency_breakdown",
                    "value": sum(p["durationSecs"] for p in parts),
                    "turnIndex": turn,
                    "audioOffsetMs": 4000 * turn,
                    "contributions": parts,
                }
            )
        calls.append({"day": day, "metrics": metrics})
    return calls


async def _store(state: Any, agent_custom_id: str, calls: list[dict[str, Any]]) -> str:
    """The calls written straight into the calls table, as call-ended would leave them."""
    async with state.begin() as connection:
        project = (await connection.execute(schema.projects.select())).first()
        agent_id = str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        await connection.execute(
            insert(schema.agents).values(
                id=agent_id,
                project_id=project.id,
                custom_id=agent_custom_id,
                created_at=now,
                updated_at=now,
            )
        )
        rows = []
        for index, call in enumerate(calls):
            started = datetime.combine(call["day"], datetime.min.time(), tzinfo=timezone.utc)
            started += timedelta(seconds=index % 80_000)
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "project_id": project.id,
                    "pipecat_call_id": f"gen-{index}",
                    "agent_id": agent_id,
                    "status": "ENDED",
                    "started_received": True,
                    "ended_received": True,
                    "started_at": started,
                    "metrics": call["metrics"],
                    "tool_calls": call.get("tool_calls"),
                    "stitch_count": 0,
                    "created_at": started,
                    "updated_at": started,
                    "last_activity_at": started,
                }
            )
        await connection.execute(insert(schema.calls), rows)
        # Written straight into the calls table, as a bulk import would: the latency index is
        # rebuilt, as `pipecat-roark rebuild-latency` does.
        await connection.run_sync(rebuild)
    return agent_id


def _direct(calls: list[dict[str, Any]], first: date, last: date) -> dict[tuple[str, ...], Any]:
    """Each part's durations in [first, last], straight from the generated set."""
    values: dict[tuple[str, ...], list[float]] = {}
    for call in calls:
        if first <= call["day"] <= last:
            for metric in call["metrics"]:
                for part in metric["contributions"]:
                    name = (part["key"], part["owner"], part["ownerKind"])
                    values.setdefault(name, []).append(part["durationSecs"])
    return values


@pytest.fixture(scope="module")
def calls() -> list[dict[str, Any]]:
    return generated_calls()


async def test_percentiles_per_part_equal_a_direct_computation(
    sqlite_server: Harness, calls: list[dict[str, Any]]
) -> None:
    await _store(sqlite_server.state, "fleet-bot", calls)
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    answer = await sqlite_server.get(
        "/v1/agent/fleet-bot/latency", **{"from": FIRST_DAY.isoformat(), "to": last.isoformat()}
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    direct = _direct(calls, FIRST_DAY, last)
    assert data["total"]["replies"] == 2 * CALLS
    got = {(p["key"], p["owner"], p["ownerKind"]): p for p in data["total"]["parts"]}
    assert set(got) == set(direct)
    for name, values in direct.items():
        assert got[name]["replies"] == len(values)
        assert got[name]["p50"] == pytest.approx(np.percentile(values, 50), abs=1e-9)
        assert got[name]["p95"] == pytest.approx(np.percentile(values, 95), abs=1e-9)
    # Per day too: one day, one part.
    day = data["days"][3]
    assert day["day"] == (FIRST_DAY + timedelta(days=3)).isoformat()
    one_day = _direct(calls, FIRST_DAY + timedelta(days=3), FIRST_DAY + timedelta(days=3))
    llm = ("llm_inference", "OpenAILLMService#0", "service")
    (llm_day,) = [p for p in day["parts"] if (p["key"], p["owner"], p["ownerKind"]) == llm]
    assert llm_day["p95"] == pytest.approx(np.percentile(one_day[llm], 95), abs=1e-9)
    assert llm_day["replies"] == len(one_day[llm])

    slower = await sqlite_server.get(
        "/v1/agent/fleet-bot/latency/slower",
        beforeFrom=FIRST_DAY.isoformat(),
        beforeTo=(REGRESSION_DAY - timedelta(days=1)).isoformat(),
        afterFrom=REGRESSION_DAY.isoformat(),
        afterTo=last.isoformat(),
    )
    assert slower.status_code == 200, slower.text
    ranked = slower.json()["data"]["parts"]
    assert (ranked[0]["key"], ranked[0]["owner"]) == ("llm_inference", "OpenAILLMService#0")
    assert ranked[0]["change"] == pytest.approx(0.25, abs=0.08)
    assert all(abs(entry["change"]) < 0.02 for entry in ranked[1:])
    worst = ranked[0]["worst"]
    assert len(worst) == 3
    assert worst[0]["durationSecs"] >= worst[1]["durationSecs"] >= worst[2]["durationSecs"]
    assert worst[0]["link"].startswith(f"/calls/{worst[0]['callId']}#t=")


async def test_slowest_replies_from_the_command_line(
    tmp_path: Path, calls: list[dict[str, Any]]
) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data", run_workers=False)
    key = await ensure_project_key(settings, "acme")
    recent = [
        {
            **call,
            "day": datetime.now(timezone.utc).date() - timedelta(days=1),
            "tool_calls": TOOL_CALLS,
        }
        for call in calls[:200]
    ]
    async with serve_in_background(settings) as base_url:
        async with open_state(settings) as state:
            await _store(state, "cli-bot", recent)
        command = [
            sys.executable, "-m", "pipecat_roark.cli", "calls", "--slowest-replies",
            "--agent", "cli-bot", "--since", "7d", "--limit", "5", "--json",
            "--base-url", base_url, "--api-key", key,
        ]  # fmt: skip
        # The server answers in this event loop: the command runs beside it.
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    data = json.loads(stdout)
    replies = data["replies"]
    totals = sorted((m["value"] for c in recent for m in c["metrics"]), reverse=True)[:5]
    assert [r["latencySecs"] for r in replies] == pytest.approx(totals, abs=1e-9)
    assert replies[0]["link"].startswith(f"{base_url}/calls/")
    assert {c["key"] for c in replies[0]["contributions"]} == {k for k, _, _ in PARTS}
    # The list's rule (a result holding "error" in quotes, a call never answered), not any
    # result that mentions an error.
    assert replies[0]["toolErrors"] == [
        {"toolCallId": "t2", "name": "book_table", "content": '{"error": "no table"}',
         "audioOffsetMs": 9000},
        {"toolCallId": "t3", "name": "send_sms", "content": None, "audioOffsetMs": 11000},
    ]  # fmt: skip


async def test_what_got_slower_between_two_prompt_revisions(
    sqlite_server: Harness, calls: list[dict[str, Any]]
) -> None:
    """The second week's calls ran with a new prompt, and the LLM got slower with it."""
    some = calls[:2000]
    agent_id = await _store(sqlite_server.state, "prompt-bot", some)
    now = datetime.now(timezone.utc)
    prompts = {"v1": str(uuid.uuid4()), "v2": str(uuid.uuid4())}
    regression = datetime.combine(REGRESSION_DAY, datetime.min.time(), tzinfo=timezone.utc)
    async with sqlite_server.state.begin() as connection:
        for text, prompt_id in prompts.items():
            await connection.execute(
                insert(schema.agent_prompts).values(
                    id=prompt_id, agent_id=agent_id, prompt_sha256=text, prompt=text, created_at=now
                )
            )
        for prompt_id, newer in ((prompts["v1"], False), (prompts["v2"], True)):
            started = schema.calls.c.started_at
            await connection.execute(
                update(schema.calls)
                .where(schema.calls.c.agent_id == agent_id)
                .where(started >= regression if newer else started < regression)
                .values(prompt_id=prompt_id)
            )
        await connection.run_sync(rebuild)
    answer = await sqlite_server.get(
        "/v1/agent/prompt-bot/latency/slower", beforePrompt=prompts["v1"], afterPrompt=prompts["v2"]
    )
    assert answer.status_code == 200, answer.text
    ranked = answer.json()["data"]["parts"]
    assert ranked[0]["key"] == "llm_inference"
    before = [c for c in some if c["day"] < REGRESSION_DAY]
    llm = ("llm_inference", "OpenAILLMService#0", "service")
    direct = _direct(before, FIRST_DAY, REGRESSION_DAY)[llm]
    assert ranked[0]["p95Before"] == pytest.approx(np.percentile(direct, 95), abs=1e-9)
    assert ranked[0]["repliesBefore"] == len(direct)
    mixed = await sqlite_server.get(
        "/v1/agent/prompt-bot/latency/slower", beforePrompt=prompts["v1"], afterFrom="2026-03-01"
    )
    assert mixed.status_code == 422
