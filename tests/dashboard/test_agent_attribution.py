"""The agent page's attribution table shows the same numbers as the REST answer."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from .live import Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

PARTS = (
    ("endpointing_wait", "config: VAD stop_secs", "setting"),
    ("transcription", "STT#0", "service"),
    ("llm_inference", "LLM#0", "service"),
    ("speech_synthesis", "TTS#0", "service"),
)


def _reply(rng: random.Random, turn: int) -> dict[str, Any]:
    parts = [
        {"key": k, "label": k, "owner": o, "ownerKind": kind, "durationSecs": rng.random()}
        for k, o, kind in PARTS
    ]
    return {
        "kind": "latency_breakdown",
        "value": sum(p["durationSecs"] for p in parts),
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "audioOffsetMs": 1000 * turn,
        "turnIndex": turn,
        "contributions": parts,
    }


async def test_the_agent_page_tabulates_each_parts_p50_and_p95(page: Any, acme: Protocol) -> None:
    rng = random.Random(5)
    now = datetime.now(timezone.utc).isoformat()
    for _ in range(6):
        call_id = f"attr-{uuid.uuid4()}"
        acme.start(call_id, agentId="attribution-bot", eventTimestamp=now)
        acme.end(call_id, callStartedAt=now, metrics=[_reply(rng, 1), _reply(rng, 3)])
    agents = acme.get("/v1/agent", limit=100)["data"]
    (agent,) = [a for a in agents if a["customId"] == "attribution-bot"]
    expected = acme.get(f"/v1/agent/{agent['id']}/latency")["data"]["total"]
    await page.goto(f"/agents/{agent['id']}")
    await page.wait_for_selector("#attribution[data-ready='1']")
    rows = await page.eval_on_selector_all(
        "#attribution table tr[data-key]",
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))",
    )
    assert rows == [
        [
            p["key"],
            p["owner"],
            p["ownerKind"],
            str(p["replies"]),
            f"{round(p['p50'] * 1000)} ms",
            f"{round(p['p95'] * 1000)} ms",
            f"{round(p['shareOfP95'] * 100)}%",
        ]
        for p in expected["parts"]
    ]
    assert all(row[3] == "12" for row in rows)
    assert page.errors == []
