"""What a person sees: each turn as it happens with its latency, then the summary table."""

from __future__ import annotations

import pytest

pytest.importorskip("rich", reason="needs the [demo] extra")

from rich.console import Console

from pipecat_roark.demo.call import CallResult, ToolUse
from pipecat_roark.demo.progress import (
    CallProgress,
    link_line,
    print_summary,
    response_latencies,
    response_latency,
)
from pipecat_roark.demo.scenarios import SCENARIOS
from pipecat_roark.demo.timeline import CallTimeline

RATE = 1000  # one sample a millisecond keeps the arithmetic readable


def _timeline() -> CallTimeline:
    timeline = CallTimeline(RATE)
    greeting = timeline.bot_started(0)
    greeting.end_sample = 2500
    timeline.bot_stopped(greeting, interrupted=False)
    timeline.add_caller_line("Good evening.", 3000, 5000)
    answer = timeline.bot_started(5600)
    answer.end_sample = 9000
    timeline.bot_stopped(answer, interrupted=False)
    follow_up = timeline.bot_started(9300)  # the same reply, after a tool call
    follow_up.end_sample = 9900
    timeline.bot_stopped(follow_up, interrupted=False)
    return timeline


def _console() -> Console:
    return Console(record=True, width=150, color_system=None)


def test_latency_is_from_the_callers_line_to_the_bots_answer() -> None:
    timeline = _timeline()
    greeting, answer, follow_up = timeline.bot_speech
    assert response_latency(timeline, greeting) is None
    assert response_latency(timeline, answer) == pytest.approx(0.6)
    assert response_latency(timeline, follow_up) is None
    assert response_latencies(timeline) == [pytest.approx(0.6)]


def test_each_turn_is_shown_as_it_happens() -> None:
    console = _console()
    timeline = _timeline()
    with CallProgress(console, SCENARIOS["booking"]) as progress:
        progress.call_starting(timeline)
        progress.caller_heard("good evening")
        progress.tool_called(
            ToolUse("check_availability", {"party_size": 2}, {"party_size": 2, "available": True})
        )
        progress.bot_said("Good news, we have a table.", False)
        progress.bot_said("", False)
    shown = console.export_text()
    assert "caller  good evening" in shown
    assert "tool  check_availability(party_size=2) -> {'available': True}" in shown
    assert "bot  Good news, we have a table." in shown


def test_the_summary_has_turns_tools_recording_latency_and_the_link() -> None:
    timeline = _timeline()
    result = CallResult(
        scenario=SCENARIOS["booking"],
        timeline=timeline,
        caller_heard=["good evening i would like to book a table for two tomorrow at seven"],
        bot_said=[("Thank you for calling.", False), ("", False), ("Good news.", True)],
        tool_uses=[ToolUse("check_availability", {}, {})],
        bot_hung_up=True,
        wall_secs=1.5,
    )
    console = _console()
    print_summary(console, result, where=link_line("http://127.0.0.1:8787/calls/abc"))
    shown = console.export_text()
    assert "3 (2 bot, 1 caller)" in shown
    assert "1 (check_availability)" in shown
    assert "Interruptions" in shown
    assert "Recording" in shown
    assert "9.9 s" in shown
    assert "median 0.60 s" in shown
    assert "http://127.0.0.1:8787/calls/abc" in shown
