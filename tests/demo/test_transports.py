"""The caller's transport plays its lines on cue as 20 ms frames, and the output plays the
bot on the same clock: where the timeline says things happened is where the audio is."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_roark.demo._compat import PipelineParams, new_pipeline_task, run_pipeline_task
from pipecat_roark.demo.clock import PlayoutClock
from pipecat_roark.demo.scenarios import CallerStep
from pipecat_roark.demo.timeline import CallTimeline
from pipecat_roark.demo.transports import DemoTransport, LineRecording, RenderedLine

RATE = 16000


def _tone(seconds: float, frequency: float = 440.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * frequency * t) * 8000).astype("<i2").tobytes()


class _GreetingBot(FrameProcessor):
    """Speaks one second of tone as soon as the call starts, the way a TTS service would."""

    def __init__(self, seconds: float = 1.0) -> None:
        super().__init__()
        self._seconds = seconds
        self.caller_frames: list[InputAudioRawFrame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.create_task(self._speak())
        elif isinstance(frame, InputAudioRawFrame):
            self.caller_frames.append(frame)

    async def _speak(self) -> None:
        await self.push_frame(TTSStartedFrame(context_id="greeting"))
        audio = _tone(self._seconds)
        for i in range(0, len(audio), 1600):
            await self.push_frame(TTSAudioRawFrame(audio[i : i + 1600], RATE, 1))
        await self.push_frame(TTSStoppedFrame(context_id="greeting"))


async def _play(step: CallerStep, *, speed: float | None, line_secs: float = 0.5) -> dict[str, Any]:
    clock = PlayoutClock(sample_rate=RATE, speed=speed)
    timeline = CallTimeline(RATE)
    recording = LineRecording(RATE)
    line = RenderedLine(step, _tone(line_secs, 300.0))
    transport = DemoTransport(lines=[line], clock=clock, timeline=timeline, recording=recording)
    bot = _GreetingBot()
    task = new_pipeline_task(
        Pipeline([transport.input(), bot, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        enable_rtvi=False,
        idle_timeout_secs=None,
    )

    async def hang_up_after_the_line() -> None:
        while not timeline.caller_lines or (
            clock.sent_samples < timeline.caller_lines[0].end_sample + RATE // 5
        ):
            await asyncio.sleep(0.01)
        await task.queue_frame(EndFrame())

    started = time.monotonic()
    ender = asyncio.create_task(hang_up_after_the_line())
    await asyncio.wait_for(run_pipeline_task(task), 30)
    await ender
    return {
        "timeline": timeline,
        "recording": recording,
        "bot": bot,
        "wall": time.monotonic() - started,
    }


def _loud_spans(channel: np.ndarray) -> list[tuple[float, float]]:
    loud = np.abs(channel.astype(np.int32)) > 1000
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    spans = [(edges[i] / RATE, edges[i + 1] / RATE) for i in range(0, len(edges), 2)]
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] < 0.05:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _channels(recording: LineRecording, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    path = tmp_path / "line.wav"
    recording.write_wav(path)
    with wave.open(str(path)) as wav:
        assert wav.getnchannels() == 2
        assert wav.getframerate() == RATE
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    return stereo[:, 0], stereo[:, 1]


async def test_the_caller_answers_after_the_bot_and_its_pause(tmp_path: Path) -> None:
    played = await _play(CallerStep("hello", pause_secs=0.8), speed=None)
    timeline: CallTimeline = played["timeline"]

    (speech,) = timeline.bot_speech
    (line,) = timeline.caller_lines
    assert timeline.seconds(speech.start_sample) < 0.1
    assert timeline.seconds(speech.end_sample - speech.start_sample) == pytest.approx(1.0, abs=0.05)
    gap = timeline.seconds(line.start_sample - speech.end_sample)
    assert gap == pytest.approx(0.8, abs=0.1)

    caller, bot = _channels(played["recording"], tmp_path)
    assert _loud_spans(caller) == [
        pytest.approx(
            (timeline.seconds(line.start_sample), timeline.seconds(line.end_sample)), abs=0.02
        )
    ]
    assert _loud_spans(bot) == [
        pytest.approx(
            (timeline.seconds(speech.start_sample), timeline.seconds(speech.end_sample)), abs=0.02
        )
    ]


async def test_the_microphone_sends_20_ms_frames_and_never_stops() -> None:
    played = await _play(CallerStep("hello", pause_secs=0.6), speed=None)
    frames: list[InputAudioRawFrame] = played["bot"].caller_frames
    assert {len(frame.audio) for frame in frames} == {RATE // 50 * 2}
    assert {frame.sample_rate for frame in frames} == {RATE}
    total = sum(len(frame.audio) for frame in frames) // 2
    after_the_line = total - played["timeline"].caller_lines[0].end_sample
    assert after_the_line == pytest.approx(RATE // 5, abs=RATE // 10)


async def test_a_barge_in_starts_while_the_bot_is_still_speaking() -> None:
    played = await _play(CallerStep("wait", barge_in_after_secs=0.3), speed=None)
    timeline: CallTimeline = played["timeline"]
    (speech,) = timeline.bot_speech
    (line,) = timeline.caller_lines
    assert timeline.seconds(line.start_sample - speech.start_sample) == pytest.approx(0.3, abs=0.06)
    assert line.start_sample < speech.end_sample


@pytest.mark.parametrize("speed", [1.0, 4.0])
async def test_speed_accelerates_speech_but_not_waiting(speed: float) -> None:
    played = await _play(CallerStep("hello", pause_secs=0.8), speed=speed)
    # Sped up: the bot's second, the caller's pause past the settle, the line and its tail.
    sped_up = (1.0 + 0.3 + 0.5 + 0.2) / speed
    # Real time: waiting for the bot to start, and to be sure it has finished.
    real_time = 0.5
    assert played["wall"] == pytest.approx(sped_up + real_time, abs=0.35)
