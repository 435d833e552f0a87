"""Call analytics measured by the observer: latency, interruptions, talk time, services."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import numpy as np
import pytest
from pipecat.frames.frames import Frame, InterruptionFrame, TextFrame, TTSTextFrame
from pipecat.metrics.metrics import LLMTokenUsage
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_roark.observer.speech import SpeechActivity, overlap_ms, union
from pipecat_roark.stats import array_percentiles, percentile, percentiles
from pipecat_roark.wire import METRIC_KINDS, CallEnded
from tests.observer.helpers import channel, observer_for, roles_and_texts, speech_spans
from tests.support.backend import RecordingBackend
from tests.support.pipeline import RATE, CallScript, Capture, run_call, silence, tone

DELAYS = (0.3, 0.6, 0.9)
WORDS = ["No", "earlier", "slot.", "You", "are", "booked", "for", "two."]


def of_kind(ended: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in ended.get("metrics", []) if m["kind"] == kind]


async def _released(capture: Capture, count: int) -> None:
    while sum(isinstance(f, TTSTextFrame) for f in capture.frames) < count:
        await asyncio.sleep(0.002)


async def test_latency_interruptions_and_talk_time_match_the_audio(
    backend: RecordingBackend,
) -> None:
    observer = observer_for(backend)
    after = Capture()

    async def call(script: CallScript) -> None:
        await script.wait(0.5)
        await script.bot_says(["Hello,", "how", "can", "I", "help?"], 1.0)
        for number, delay in enumerate(DELAYS):
            await script.user_says(f"question {number}", 1.0, stt_delay=0.0)
            await script.wait(delay)  # the bot answers after a set delay
            await script.bot_says(["Answer", f"{number}."], 1.0)
        await script.wait(0.3)
        await script.user_says("one more", 0.8, stt_delay=0.0)
        await script.wait(0.4)
        await script.bot_says(WORDS, 2.4, wait=False)
        released = sum(isinstance(f, TTSTextFrame) for f in after.frames)
        await _released(after, released + 3)
        await script.push(InterruptionFrame())  # the caller cuts in after three words
        await script.user_says("wait", 0.6, stt_delay=0.0)
        await script.wait(0.5)

    await run_call([observer], call, after_output=[observer.audio_processor, after], speed=2.0)
    ended = backend.call_ended()
    CallEnded.model_validate(ended)

    pcm = backend.pcm()
    user_spans = speech_spans(channel(pcm, 0), gap_ms=150)
    bot_spans = speech_spans(channel(pcm, 1), gap_ms=150)

    latencies = [m["value"] for m in of_kind(ended, "turn_latency")]
    assert len(latencies) == len(DELAYS) + 1
    # What the recording shows, measured here independently: bot onset minus the end of the
    # user's speech before it. The observer must match it within one 20 ms audio frame.
    for metric in of_kind(ended, "turn_latency"):
        onset = min((a for a, _ in bot_spans if a >= metric["audioOffsetMs"] - 100), default=0)
        user_end = max(b for _, b in user_spans if b <= onset)
        assert metric["value"] == pytest.approx((onset - user_end) / 1000, abs=0.02)
    # The script's delays are only a lower bound: a busy machine answers later, and the
    # recording (checked above) is what the caller heard.
    for measured, expected in zip(latencies, (*DELAYS, 0.4), strict=True):
        assert measured >= expected - 0.04

    (cut,) = of_kind(ended, "interruption")
    assert cut["playedWords"] == 3
    assert cut["generatedWords"] == len(WORDS)
    assert cut["playedFraction"] == pytest.approx(3 / 8)
    cut_turn = next(t for t in ended["transcript"] if t["content"] == "No earlier slot.")
    assert cut["botTurnOffsetMs"] == cut_turn["audioOffsetMs"]

    (summary,) = of_kind(ended, "call_summary")
    # Talk time by the documented rule (pauses under 200 ms are part of the talk): on a busy
    # machine the bot's audio can reach the recording with such pauses in it.
    user_talk = sum(b - a for a, b in speech_spans(channel(pcm, 0), gap_ms=200)) / 1000
    bot_talk = sum(b - a for a, b in speech_spans(channel(pcm, 1), gap_ms=200)) / 1000
    assert summary["userTalkSeconds"] == pytest.approx(user_talk, abs=0.02 * len(user_spans))
    assert summary["botTalkSeconds"] == pytest.approx(bot_talk, abs=0.02 * len(bot_spans))
    assert summary["interruptions"] == 1
    assert summary["responseLatencyMax"] == pytest.approx(max(latencies))
    assert summary["responseLatencyP50"] == pytest.approx(percentile(latencies, 0.5))
    assert summary["durationSeconds"] == pytest.approx(len(pcm) / 4 / RATE, abs=0.02)
    assert 0 < summary["botTalkRatio"] < 1
    assert {m["kind"] for m in ended["metrics"]} <= set(METRIC_KINDS)


class MeteredService(FrameProcessor):
    """A processor that reports Pipecat's own metrics the way LLM and TTS services do."""

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame) and frame.text == "measure":
            await self.start_ttfb_metrics()
            await self.start_processing_metrics()
            await asyncio.sleep(0.05)
            await self.stop_ttfb_metrics()
            await self.stop_processing_metrics()
            await self.start_llm_usage_metrics(
                LLMTokenUsage(prompt_tokens=120, completion_tokens=30, total_tokens=150)
            )
            await self.start_tts_usage_metrics("Hello there")
        await self.push_frame(frame, direction)


