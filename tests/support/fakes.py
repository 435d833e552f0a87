"""Stand-ins for a voice bot's transport and services, so a user's own wiring can run offline.

Each one is a real Pipecat ``FrameProcessor`` doing the minimum its real counterpart does:
the transport's input speaks a scripted caller as 20 ms microphone frames with VAD edges,
the STT turns each utterance into a final transcript, the LLM answers by rule, the TTS
emits audio with its words, the transport's output plays it out at the clock's pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pipecat.frames.frames import (
    EndTaskFrame,
    Frame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from tests.support.pipeline import (
    FRAME_SECS,
    RATE,
    NullOutputTransport,
    Passthrough,
    silence,
    tone,
)


class _CallerInput(FrameProcessor):
    """Speaks the caller's lines into the pipeline, then ends the call."""

    def __init__(self, lines: Sequence[str], speed: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lines = list(lines)
        self._speed = speed
        self._task: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._task = asyncio.ensure_future(self._speak())

    async def _frames(self, seconds: float, *, speaking: bool) -> None:
        audio = tone(FRAME_SECS) if speaking else silence(FRAME_SECS)
        for _ in range(int(seconds / FRAME_SECS)):
            await self.push_frame(InputAudioRawFrame(audio, RATE, 1))
            await asyncio.sleep(FRAME_SECS / self._speed)

    async def _speak(self) -> None:
        await self._frames(2.0, speaking=False)  # the bot greets the caller first
        for line in self._lines:
            await self.push_frame(UserStartedSpeakingFrame())
            await self._frames(1.5, speaking=True)
            await self.push_frame(UserStoppedSpeakingFrame())
            await self.push_frame(TranscriptionFrame(line, "caller", "2026-01-01T00:00:00Z"))
            await self._frames(2.5, speaking=False)
        # Ask the task to end, as a bot does when the conversation is over.
        await self.push_frame(EndTaskFrame(), FrameDirection.UPSTREAM)


class FakeTransport:
    def __init__(self, caller_lines: Sequence[str], *, speed: float = 10.0) -> None:
        self._input = _CallerInput(caller_lines, speed)
        self._output = NullOutputTransport(speed=speed)

    def input(self) -> FrameProcessor:
        return self._input

    def output(self) -> FrameProcessor:
        return self._output


class FakeSTT(Passthrough):
    """The caller input already emits finals; a real STT would sit here."""


class FakeLLM(FrameProcessor):
    """Greets on start, then answers every final transcript by rule."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self._say("Thanks for calling, how can I help?")
        elif isinstance(frame, TranscriptionFrame):
            await self._say(f"You said {frame.text}.")

    async def _say(self, text: str) -> None:
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(text))
        await self.push_frame(LLMFullResponseEndFrame())


class FakeTTS(FrameProcessor):
    """Speaks each LLM text: audio per word, each word after its audio."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            await self.push_frame(TTSStartedFrame())
            for word in frame.text.split():
                await self.push_frame(TTSAudioRawFrame(tone(0.25, freq=220.0), RATE, 1))
                await self.push_frame(TTSTextFrame(word, "word"))
            await self.push_frame(TTSStoppedFrame())
        else:
            await self.push_frame(frame, direction)


class FakeContextAggregator:
    def __init__(self) -> None:
        self._user = Passthrough()
        self._assistant = Passthrough()

    def user(self) -> FrameProcessor:
        return self._user

    def assistant(self) -> FrameProcessor:
        return self._assistant
