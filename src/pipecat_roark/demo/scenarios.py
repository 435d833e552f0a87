"""The demo's calls: what the caller says and when, and how the scripted bot answers.

A scenario is data: the caller's script (played by the caller's transport), the bot's rules
(followed by the scripted LLM), and the tools the bot may call. Rules match words the
recogniser heard, not the script, so a misheard line takes the bot's fallback answer just
as it would with a real model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCENARIOS",
    "Agent",
    "BotRule",
    "CallerStep",
    "Scenario",
    "Tool",
    "get_scenario",
    "number_words",
]

Memory = Mapping[str, Any]


@dataclass(frozen=True)
class CallerStep:
    """One line of the caller's script.

    Lines are written without commas: the neural voice pauses at a comma for longer than
    the VAD's stop time, which would end the caller's turn halfway through the line.

    Args:
        text: what the caller says.
        pause_secs: how long the caller stays quiet after the bot finishes before speaking.
        barge_in_after_secs: speak over the bot instead, this far into its speech.
    """

    text: str
    pause_secs: float = 0.8
    barge_in_after_secs: float | None = None


@dataclass(frozen=True)
class Tool:
    """A function the bot may call, its schema, what it returns, and what the bot then says."""

    name: str
    description: str
    properties: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...]
    run: Callable[[Memory], dict[str, Any]]
    reply: Callable[[Memory], str]


@dataclass(frozen=True)
class BotRule:
    """When the caller's words include any of ``keywords``, call ``tool`` or ``say`` something.

    A rule fires once per call. ``arguments`` reads the tool's arguments from what was heard
    (and what earlier tools returned). ``end_call`` hangs up after the reply.
    """

    name: str
    keywords: tuple[str, ...]
    say: str = ""
    tool: str | None = None
    arguments: Callable[[str, Memory], dict[str, Any]] | None = None
    end_call: bool = False


@dataclass(frozen=True)
class Agent:
    """The bot the caller rings: how the observer registers it, and how it answers the phone."""

    id: str
    name: str
    prompt: str
    greeting: str


@dataclass(frozen=True)
class Scenario:
    """A whole demo call."""

    name: str
    description: str
    agent: Agent
    caller: tuple[CallerStep, ...]
    rules: tuple[BotRule, ...]
    fallback: str = "Sorry, I did not catch that. Could you say it again?"
    tools: tuple[Tool, ...] = ()
    idle_prompts: tuple[str, ...] = ()
    user_idle_secs: float = 0.0
    max_call_secs: float = 150.0

    @property
    def caller_script(self) -> tuple[str, ...]:
        """The caller's lines, in order: what the recogniser should hear."""
        return tuple(step.text for step in self.caller)

    def tool(self, name: str) -> Tool:
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise KeyError(name)


# --- reading what the caller said ---------------------------------------------------------

