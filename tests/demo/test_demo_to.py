"""``pipecat-roark demo --to URL --api-key K``: the same call, sent over the protocol to
another backend (here a recording server on 127.0.0.1), proving the demo is a real client."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("hibari", reason="needs the [demo] extra")
pytest.importorskip("pocketsphinx", reason="needs the [demo] extra")
pytest.importorskip(
    "pipecat_roark.observer", reason="RoarkObserver (pipecat_roark.observer) is not there yet"
)

from rich.console import Console

from pipecat_roark.demo.runner import DemoOptions, run_demo
from pipecat_roark.demo.scenarios import SCENARIOS


async def test_to_sends_the_same_call_over_the_protocol(backend: Any) -> None:
    options = DemoOptions(speed=None, serve=False, to=backend.url, api_key="rk_live_demo_test")
    outcome = await run_demo(options, Console(record=True, width=120))
    assert outcome.delivered
    assert not outcome.backend.embedded
    started = backend.of("call-started")
    assert [request.body["agentId"] for request in started] == [SCENARIOS["booking"].agent.id]
    ended = backend.call_ended()
    assert ended["pipecatCallId"] == outcome.pipecat_call_id
    assert len(ended["transcript"]) >= 6
    assert [t["name"] for t in ended["toolCalls"] if t["kind"] == "tool_call"] == [
        "check_availability",
        "book_table",
    ]
    assert backend.chunks(outcome.pipecat_call_id)
