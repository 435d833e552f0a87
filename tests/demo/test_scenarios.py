"""The scenarios are complete calls: what the caller says, when, and how the bot answers."""

from __future__ import annotations

import pytest

from pipecat_roark.demo.cli import SCENARIO_NAMES
from pipecat_roark.demo.scenarios import SCENARIOS, Scenario, get_scenario


def _rule(scenario: Scenario, name: str):  # type: ignore[no-untyped-def]
    return next(rule for rule in scenario.rules if rule.name == name)


def test_the_command_line_offers_every_scenario() -> None:
    assert tuple(SCENARIOS) == SCENARIO_NAMES


def test_an_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="booking, interruption, silence"):
        get_scenario("karaoke")


def test_booking_makes_two_tool_calls_in_order_and_has_six_turns_or_more() -> None:
    booking = SCENARIOS["booking"]
    assert [rule.tool for rule in booking.rules if rule.tool] == [
        "check_availability",
        "book_table",
    ]
    # The greeting, then each caller line and its answer.
    assert 1 + 2 * len(booking.caller) >= 6
    assert booking.rules[-1].end_call


def test_booking_reads_the_request_from_what_was_heard() -> None:
    request = _rule(SCENARIOS["booking"], "request")
    assert request.arguments is not None
    assert request.arguments("i'd like a table for three on friday at 8", {}) == {
        "party_size": 3,
        "date": "friday",
        "time": "20:00",
    }
    # Misheard numbers fall back to the usual booking rather than failing the call.
    assert request.arguments("book a table please", {}) == {
        "party_size": 2,
        "date": "tomorrow",
        "time": "19:00",
    }


def test_booking_takes_the_name_and_keeps_the_checked_details() -> None:
    name = _rule(SCENARIOS["booking"], "name")
    assert name.arguments is not None
    checked = {"party_size": 4, "date": "friday", "time": "20:00"}
    assert name.arguments("my name is sam lee", checked) == {"name": "Sam Lee", **checked}


def test_the_tools_answer_and_the_bot_says_so() -> None:
    booking = SCENARIOS["booking"]
    availability = booking.tool("check_availability")
    result = availability.run({"party_size": 2, "date": "tomorrow", "time": "19:00"})
    assert result["available"] is True
    assert "table for two tomorrow at seven" in availability.reply(result)
    booked = booking.tool("book_table").run({"name": "Alex Morgan", **result})
    assert booked["confirmation"] in booking.tool("book_table").reply(booked)


def test_interruption_barges_in_during_a_long_answer() -> None:
    interruption = SCENARIOS["interruption"]
    barge_in = [step for step in interruption.caller if step.barge_in_after_secs is not None]
    assert len(barge_in) == 1
    long_answer = _rule(interruption, "hours").say
    # Long enough that the barge-in lands well inside it (espeak speaks ~3 words a second).
    assert len(long_answer.split()) / 3.5 > barge_in[0].barge_in_after_secs + 3


def test_silence_asks_then_hangs_up() -> None:
    silence = SCENARIOS["silence"]
    assert len(silence.caller) == 1
    assert silence.user_idle_secs > 0
    assert len(silence.idle_prompts) >= 2


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_the_script_is_what_the_recogniser_should_hear(scenario: Scenario) -> None:
    assert scenario.caller_script == tuple(step.text for step in scenario.caller)
    assert all(step.text.strip() for step in scenario.caller)
