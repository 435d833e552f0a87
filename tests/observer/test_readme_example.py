"""The README's quick start runs as written, on both Pipecat lines."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.observer.helpers import assert_protocol
from tests.support.backend import RecordingBackend
from tests.support.fakes import FakeContextAggregator, FakeLLM, FakeSTT, FakeTransport, FakeTTS

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_code() -> str:
    text = README.read_text()
    block = re.search(r"<!-- quick-start.*?```python\n(.*?)```\n<!-- /quick-start -->", text, re.S)
    assert block, "the README has no quick-start block"
    return block.group(1)


async def test_the_readme_quick_start_runs_as_written(
    backend: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROARK_API_KEY", "rk_live_readme")
    monkeypatch.setenv("ROARK_BASE_URL", backend.url)
    namespace: dict[str, Any] = {
        "transport": FakeTransport(["I'd like to book a table", "for two at seven"], speed=10.0),
        "stt": FakeSTT(),
        "context_aggregator": FakeContextAggregator(),
        "llm": FakeLLM(),
        "tts": FakeTTS(),
        "SYSTEM_PROMPT": "You take restaurant bookings.",
        "call_id": "readme-call-1",
    }
    source = "async def example():\n" + textwrap.indent(quick_start_code(), "    ")
    exec(compile(source, str(README), "exec"), namespace)
    await namespace["example"]()

    (started,) = backend.of("call-started")
    assert started.body["pipecatCallId"] == "readme-call-1"
    assert started.body["agentPrompt"] == "You take restaurant bookings."
    assert len(backend.chunks("readme-call-1")) >= 2
    ended = backend.call_ended()
    roles = [t["role"] for t in ended["transcript"]]
    assert roles == ["assistant", "user", "assistant", "user", "assistant"]
    assert ended["transcript"][1]["content"] == "I'd like to book a table"
    assert ended["agentSpokeFirst"] is True
    assert_protocol(backend)