async def test_service_metrics_are_sent_once_each_with_their_processor(
    backend: RecordingBackend,
) -> None:
    observer = observer_for(backend)
    service = MeteredService(name="GroqLLMService#7")

    async def call(script: CallScript) -> None:
        await script.push(TextFrame("measure"))
        await script.wait(0.5)

    await run_call(
        [observer],
        call,
        processors=[service],
        after_output=[observer.audio_processor],
        params={"enable_metrics": True, "enable_usage_metrics": True},
    )
    ended = backend.call_ended()
    service_kinds = [
        m for m in ended["metrics"] if m["kind"] in ("ttfb", "processing", "llm_usage", "tts_usage")
    ]
    mine = [m for m in service_kinds if m.get("processor") == "GroqLLMService#7"]
    assert sorted(m["kind"] for m in mine) == ["llm_usage", "processing", "ttfb", "tts_usage"]
    by_kind = {m["kind"]: m for m in mine}
    assert by_kind["ttfb"]["value"] >= 0.05  # the service's own 50 ms; a busy machine adds
    assert by_kind["llm_usage"]["promptTokens"] == 120
    assert by_kind["llm_usage"]["completionTokens"] == 30
    assert by_kind["llm_usage"]["value"] == 150
    assert by_kind["tts_usage"]["value"] == len("Hello there")
    assert all("timestamp" in m for m in mine)


async def test_a_backend_that_refuses_metrics_gets_the_call_without_them(
    backend: RecordingBackend,
) -> None:
    backend.reject_unknown_fields = True

    async def call(script: CallScript) -> None:
        await script.user_says("hello", 0.3)
        await script.bot_says(["Hi."], 0.3)

    first = observer_for(backend)
    await run_call([first], call, after_output=[first.audio_processor])
    assert backend.counts["call-ended"] == 2  # refused once, then sent without metrics
    assert "metrics" not in backend.call_ended()
    assert roles_and_texts(backend.call_ended()) == [("user", "hello"), ("assistant", "Hi.")]

    second = observer_for(backend)
    await run_call([second], call, after_output=[second.audio_processor])
    assert backend.counts["call-ended"] == 3  # remembered: no second refusal
    assert len(backend.of("call-ended")) == 2


async def test_metrics_can_be_turned_off(backend: RecordingBackend) -> None:
    observer = observer_for(backend, metrics=False)

    async def call(script: CallScript) -> None:
        await script.user_says("hello", 0.3)
        await script.bot_says(["Hi."], 0.3)

    await run_call([observer], call, after_output=[observer.audio_processor])
    assert "metrics" not in backend.call_ended()


def _stereo(left: bytes, right: bytes) -> bytes:
    lefts = struct.unpack(f"<{len(left) // 2}h", left)
    rights = struct.unpack(f"<{len(right) // 2}h", right)
    return struct.pack(
        f"<{2 * len(lefts)}h", *(v for pair in zip(lefts, rights, strict=True) for v in pair)
    )


