"""A call made by the real observer in a real PipelineTask, sent to a live server."""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import (
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    TTSTextFrame,
)

from pipecat_roark import RoarkObserver
from pipecat_roark.delivery.delivery import default_delivery
from tests.support.pipeline import CallScript, Capture, run_call

CUT_WORDS = ["Dogs", "are", "welcome", "on", "the", "terrace", "every", "evening."]
PROMPT = "You book tables at Bella's bistro.\nBe brief.\nConfirm the time."


async def observed_call(base_url: str, key: str, *, agent_id: str = "booking-bot") -> str:
    """Plays a booking call (a tool call, an interruption) and returns its pipecatCallId."""
    observer = RoarkObserver(
        api_key=key,
        agent_id=agent_id,
        agent_name="Booking bot",
        agent_prompt=PROMPT,
        base_url=base_url,
        flush_timeout=10.0,
    )
    after = Capture()

    async def released(count: int) -> None:
        while sum(isinstance(f, TTSTextFrame) for f in after.frames) < count:
            await asyncio.sleep(0.002)

    async def call(script: CallScript) -> None:
        await script.wait(0.3)
        await script.bot_says(["Hello,", "this", "is", "Bella's", "bistro."], 1.2)
        await script.user_says("I would like to book a table for two", 1.4, stt_delay=0.0)
        await script.wait(0.5)
        arguments: dict[str, Any] = {"people": 2, "time": "19:00"}
        await script.push(
            FunctionCallInProgressFrame("book_table", "call_1", arguments),
            FunctionCallResultFrame(
                "book_table", "call_1", arguments, {"ok": True, "table": 12}, None
            ),
        )
        await script.bot_says(["Done:", "table", "twelve", "at", "seven."], 1.2)
        await script.user_says("Can I also bring my dog", 1.0, stt_delay=0.0)
        await script.wait(0.4)
        await script.bot_says(CUT_WORDS, 2.4, wait=False)
        await released(sum(isinstance(f, TTSTextFrame) for f in after.frames) + 3)
        await script.push(InterruptionFrame())
        await script.user_says("wait a second", 0.8, stt_delay=0.0)
        await script.wait(0.6)
        await script.bot_says(["Sure,", "go", "ahead."], 0.9)
        await script.wait(0.3)

    try:
        await run_call([observer], call, after_output=[observer.audio_processor, after], speed=4.0)
    finally:
        await default_delivery().aclose()
    return str(observer.pipecat_call_id)
