"""The demo's phone line: a scripted caller's microphone and a speaker on the call's clock.

``ScriptedCallerInput`` plays the caller's lines as 20 ms ``InputAudioRawFrame``s, with
silence in between, like a microphone that is always open. ``ClockedOutput`` plays the
bot's audio against the same clock (to nowhere, or into a stereo WAV of the line). Both
record where things happened on the call's :class:`~.timeline.CallTimeline`.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    SystemFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from .clock import PlayoutClock
from .scenarios import CallerStep
from .timeline import BotSpeech, CallTimeline
from .voices import PCM_SAMPLE_WIDTH

__all__ = [
    "FRAME_SECS",
    "ClockedOutput",
    "DemoTransport",
    "LineRecording",
    "RenderedLine",
    "ScriptedCallerInput",
]

FRAME_SECS = 0.02
# How long the bot must have been quiet before the caller takes it as the end of its reply
# (a reply may pause for a tool call). Waiting passes in real time, so keep it short.
SETTLE_SECS = 0.5


@dataclass(frozen=True)
class RenderedLine:
    """A caller line and its audio (16-bit mono PCM at the clock's rate)."""

    step: CallerStep
    audio: bytes


class ScriptedCallerInput(BaseInputTransport):
    """The caller's microphone: plays the script's lines, and silence, on the clock.

    A line waits for its cue: the bot's reply to the previous line has ended and the
    caller has paused (or, for a barge-in, the bot has been speaking long enough). What
    the bot is doing is read from the timeline the output transport keeps, which knows
    what was actually played.
    """

    def __init__(
        self,
        *,
        lines: Sequence[RenderedLine],
        clock: PlayoutClock,
        timeline: CallTimeline,
        params: TransportParams,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self._on_connected = on_connected
        self._lines = list(lines)
        self._clock = clock
        self._timeline = timeline
        self._frame_samples = round(clock.sample_rate * FRAME_SECS)
        self._silence = bytes(self._frame_samples * PCM_SAMPLE_WIDTH)
        self._feed: asyncio.Task[None] | None = None
        self._caller_speaking = False
        self._caller_pausing = False
        self._bot_speech_before_line = 0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._feed is None:
            self._feed = self.create_task(self._play_script(), name="scripted_caller")
            if self._on_connected is not None:
                await self._on_connected()

    async def stop(self, frame: EndFrame) -> None:
        await self._close_line()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._close_line()
        await super().cancel(frame)

    async def _close_line(self) -> None:
        if self._feed is not None:
            await self.cancel_task(self._feed)
            self._feed = None
        self._clock.close_caller()

    async def _play_script(self) -> None:
        for line in self._lines:
            await self._wait_for_cue(line.step)
            await self._say(line)
        while True:
            await self._send(self._silence)

    async def _wait_for_cue(self, step: CallerStep) -> None:
        rate = self._clock.sample_rate
        if step.barge_in_after_secs is not None:
            into_speech = round(step.barge_in_after_secs * rate)
            while (speech := self._open_bot_speech()) is None:
                await self._send(self._silence)
            await self._send_silence_until(speech.start_sample + into_speech)
            return
        settle = round(min(SETTLE_SECS, step.pause_secs) * rate)
        while not (
            len(self._timeline.bot_speech) > self._bot_speech_before_line
            and self._open_bot_speech() is None
            and self._clock.sent_samples - self._bot_speech_end() >= settle
        ):
            await self._send(self._silence)
        self._caller_pausing = True
        try:
            pause_end = self._bot_speech_end() + round(step.pause_secs * rate)
            await self._send_silence_until(pause_end)
        finally:
            self._caller_pausing = False

    def _open_bot_speech(self) -> BotSpeech | None:
        speech = self._timeline.bot_speech[-1] if self._timeline.bot_speech else None
        return speech if speech is not None and not speech.finished else None

    def _bot_speech_end(self) -> int:
        return self._timeline.bot_speech[-1].end_sample if self._timeline.bot_speech else 0

    async def _send_silence_until(self, position: int) -> None:
        while self._clock.sent_samples + self._frame_samples <= position:
            await self._send(self._silence)

    async def _say(self, line: RenderedLine) -> None:
        self._bot_speech_before_line = len(self._timeline.bot_speech)
        self._caller_speaking = True
        start = self._clock.sent_samples
        self._timeline.add_caller_line(
            line.step.text, start, start + len(line.audio) // PCM_SAMPLE_WIDTH
        )
        frame_bytes = len(self._silence)
        try:
            for offset in range(0, len(line.audio), frame_bytes):
                chunk = line.audio[offset : offset + frame_bytes]
                await self._send(chunk.ljust(frame_bytes, b"\0"))
        finally:
            self._caller_speaking = False

    async def _send(self, audio: bytes) -> None:
        speaking = self._caller_speaking or self._open_bot_speech() is not None
        waiting = not (speaking or self._caller_pausing)
        await self._clock.send(len(audio) // PCM_SAMPLE_WIDTH, waiting=waiting)
        await self.push_audio_frame(
            InputAudioRawFrame(audio=audio, sample_rate=self._clock.sample_rate, num_channels=1)
        )


class ClockedOutput(BaseOutputTransport):
    """The bot's speaker: each chunk plays once the caller's audio for its stretch has passed.

    It also keeps the timeline's account of the bot's speech: a stretch opens with its first
    played chunk and closes when Pipecat says the bot stopped, or at once when the caller
    cuts in. Frames timed by the wall clock (word frames carry a ``pts``) are played in
    order with the audio instead, since this line's clock runs at ``--speed``.
    """

    def __init__(
        self,
        *,
        clock: PlayoutClock,
        timeline: CallTimeline,
        params: TransportParams,
        recording: LineRecording | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self._clock = clock
        self._timeline = timeline
        self._recording = recording
        self._speech: BotSpeech | None = None
        self._interruptions = 0
        self._cut_off = False
        self._start_owed = False
        self._played_until = 0
        self._pending_words: list[str] = []

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self._cut_in()
        elif isinstance(frame, TTSStartedFrame):
            self._cut_off = False
        elif self._cut_off and isinstance(frame, (TTSAudioRawFrame, TTSTextFrame)):
            # The interruption overtook the end of the old reply on its way here (system
            # frames jump the queue): that tail was never meant to play.
            return
        elif (
            frame.pts
            and direction == FrameDirection.DOWNSTREAM
            and not isinstance(frame, SystemFrame)
        ):
            frame.pts = None
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            # Only now that the caller's audio has gone on downstream may the bot's audio
            # for the same stretch follow it: a recorder after this transport must never
            # see the bot ahead of the caller, or it pads the caller's track to match.
            self._clock.heard(frame.num_frames)
            if self._recording is not None:
                self._recording.add_caller(frame.audio)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._cut_off:
            return False
        start = self._speech.end_sample if self._speech else self._next_speech_start()
        end = start + frame.num_frames
        interruptions = self._interruptions
        if self._clock.caller_closed:
            await self._clock.play_alone(frame.num_frames)
        else:
            await self._clock.wait_heard(end)
        if self._interruptions != interruptions:
            # The caller cut in before this chunk's time came: it was never played.
            return False
        await self._announce_owed_start()
        speech = self._open_speech(start)
        speech.end_sample = end
        self._played_until = end
        if self._recording is not None:
            self._recording.add_bot(start, frame.audio)
        return True

    async def write_transport_frame(self, frame: Frame) -> None:
        if isinstance(frame, TTSTextFrame) and not self._cut_off:
            if self._speech is not None:
                self._speech.words.append(frame.text)
            else:
                # A reply's first word goes out just before its audio, which opens the speech.
                self._pending_words.append(frame.text)

    async def push_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        if isinstance(frame, BotStartedSpeakingFrame) and self._cut_off:
            # Pipecat had already taken a chunk of the old reply from its queue when the
            # caller cut in. That chunk is not played, so the bot has not started speaking:
            # the start is announced with the next reply's first chunk instead.
            self._start_owed = True
            return
        if isinstance(frame, BotStoppedSpeakingFrame):
            if self._start_owed:
                # The stop that goes with a start nobody heard of (down, then up).
                self._start_owed = direction == FrameDirection.DOWNSTREAM
                return
            if direction == FrameDirection.DOWNSTREAM:
                self._close_speech(interrupted=False)
        await super().push_frame(frame, direction)

    async def _announce_owed_start(self) -> None:
        if not self._start_owed:
            return
        self._start_owed = False
        downstream, upstream = BotStartedSpeakingFrame(), BotStartedSpeakingFrame()
        downstream.broadcast_sibling_id, upstream.broadcast_sibling_id = upstream.id, downstream.id
        await super().push_frame(downstream, FrameDirection.DOWNSTREAM)
        await super().push_frame(upstream, FrameDirection.UPSTREAM)

    def _cut_in(self) -> None:
        """The caller cut in: the reply stops here, and nothing plays until the next one."""
        self._interruptions += 1
        self._cut_off = True
        self._pending_words.clear()
        self._close_speech(interrupted=True)

    def _open_speech(self, start: int) -> BotSpeech:
        if self._speech is None:
            self._speech = self._timeline.bot_started(start)
            self._speech.words.extend(self._pending_words)
            self._pending_words.clear()
        return self._speech

    def _close_speech(self, *, interrupted: bool) -> None:
        if self._speech is not None:
            self._timeline.bot_stopped(self._speech, interrupted=interrupted)
            self._speech = None

    def _next_speech_start(self) -> int:
        """A new stretch of speech starts now, on the caller's timeline."""
        return max(self._played_until, self._clock.heard_samples)


class LineRecording:
    """The line as heard on both ends: caller left, bot right, on the call's timeline."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._caller = bytearray()
        self._bot = bytearray()

    def add_caller(self, audio: bytes) -> None:
        self._caller.extend(audio)

    def add_bot(self, start_sample: int, audio: bytes) -> None:
        offset = start_sample * PCM_SAMPLE_WIDTH
        if len(self._bot) < offset:
            self._bot.extend(bytes(offset - len(self._bot)))
        self._bot[offset : offset + len(audio)] = audio

    def write_wav(self, path: Path) -> None:
        import numpy as np

        length = max(len(self._caller), len(self._bot)) // PCM_SAMPLE_WIDTH
        stereo = np.zeros((length, 2), dtype="<i2")
        caller = np.frombuffer(bytes(self._caller), dtype="<i2")
        bot = np.frombuffer(bytes(self._bot), dtype="<i2")
        stereo[: len(caller), 0] = caller
        stereo[: len(bot), 1] = bot
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(PCM_SAMPLE_WIDTH)
            wav.setframerate(self.sample_rate)
            wav.writeframes(stereo.tobytes())


class DemoTransport(BaseTransport):
    """The scripted caller's line, used like any Pipecat transport.

    ``input()`` and ``output()`` go into the pipeline; ``on_client_connected`` fires when the
    caller's line opens, which is where an application starts the bot talking.
    """

    def __init__(
        self,
        *,
        lines: Sequence[RenderedLine],
        clock: PlayoutClock,
        timeline: CallTimeline,
        recording: LineRecording | None = None,
    ) -> None:
        super().__init__(name="DemoTransport")
        self._register_event_handler("on_client_connected")
        params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=clock.sample_rate,
            audio_out_enabled=True,
            audio_out_sample_rate=clock.sample_rate,
            # The call ends when the bot hangs up: no trailing silence to wait through.
            audio_out_end_silence_secs=0,
        )
        self._input = ScriptedCallerInput(
            lines=lines,
            clock=clock,
            timeline=timeline,
            params=params,
            on_connected=self._caller_connected,
            name="CallerInput",
        )
        self._output = ClockedOutput(
            clock=clock, timeline=timeline, params=params, recording=recording, name="LineOutput"
        )

    async def _caller_connected(self) -> None:
        await self._call_event_handler("on_client_connected", "caller")

    def input(self) -> ScriptedCallerInput:
        return self._input

    def output(self) -> ClockedOutput:
        return self._output
