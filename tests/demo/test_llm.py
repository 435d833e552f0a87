"""The scripted LLM answers by the scenario's rules and calls tools the way Pipecat does."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("rich", reason="needs the [demo] extra")

from pipecat.frames.frames import (
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    LLMContextFrame,
    LLMTextFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from pipecat_roark.demo._compat import EndCallFrame
from pipecat_roark.demo.llm import IDLE_NOTICE, ScriptedLLMService, tools_schema
from pipecat_roark.demo.scenarios import SCENARIOS, Scenario

BOOKING = SCENARIOS["booking"]


def _context(scenario: Scenario, *messages: dict[str, Any]) -> LLMContext:
    return LLMContext(
        messages=[{"role": "system", "content": scenario.agent.prompt}, *messages],
        tools=tools_schema(scenario),
    )


def _said(frames: list[Frame]) -> str:
    return "".join(frame.text for frame in frames if isinstance(frame, LLMTextFrame))


class _PushedBy(BaseObserver):
    """Every frame the LLM pushed, each way, once."""

    def __init__(self, processor: FrameProcessor) -> None:
        super().__init__()
        self._processor = processor
        self._seen: set[int] = set()
        self.down: list[Frame] = []
        self.up: list[Frame] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.source is not self._processor or data.frame.id in self._seen:
            return
        self._seen.add(data.frame.id)
        upstream = data.direction == FrameDirection.UPSTREAM
        (self.up if upstream else self.down).append(data.frame)


async def _answer(llm: ScriptedLLMService, context: LLMContext) -> tuple[list[Frame], list[Frame]]:
    """Runs one inference, and the follow-up Pipecat starts when a tool returns."""
    _, assistant = LLMContextAggregatorPair(context)
    pushed = _PushedBy(llm)
    await run_test(
        Pipeline([llm, assistant]),
        # Time for the tool to return and Pipecat to run the LLM again.
        frames_to_send=[LLMContextFrame(context), SleepFrame(0.3)],
        observers=[pushed],
    )
    return pushed.down, pushed.up


async def test_it_greets_first() -> None:
    down, _ = await _answer(ScriptedLLMService(scenario=BOOKING), _context(BOOKING))
    assert _said(down) == BOOKING.agent.greeting


async def test_a_booking_request_checks_availability_through_pipecat_and_answers() -> None:
    llm = ScriptedLLMService(scenario=BOOKING)
    heard = "good evening i would like to book a table for four on friday at eight"
    context = _context(BOOKING, {"role": "user", "content": heard})

    down, _ = await _answer(llm, context)

    started = [f for f in down if isinstance(f, FunctionCallsStartedFrame)]
    assert [call.function_name for call in started[0].function_calls] == ["check_availability"]
    (in_progress,) = [f for f in down if isinstance(f, FunctionCallInProgressFrame)]
    assert in_progress.arguments == {"party_size": 4, "date": "friday", "time": "20:00"}
    (result,) = [f for f in down if isinstance(f, FunctionCallResultFrame)]
    assert result.tool_call_id == in_progress.tool_call_id
    assert result.result["available"] is True
    # The result went into the context and Pipecat ran the LLM again to say it.
    assert any(m.get("role") == "tool" for m in context.get_messages() if isinstance(m, dict))
    assert "table for four friday at eight" in _said(down)


async def test_the_name_books_the_table_with_what_was_checked() -> None:
    llm = ScriptedLLMService(scenario=BOOKING)
    context = _context(BOOKING, {"role": "user", "content": "book a table for two at seven"})
    await _answer(llm, context)
    context.add_message({"role": "user", "content": "my name is alex morgan"})

    down, _ = await _answer(llm, context)

    (call,) = [f for f in down if isinstance(f, FunctionCallInProgressFrame)]
    assert call.function_name == "book_table"
    assert call.arguments == {
        "name": "Alex Morgan",
        "party_size": 2,
        "date": "tomorrow",
        "time": "19:00",
    }
    (result,) = [f for f in down if isinstance(f, FunctionCallResultFrame)]
    assert json.loads(json.dumps(result.result))["booked"] is True
    assert "Thank you, Alex Morgan. Your table is booked" in _said(down)


async def test_words_it_has_no_rule_for_get_the_fallback() -> None:
    context = _context(BOOKING, {"role": "user", "content": "purple elephants"})
    down, _ = await _answer(ScriptedLLMService(scenario=BOOKING), context)
    assert _said(down) == BOOKING.fallback
    assert not [f for f in down if isinstance(f, FunctionCallsStartedFrame)]


async def test_a_rule_fires_once() -> None:
    llm = ScriptedLLMService(scenario=BOOKING)
    context = _context(BOOKING, {"role": "user", "content": "is there parking"})
    first, _ = await _answer(llm, context)
    context.add_message({"role": "user", "content": "is there parking"})
    second, _ = await _answer(llm, context)
    assert "free parking" in _said(first)
    assert _said(second) == BOOKING.fallback


async def test_goodbye_hangs_up_after_speaking() -> None:
    context = _context(BOOKING, {"role": "user", "content": "thank you very much bye bye"})
    down, up = await _answer(ScriptedLLMService(scenario=BOOKING), context)
    assert "goodbye" in _said(down)
    assert any(isinstance(frame, EndCallFrame) for frame in up)


async def test_silence_gets_a_prompt_then_a_goodbye_and_a_hang_up() -> None:
    scenario = SCENARIOS["silence"]
    llm = ScriptedLLMService(scenario=scenario)
    context = _context(scenario, {"role": "system", "content": IDLE_NOTICE})
    first, first_up = await _answer(llm, context)
    context.add_message({"role": "system", "content": IDLE_NOTICE})
    second, second_up = await _answer(llm, context)
    assert _said(first) == scenario.idle_prompts[0]
    assert not any(isinstance(frame, EndCallFrame) for frame in first_up)
    assert _said(second) == scenario.idle_prompts[1]
    assert any(isinstance(frame, EndCallFrame) for frame in second_up)


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_every_tool_a_rule_calls_is_declared(scenario: Scenario) -> None:
    declared = {schema.name for schema in tools_schema(scenario).standard_tools}
    assert {rule.tool for rule in scenario.rules if rule.tool} <= declared
