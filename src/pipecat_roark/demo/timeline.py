"""What was said on the call, placed on its sample timeline by the two transports.

The caller's transport records where it put each scripted line; the output transport
records where each stretch of the bot's speech played and which of its words went out.
Progress output reads it as the call happens, and tests compare it with the recording.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BotSpeech", "CallTimeline", "CallerLine", "TimelineEvent"]


@dataclass
class CallerLine:
    """A scripted caller line, as placed on the caller's channel."""

    text: str
    start_sample: int
    end_sample: int


@dataclass
class BotSpeech:
    """One stretch of the bot's audio, from its first played chunk to its last."""

    start_sample: int
    end_sample: int
    words: list[str] = field(default_factory=list)
    interrupted: bool = False
    finished: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.words)


TimelineEvent = Literal["caller_line", "bot_started", "bot_stopped"]


class CallTimeline:
    """The call's lines and speech on one timeline, with listeners for each change."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.caller_lines: list[CallerLine] = []
        self.bot_speech: list[BotSpeech] = []
        self._listeners: list[Callable[[TimelineEvent, CallTimeline], None]] = []

    def subscribe(self, listener: Callable[[TimelineEvent, CallTimeline], None]) -> None:
        self._listeners.append(listener)

    def seconds(self, sample: int) -> float:
        return sample / self.sample_rate

    def add_caller_line(self, text: str, start_sample: int, end_sample: int) -> None:
        self.caller_lines.append(CallerLine(text, start_sample, end_sample))
        self._emit("caller_line")

    def bot_started(self, start_sample: int) -> BotSpeech:
        speech = BotSpeech(start_sample, start_sample)
        self.bot_speech.append(speech)
        self._emit("bot_started")
        return speech

    def bot_stopped(self, speech: BotSpeech, *, interrupted: bool) -> None:
        speech.interrupted = interrupted
        speech.finished = True
        self._emit("bot_stopped")

    def _emit(self, event: TimelineEvent) -> None:
        for listener in self._listeners:
            listener(event, self)
