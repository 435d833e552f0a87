"""A real Pipecat pipeline with tracing on, its spans sent by the real OTLP HTTP exporter
to a real ``serve``: the call's stt, llm and tts spans are joined to it, under its turns."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("hibari", reason="needs the [demo] extra")
pytest.importorskip("pocketsphinx", reason="needs the [demo] extra")
pytest.importorskip("fastapi", reason="needs the [server] extra")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs the [dev] extra")

from rich.console import Console

from pipecat_roark.server.embed import ensure_project_key, serve_in_background
from pipecat_roark.server.settings import ServerSettings
from tests.support.traced import traced_demo_call


async def test_the_demo_calls_spans_land_under_its_turns(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data", worker_poll_interval=0.05)
    key = await ensure_project_key(settings, "luigi")
    async with serve_in_background(settings) as base_url:
        pipecat_call_id, sent = await traced_demo_call(base_url, key)
        assert sent > 0
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            listing = (await client.get("/v1/call")).json()["data"]
            (call,) = [c for c in listing if c["externalId"] == pipecat_call_id]
            answer = await client.get(f"/v1/call/{call['id']}/spans")
            assert answer.status_code == 200, answer.text
            spans: list[dict[str, Any]] = answer.json()["data"]["spans"]
    by_id = {s["spanId"]: s for s in spans}
    names = [s["name"] for s in spans]
    assert names.count("conversation") == 1
    assert names.count("turn") >= 3
    for service in ("stt", "llm", "tts"):
        mine = [s for s in spans if s["name"] == service]
        assert mine, f"no {service} span"
        for span in mine:
            assert by_id[span["parentSpanId"]]["name"] == "turn"
            assert "audioOffsetMs" in span
    turns_with_all = [
        turn
        for turn in spans
        if turn["name"] == "turn"
        and {s["name"] for s in spans if s.get("parentSpanId") == turn["spanId"]}
        >= {"stt", "llm", "tts"}
    ]
    assert turns_with_all
    llm = next(s for s in spans if s["name"] == "llm")
    assert llm["attributes"]["gen_ai.request.model"]


async def test_the_demo_sends_its_spans_with_tracing_on(tmp_path: Path) -> None:
    from pipecat_roark.demo.runner import DemoOptions, run_demo

    settings = ServerSettings(data_dir=tmp_path / "data", worker_poll_interval=0.05)
    key = await ensure_project_key(settings, "luigi")
    async with serve_in_background(settings) as base_url:
        options = DemoOptions(
            scenario="interruption", speed=None, to=base_url, api_key=key, tracing=True
        )
        outcome = await run_demo(options, Console(file=io.StringIO()))
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            listing = (await client.get("/v1/call")).json()["data"]
            (call,) = [c for c in listing if c["externalId"] == outcome.pipecat_call_id]
            spans = (await client.get(f"/v1/call/{call['id']}/spans")).json()["data"]["spans"]
    assert outcome.spans_sent == len(spans) > 0
    assert {"conversation", "turn", "stt", "llm", "tts"} <= {s["name"] for s in spans}
