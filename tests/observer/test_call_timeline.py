"""Every turn sits on the recording where its speech is, whoever owns the recorder.

One call (a greeting before the caller speaks, two questions, a tool call, and an answer
the caller cuts into) is played through a real pipeline with the observer's own recorder
and with a plain ``AudioBufferProcessor`` the user passed, paced in real time and
un-paced (the caller's audio pushed as fast as the pipeline takes it, the bot's played
at 20x), and once more with a competing process keeping the CPU busy. Each turn's edges
are then checked against the speech energy on its own channel of the recording the
backend received: within 150 ms, never past the end, never over the same speaker's next
turn. The tolerance is the recording's own: a few 20 ms audio frames, and the 10 ms
windows the energy is measured in.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pipecat.frames.frames import (
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    TTSTextFrame,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor

from tests.observer.helpers import channel, observer_for, speech_spans
from tests.support.backend import RecordingBackend
from tests.support.pipeline import (
    FRAME_SAMPLES,
    FRAME_SECS,
    RATE,
    CallScript,
    Capture,
    run_call,
    silence,
    tone,
)

TOLERANCE_MS = 150
CUT_WORDS = ["No", "earlier", "slot", "is", "free", "but", "seven", "works."]


class UnpacedScript(CallScript):
    """The caller's microphone pushed by the script itself, as fast as the pipeline takes
    it: the script's pauses are audio, not time."""

    async def wait(self, seconds: float) -> None:
        speech, quiet = tone(FRAME_SECS), silence(FRAME_SECS)
        for _ in range(round(seconds / FRAME_SECS)):
            audio = speech if self.user_speaking else quiet
            await self.task.queue_frame(
                InputAudioRawFrame(audio=audio, sample_rate=RATE, num_channels=1)
            )
            self._mic_samples += FRAME_SAMPLES
        await asyncio.sleep(0)


async def _released(capture: Capture, count: int) -> None:
    while sum(isinstance(f, TTSTextFrame) for f in capture.frames) < count:
        await asyncio.sleep(0.002)


def the_call(after: Capture) -> Any:
    async def bot_says(script: CallScript, words: list[str], seconds: float) -> None:
        """The bot answers and the script goes on once its words have played: un-paced,
        the script's time is the caller's audio, not the bot's."""
        released = sum(isinstance(f, TTSTextFrame) for f in after.frames)
        await script.bot_says(words, seconds, wait=False)
        await _released(after, released + len(words))
        await script.wait(0.3)

    async def call(script: CallScript) -> None:
        await script.wait(0.3)
        await bot_says(script, ["Hello,", "how", "can", "I", "help?"], 1.2)
        await script.user_says("a table for two tonight", 1.2, stt_delay=0.05)
        await script.wait(0.3)
        await script.push(
            FunctionCallInProgressFrame("check", "call_1", '{"party":2}'),
            FunctionCallResultFrame("check", "call_1", '{"party":2}', "free at seven", None),
        )
        await script.wait(0.2)
        await bot_says(script, ["We", "have", "seven."], 1.0)
        await script.user_says("anything earlier", 1.0, stt_delay=0.05)
        await script.wait(0.4)
        released = sum(isinstance(f, TTSTextFrame) for f in after.frames)
        await script.bot_says(CUT_WORDS, 2.4, wait=False)
        await _released(after, released + 3)
        await script.push(InterruptionFrame())  # the caller cuts in after three words
        await script.user_says("wait", 0.6, stt_delay=0.05)
        await script.wait(0.5)

    return call


@pytest.fixture
def busy_cpu() -> Iterator[None]:
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        process.kill()
        process.wait()


async def play(backend: RecordingBackend, *, own: bool, paced: bool) -> dict[str, Any]:
    recorder = None if own else AudioBufferProcessor(num_channels=2, buffer_size=64 * 1024)
    observer = observer_for(backend, audio_buffer_processor=recorder)
    after = Capture()
    await run_call(
        [observer],
        the_call(after),
        after_output=[observer.audio_processor, after],
        speed=1.0 if paced else 20.0,
        mic=paced,
        script_class=CallScript if paced else UnpacedScript,
    )
    return backend.call_ended()