def test_speech_is_found_where_the_samples_are_loud_across_chunk_boundaries() -> None:
    left = silence(0.5) + tone(1.0) + silence(0.5) + tone(0.5) + silence(0.5)
    right = silence(1.7) + tone(0.8) + silence(0.5)
    pcm = _stereo(left, right)
    speech = SpeechActivity()
    step = 4 * 1234  # chunks that cut windows in two
    for start in range(0, len(pcm), step):
        speech.feed(pcm[start : start + step], RATE, 2)
    assert speech.stretches(0) == [(500, 1500), (2000, 2500)]
    assert speech.stretches(1) == [(1700, 2500)]
    assert speech.duration_ms == 3000
    assert overlap_ms(speech.stretches(0), speech.stretches(1)) == 500
    assert union(speech.stretches(0), speech.stretches(1)) == [(500, 1500), (1700, 2500)]


def test_pauses_shorter_than_200_ms_do_not_split_a_stretch() -> None:
    left = tone(0.5) + silence(0.15) + tone(0.5) + silence(0.3) + tone(0.2)
    speech = SpeechActivity()
    speech.feed(_stereo(left, silence(len(left) / 2 / RATE)), RATE, 2)
    assert speech.stretches(0) == [(0, 1150), (1450, 1650)]
    assert speech.stretches(1) == []


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [([1.0], 0.5, 1.0), ([3.0, 1.0, 2.0], 0.5, 2.0), ([1.0, 2.0, 3.0, 4.0], 0.95, 3.85)],
)
def test_percentile_interpolates(values: list[float], share: float, expected: float) -> None:
    assert percentile(values, share) == pytest.approx(expected)


@pytest.mark.parametrize("size", [1, 2, 3, 20, 7_501, 225_000])
def test_the_array_percentiles_are_the_same_figures(size: int) -> None:
    """The server's percentiles over arrays (a partial sort) equal these, to the last bit."""
    values = np.round(np.random.default_rng(size).lognormal(-1.0, 0.4, size), 3)
    shares = (0.0, 0.05, 0.5, 0.95, 1.0)
    assert array_percentiles(values, *shares) == percentiles(values.tolist(), *shares)
    with pytest.raises(ValueError, match="no values"):
        array_percentiles(values[:0], 0.5)


async def test_the_vad_places_the_user_turn_on_the_speech_it_heard(
    backend: RecordingBackend,
) -> None:
    """Pipecat 1.x's turn edges come after the speech (VAD start_secs, stop_secs and the
    turn detector's wait); the turn sits on the speech, and the wait is end_of_turn."""
    from pipecat.frames.frames import (
        InputAudioRawFrame,
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
        VADUserStartedSpeakingFrame,
        VADUserStoppedSpeakingFrame,
    )

    from tests.support.pipeline import transcription

    observer = observer_for(backend)

    async def call(script: CallScript) -> None:
        await script.wait(0.5)
        script.user_speaking = True
        await script.wait(0.2)
        await script.push(VADUserStartedSpeakingFrame(start_secs=0.2, timestamp=0.0))
        await script.wait(0.1)
        await script.push(UserStartedSpeakingFrame())
        await script.wait(1.2)
        script.user_speaking = False
        await script.wait(0.3)
        await script.push(VADUserStoppedSpeakingFrame(stop_secs=0.3, timestamp=0.0))
        await script.wait(0.5)
        await script.push(UserStoppedSpeakingFrame(), transcription("a table for two"))
        await script.wait(0.4)
        await script.bot_says(["Sure."], 0.5)

    after = Capture()
    await run_call([observer], call, after_output=[observer.audio_processor, after], speed=2.0)
    ended = backend.call_ended()
    user = ended["transcript"][0]
    (speech,) = speech_spans(channel(backend.pcm(), 0))
    assert user["audioOffsetMs"] == pytest.approx(speech[0], abs=40)
    assert user["endAudioOffsetMs"] == pytest.approx(speech[1], abs=40)
    # Where the turn was released, counted independently: the microphone audio that passed
    # the recorder before the UserStoppedSpeakingFrame (the script's 0.8 s, on an idle
    # machine; a busy one moves it, and the audio shows by how much).
    mic_samples = 0
    for frame in after.frames:
        if isinstance(frame, UserStoppedSpeakingFrame):
            break
        if isinstance(frame, InputAudioRawFrame):
            mic_samples += len(frame.audio) // 2
    released_ms = mic_samples * 1000 // RATE
    (eot,) = of_kind(ended, "end_of_turn")
    assert eot["audioOffsetMs"] == pytest.approx(speech[1], abs=40)
    assert eot["value"] == pytest.approx((released_ms - speech[1]) / 1000, abs=0.04)
