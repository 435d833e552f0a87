"""Real Pipecat pipelines for tests: a paced output transport, a microphone, a call script.

The same code runs on Pipecat 0.0.x and 1.x. A call is played the way a transport would
deliver it: a continuous 20 ms microphone stream (speech while the script says the user
speaks, silence otherwise), VAD edges and STT finals where a VAD and an STT would put
them, and the bot's TTS audio and words played out by a real ``BaseOutputTransport``
at the pace of the clock (``speed`` times faster than real time).
"""

from __future__ import annotations

import asyncio
import math
import struct
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineParams, PipelineTask

RATE = 16000
FRAME_SECS = 0.02
FRAME_SAMPLES = int(RATE * FRAME_SECS)


def tone(seconds: float, *, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    count = int(RATE * seconds)
    return struct.pack(
        f"<{count}h",
        *(int(amplitude * math.sin(2 * math.pi * freq * i / RATE)) for i in range(count)),
    )


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(RATE * seconds)


class NullOutputTransport(BaseOutputTransport):
    """Plays audio to nowhere, taking as long as the audio lasts (divided by ``speed``)."""

    def __init__(self, *, speed: float = 1.0, **kwargs: Any) -> None:
        params = TransportParams(
            audio_out_enabled=True,
            audio_out_sample_rate=RATE,
            audio_out_end_silence_secs=0,
        )
        super().__init__(params, **kwargs)
        self._speed = speed

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: Any) -> bool:
        seconds = len(frame.audio) / (frame.sample_rate * 2 * frame.num_channels)
        await asyncio.sleep(seconds / self._speed)
        return True


class Passthrough(FrameProcessor):
    """A processor that passes everything on: one more hop for every frame."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


class Capture(FrameProcessor):
    """Remembers what reaches the end of the pipeline, to compare runs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)


def tts_text(text: str) -> TTSTextFrame:
    return TTSTextFrame(text, "word")


def transcription(text: str, **kwargs: Any) -> TranscriptionFrame:
    return TranscriptionFrame(text, "caller", "2026-01-01T00:00:00+00:00", **kwargs)


@dataclass
class CallScript:
    """Drives a call through a running task: a microphone stream plus scripted events."""

    task: PipelineTask
    speed: float = 10.0
    user_speaking: bool = False
    _mic: asyncio.Task[None] | None = None
    user_audio: list[tuple[int, int]] = field(default_factory=list)
    """Where the user's speech is on the microphone's sample timeline (start, end)."""
    _mic_samples: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the StartFrame has gone through the whole pipeline."""

    async def until_started(self, timeout: float = 30.0) -> None:
        """Wait for the pipeline to be up (``run_call`` does, before the microphone and the
        script): on a loaded machine the start can outlast the script's first pauses, and
        the microphone's backlog would then reach the recording before the bot's greeting."""
        await asyncio.wait_for(self.started.wait(), timeout)

    async def start_mic(self) -> None:
        self._mic = asyncio.ensure_future(self._run_mic())

    async def stop_mic(self) -> None:
        if self._mic is not None:
            self._mic.cancel()
            try:
                await self._mic
            except asyncio.CancelledError:
                pass

    async def _run_mic(self) -> None:
        # Frames are due by the (sped-up) clock, so a late wake-up sends the ones it owes.
        speech = tone(FRAME_SECS)
        quiet = silence(FRAME_SECS)
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        while True:
            due = int((loop.time() - started) * self.speed / FRAME_SECS) + 1
            while sent < due:
                audio = speech if self.user_speaking else quiet
                await self.task.queue_frame(
                    InputAudioRawFrame(audio=audio, sample_rate=RATE, num_channels=1)
                )
                self._mic_samples += FRAME_SAMPLES
                sent += 1
            await asyncio.sleep(FRAME_SECS / self.speed)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)

    async def push(self, *frames: Frame) -> None:
        for frame in frames:
            await self.task.queue_frame(frame)

    async def user_says(
        self,
        text: str | Sequence[str] | None,
        seconds: float = 1.0,
        *,
        vad: bool = True,
        stt_delay: float = 0.1,
    ) -> None:
        """The user speaks for ``seconds``; VAD edges around it, STT finals just after."""
        if vad:
            await self.push(UserStartedSpeakingFrame())
        self.user_speaking = True
        start = self._mic_samples
        await self.wait(seconds)
        self.user_speaking = False
        self.user_audio.append((start, self._mic_samples))
        if vad:
            await self.push(UserStoppedSpeakingFrame())
        await self.wait(stt_delay)
        segments = [text] if isinstance(text, str) else list(text or [])
        for segment in segments:
            await self.push(transcription(segment))

    async def bot_says(
        self, words: Sequence[str], seconds: float = 1.0, *, wait: bool = True
    ) -> None:
        """TTS audio and its words, queued at once as a TTS service emits them: each word
        after its audio, so the output transport releases it once that audio has played."""
        frames: list[Frame] = [TTSStartedFrame()]
        per_word = seconds / max(1, len(words))
        for word in words:
            frames.append(TTSAudioRawFrame(tone(per_word, freq=220.0), RATE, 1))
            frames.append(TTSTextFrame(word, "word"))
        frames.append(TTSStoppedFrame())
        await self.push(*frames)
        if wait:
            await self.wait(seconds + 0.3)


CallBody = Callable[[CallScript], Awaitable[None]]


async def run_call(
    observers: Sequence[Any],
    body: CallBody,
    *,
    processors: Sequence[FrameProcessor] = (),
    after_output: Sequence[FrameProcessor] = (),
    speed: float = 10.0,
    end: Frame | None = None,
    params: dict[str, Any] | None = None,
    mic: bool = True,
    task_kwargs: dict[str, Any] | None = None,
    script_class: type[CallScript] = CallScript,
) -> Capture:
    """Runs ``body`` as a call through a real PipelineTask and returns what reached the end.

    Pipeline: two pass-through hops, ``processors``, the paced output transport,
    ``after_output`` (the observer's recorder goes here), and a capture at the end.
    """
    capture = Capture()
    pipeline = Pipeline(
        [
            Passthrough(),
            Passthrough(),
            *processors,
            NullOutputTransport(speed=speed),
            *after_output,
            capture,
        ]
    )
    task = PipelineTask(
        pipeline,
        params=PipelineParams(
            **{"audio_in_sample_rate": RATE, "audio_out_sample_rate": RATE, **(params or {})}
        ),
        observers=list(observers),
        enable_rtvi=False,
        idle_timeout_secs=None,
        **(task_kwargs or {}),
    )
    script = script_class(task, speed=speed)

    @task.event_handler("on_pipeline_started")
    async def _started(*_: Any) -> None:
        script.started.set()

    async def drive() -> None:
        await script.until_started()
        if mic:
            await script.start_mic()
        try:
            await body(script)
        finally:
            await script.stop_mic()
        await task.queue_frame(end if end is not None else EndFrame())

    runner = PipelineRunner(handle_sigint=False)
    await asyncio.gather(runner.run(task), drive())
    capture.script = script  # type: ignore[attr-defined]
    return capture


__all__ = [
    "FRAME_SECS",
    "RATE",
    "CallScript",
    "CancelFrame",
    "Capture",
    "NullOutputTransport",
    "Passthrough",
    "run_call",
    "silence",
    "tone",
    "transcription",
    "tts_text",
]
