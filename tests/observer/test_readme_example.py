"""The README's quick start runs as written: the pipeline block, then the block that runs it
on this Pipecat line (and, on 1.3 and later, the older names too)."""

from __future__ import annotations

import importlib.util
import re
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.observer.helpers import assert_protocol
from tests.support.backend import RecordingBackend
from tests.support.fakes import FakeContextAggregator, FakeLLM, FakeSTT, FakeTransport, FakeTTS

README = Path(__file__).resolve().parents[2] / "README.md"

# PipelineWorker and WorkerRunner arrived in Pipecat 1.3; older lines have only the old names.
HAS_WORKERS = importlib.util.find_spec("pipecat.workers") is not None
RUN_BLOCKS = ["1.x", "0.0.x"] if HAS_WORKERS else ["0.0.x"]


def quick_start() -> str:
    text = README.read_text()
    section = re.search(r"<!-- quick-start:.*?-->\n(.*?)<!-- /quick-start -->", text, re.S)
    assert section, "the README has no quick-start section"
    return section.group(1)


def pipeline_code() -> str:
    block = re.match(r"```python\n(.*?)```\n", quick_start(), re.S)
    assert block, "the quick start does not open with the pipeline's block"
    return block.group(1)


def run_code(line: str) -> str:
    pattern = rf"<!-- quick-start-run: {re.escape(line)} -->\n```python\n(.*?)```\n"
    block = re.search(pattern, quick_start(), re.S)
    assert block, f"the quick start has no block that runs the pipeline on Pipecat {line}"
    return block.group(1)


async def run_quick_start(line: str) -> list[warnings.WarningMessage]:
    namespace: dict[str, Any] = {
        "transport": FakeTransport(["I'd like to book a table", "for two at seven"], speed=10.0),
        "stt": FakeSTT(),
        "context_aggregator": FakeContextAggregator(),
        "llm": FakeLLM(),
        "tts": FakeTTS(),
        "SYSTEM_PROMPT": "You take restaurant bookings.",
        "call_id": "readme-call-1",
    }
    code = pipeline_code() + "\n" + run_code(line)
    source = "async def example():\n" + textwrap.indent(code, "    ")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(source, str(README), "exec"), namespace)
        await namespace["example"]()
    return caught


@pytest.mark.parametrize("line", RUN_BLOCKS)
async def test_the_readme_quick_start_runs_as_written(
    line: str, backend: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROARK_API_KEY", "rk_live_readme")
    monkeypatch.setenv("ROARK_BASE_URL", backend.url)
    caught = await run_quick_start(line)

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
    if line == "1.x":
        deprecated = [str(w.message) for w in caught if "is deprecated" in str(w.message)]
        assert not [m for m in deprecated if "Pipeline" in m or "Runner" in m], deprecated
