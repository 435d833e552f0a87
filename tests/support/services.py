"""Scripted STT, LLM and TTS processors whose delays are set by the test.

Each answers the frame a real service answers (a VAD stop, a transcription, the LLM's
text) after its delay, without holding up the frames behind it, and reports its TTFB the
way Pipecat's services do. The same code runs on Pipecat 0.0.x and 1.x.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import (
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from tests.support.pipeline import RATE, tone, transcription


class _Scripted(FrameProcessor):
    """Answers in a task of its own, so frames behind the one it answers are not held."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self._tasks: set[asyncio.Task[None]] = set()

    def can_generate_metrics(self) -> bool:
        return True

    def answer(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cleanup(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await super().cleanup()


class ScriptedSTT(_Scripted):
    """Transcribes ``delay`` seconds after the VAD says the user stopped."""

    def __init__(self, delay: float, text: str = "a table for two", **kwargs: Any) -> None:
        super().__init__(delay, **kwargs)
        self.text = text

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self.answer(self._transcribe())

    async def _transcribe(self) -> None:
        await self.start_ttfb_metrics()
        await asyncio.sleep(self.delay)
        await self.stop_ttfb_metrics()
        await self.push_frame(transcription(self.text))


class ScriptedLLM(_Scripted):
    """Starts its response at once and streams its first token ``delay`` seconds later."""

    def __init__(self, delay: float, reply: str = "Sure.", **kwargs: Any) -> None:
        super().__init__(delay, **kwargs)
        self.reply = reply

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if type(frame).__name__ == "TranscriptionFrame":
            self.answer(self._respond())
        await self.push_frame(frame, direction)

    async def _respond(self) -> None:
        await self.push_frame(LLMFullResponseStartFrame())
        await self.start_ttfb_metrics()
        await asyncio.sleep(self.delay)
        await self.stop_ttfb_metrics()
        await self.push_frame(LLMTextFrame(self.reply))
        await self.push_frame(LLMFullResponseEndFrame())


class ScriptedTTS(_Scripted):
    """Speaks the LLM's text; its first audio comes ``delay`` seconds after the text."""

    def __init__(self, delay: float, seconds: float = 0.6, **kwargs: Any) -> None:
        super().__init__(delay, **kwargs)
        self.seconds = seconds

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            self.answer(self._speak(frame.text))
            return
        await self.push_frame(frame, direction)

    async def _speak(self, text: str) -> None:
        await self.start_ttfb_metrics()
        await asyncio.sleep(self.delay)
        await self.stop_ttfb_metrics()
        await self.push_frame(TTSStartedFrame())
        await self.push_frame(TTSAudioRawFrame(tone(self.seconds, freq=220.0), RATE, 1))
        await self.push_frame(TTSTextFrame(text, "sentence"))
        await self.push_frame(TTSStoppedFrame())