_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_NUMBER_NAMES = {value: name for name, value in _NUMBERS.items()}
_DAYS = ("today", "tonight", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday")


def number_words(value: int) -> str:
    return _NUMBER_NAMES.get(value, str(value))


def _number_after(words: list[str], marker: str) -> int | None:
    for index, word in enumerate(words[:-1]):
        if word == marker:
            following = words[index + 1]
            if following.isdigit():
                return int(following)
            if following in _NUMBERS:
                return _NUMBERS[following]
    return None


def _booking_request(heard: str, memory: Memory) -> dict[str, Any]:
    words = re.findall(r"[a-z0-9']+", heard.lower())
    party_size = _number_after(words, "for") or 2
    hour = _number_after(words, "at") or 7
    date = next((word for word in words if word in _DAYS), "tomorrow")
    return {
        "party_size": party_size,
        "date": date,
        "time": f"{hour + 12 if hour < 12 else hour}:00",
    }


def _booking_name(heard: str, memory: Memory) -> dict[str, Any]:
    match = re.search(r"name is (.+)", heard.lower())
    name = match.group(1).strip().title() if match else "Guest"
    return {
        "name": name,
        "party_size": memory.get("party_size", 2),
        "date": memory.get("date", "tomorrow"),
        "time": memory.get("time", "19:00"),
    }


def _check_availability(arguments: Memory) -> dict[str, Any]:
    return {"available": True, "table": "by the window", **arguments}


def _book_table(arguments: Memory) -> dict[str, Any]:
    return {"booked": True, "confirmation": "L 4 7", **arguments}


def _spoken_time(value: str) -> str:
    hour = int(str(value).split(":")[0])
    return number_words(hour - 12 if hour > 12 else hour)


def _availability_reply(result: Memory) -> str:
    return (
        f"Good news, we have a table for {number_words(int(result['party_size']))} "
        f"{result['date']} at {_spoken_time(result['time'])}. "
        "What name should I put the booking under?"
    )


def _booked_reply(result: Memory) -> str:
    return (
        f"Thank you, {result['name']}. Your table is booked, and your confirmation code is "
        f"{result['confirmation']}. Is there anything else I can help you with?"
    )


# --- the scenarios ------------------------------------------------------------------------

LUIGIS = Agent(
    id="demo-luigis-host",
    name="Luigi's phone host (demo)",
    prompt=(
        "You are the phone host of Luigi's, a small Italian restaurant. Greet the caller, "
        "answer questions about opening hours, address and parking, and take table "
        "bookings: check availability first, then book under the caller's name. Keep "
        "answers short."
    ),
    greeting="Thank you for calling Luigi's. How can I help you today?",
)

_WHEN = {
    "party_size": {"type": "integer", "description": "Number of guests."},
    "date": {"type": "string", "description": "Day of the booking."},
    "time": {"type": "string", "description": "Time, 24-hour HH:MM."},
}

_PARKING = BotRule(
    "parking",
    ("parking", "park"),
    say="Yes, there is free parking right behind the restaurant. "
    "Is there anything else I can help you with?",
)

_FAREWELL = BotRule(
    "farewell",
    ("bye", "goodbye", "thank", "thanks"),
    say="You are welcome. Enjoy your evening, goodbye!",
    end_call=True,
)

BOOKING = Scenario(
    name="booking",
    description="The caller books a table: two tool calls, a confirmation, a question, goodbye.",
    agent=LUIGIS,
    caller=(
        CallerStep("Good evening I would like to book a table for two tomorrow at seven."),
        CallerStep("My name is Alex Morgan."),
        CallerStep("Do you have parking near the restaurant?"),
        CallerStep("That is perfect thank you very much bye bye."),
    ),
    rules=(
        BotRule(
            "request",
            ("book", "table", "reservation"),
            tool="check_availability",
            arguments=_booking_request,
        ),
        BotRule("name", ("name",), tool="book_table", arguments=_booking_name),
        _PARKING,
        _FAREWELL,
    ),
    tools=(
        Tool(
            name="check_availability",
            description="Check whether a table is free.",
            properties=_WHEN,
            required=("party_size", "date", "time"),
            run=_check_availability,
            reply=_availability_reply,
        ),
        Tool(
            name="book_table",
            description="Book a table under the caller's name.",
            properties={"name": {"type": "string", "description": "The caller's name."}, **_WHEN},
            required=("name", "party_size", "date", "time"),
            run=_book_table,
            reply=_booked_reply,
        ),
    ),
)

INTERRUPTION = Scenario(
    name="interruption",
    description="The caller barges in during a long answer; the bot stops where it was cut.",
    agent=LUIGIS,
    caller=(
        CallerStep("Good afternoon what are your opening hours tonight?"),
        CallerStep("Excuse me I only need your address.", barge_in_after_secs=3.0),
        CallerStep("Thank you very much and have a nice evening."),
    ),
    rules=(
        BotRule(
            "hours",
            ("open", "opening", "hours"),
            say="Tonight we open at five and close at eleven. The kitchen takes its last "
            "orders at half past ten, and on Fridays and Saturdays we also serve a late "
            "menu at the bar until midnight. If you are coming with a group of more than "
            "six people, we recommend booking ahead, because the weekend gets very busy.",
        ),
        BotRule(
            "address",
            ("address", "where"),
            say="Of course. We are at twelve Harbour Street, next to the old lighthouse. "
            "Anything else?",
        ),
        _FAREWELL,
    ),
)

SILENCE = Scenario(
    name="silence",
    description="The caller asks one question and goes quiet; the bot checks, then hangs up.",
    agent=LUIGIS,
    caller=(CallerStep("Good evening is there parking near the restaurant?"),),
    rules=(_PARKING, _FAREWELL),
    idle_prompts=(
        "Are you still there?",
        "I have not heard from you, so I will end the call now. Goodbye!",
    ),
    user_idle_secs=4.0,
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (BOOKING, INTERRUPTION, SILENCE)}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}"
        ) from None