def runs(turns: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """One speaker's turns, those that touch (the bot answers on without a pause) joined:
    the energy runs through their boundary, so only the run's edges show on the audio."""
    joined: list[list[int]] = []
    for turn in turns:
        start, end = turn["audioOffsetMs"], turn["endAudioOffsetMs"]
        if joined and start - joined[-1][1] <= TOLERANCE_MS:
            joined[-1][1] = max(joined[-1][1], end)
        else:
            joined.append([start, end])
    return [(start, end) for start, end in joined]


def assert_on_the_recording(ended: dict[str, Any], pcm: bytes) -> None:
    length_ms = len(pcm) // 4 * 1000 // RATE
    turns = ended["transcript"]
    assert [t["role"] for t in turns].count("assistant") == 3
    assert [t["role"] for t in turns].count("user") == 3
    assert turns[0]["role"] == "assistant"
    for index, role in enumerate(("user", "assistant")):
        mine = [t for t in turns if t["role"] == role]
        for turn in mine:
            assert 0 <= turn["audioOffsetMs"] <= turn["endAudioOffsetMs"] <= length_ms, turn
        for first, second in itertools.pairwise(mine):
            assert first["endAudioOffsetMs"] <= second["audioOffsetMs"], (first, second)
        spans = speech_spans(channel(pcm, index))
        for start, end in runs(mine):
            heard = [
                (a, b) for a, b in spans if a <= end + TOLERANCE_MS and b >= start - TOLERANCE_MS
            ]
            assert heard, f"no {role} speech under {start}-{end} ms: {spans}"
            assert abs(start - heard[0][0]) <= TOLERANCE_MS, (role, start, end, heard)
            assert abs(end - heard[-1][1]) <= TOLERANCE_MS, (role, start, end, heard)
    tools = ended["toolCalls"]
    assert [t["kind"] for t in tools] == ["tool_call", "tool_result"]
    assert all(0 <= t["audioOffsetMs"] <= length_ms for t in tools)
    cut = next(m for m in ended["metrics"] if m["kind"] == "interruption")
    assert cut["generatedWords"] == len(CUT_WORDS)
    assert 0 < cut["playedWords"] < len(CUT_WORDS)


@pytest.mark.parametrize("own", [True, False], ids=["own-recorder", "user-recorder"])
@pytest.mark.parametrize("paced", [True, False], ids=["paced", "unpaced"])
async def test_every_turn_lies_on_its_speech_in_the_recording(
    backend: RecordingBackend, own: bool, paced: bool
) -> None:
    ended = await play(backend, own=own, paced=paced)
    assert_on_the_recording(ended, backend.pcm())


@pytest.mark.parametrize("own", [True, False], ids=["own-recorder", "user-recorder"])
async def test_every_turn_lies_on_its_speech_with_the_cpu_busy(
    backend: RecordingBackend, own: bool, busy_cpu: None
) -> None:
    ended = await play(backend, own=own, paced=False)
    assert_on_the_recording(ended, backend.pcm())


@pytest.mark.parametrize("own", [True, False], ids=["own-recorder", "user-recorder"])
async def test_an_unpaced_call_lasts_as_long_as_its_recording(
    backend: RecordingBackend, own: bool
) -> None:
    from datetime import datetime

    ended = await play(backend, own=own, paced=False)
    started = datetime.fromisoformat(ended["callStartedAt"])
    finished = datetime.fromisoformat(ended["callEndedAt"])
    recording_secs = len(backend.pcm()) / 4 / RATE
    assert (finished - started).total_seconds() == pytest.approx(recording_secs, abs=0.1)


def _is_pipecat_1() -> bool:
    from importlib.metadata import version

    return not version("pipecat-ai").startswith("0.")


async def test_the_recorders_own_padding_is_on_the_timeline_per_pipecat_line(
    backend: RecordingBackend,
) -> None:
    """Pipecat 1.x's recorder fills a wall-clock pause of the bot's audio with silence;
    0.0.x's closes it up. Either way the bot's next turn is placed where its audio landed.
    If a Pipecat release changes its rule, the first assertion for that line says so."""
    recorder = AudioBufferProcessor(num_channels=2, buffer_size=64 * 1024)
    observer = observer_for(backend, audio_buffer_processor=recorder)

    async def call(script: CallScript) -> None:
        await script.bot_says(["One", "two."], 0.6)
        await script.wait(0.6)  # nobody speaks and no microphone streams: a real pause
        await script.bot_says(["Three."], 0.4)

    await run_call([observer], call, after_output=[observer.audio_processor], speed=1.0, mic=False)
    ended = backend.call_ended()
    spans = speech_spans(channel(backend.pcm(), 1))
    turns = [(t["audioOffsetMs"], t["endAudioOffsetMs"]) for t in ended["transcript"]]
    assert len(turns) == 2
    slack = 2 * FRAME_SECS * 1000
    if _is_pipecat_1():
        assert len(spans) == 2, "Pipecat 1.x no longer pads a wall-clock pause"
        assert spans[1][0] - spans[0][1] >= 700
        heard = spans
    else:
        assert len(spans) == 1, "Pipecat 0.0.x now pads a wall-clock pause"
        (whole,) = spans
        heard = [(whole[0], whole[0] + 600), (whole[0] + 600, whole[1])]  # 0.6 s, then 0.4 s
    for (start, end), (heard_start, heard_end) in zip(turns, heard, strict=True):
        assert abs(start - heard_start) <= slack, (turns, spans)
        assert abs(end - heard_end) <= slack, (turns, spans)
