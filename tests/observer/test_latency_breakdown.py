"""Where each reply's time went: Pipecat's breakdown (1.x) or the derived one (0.0.x), in
call-ended, placed on the recording, each service's part equal to the delay it took."""

from __future__ import annotations

from typing import Any

import pytest
from pipecat.frames.frames import (
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)

from pipecat_roark.observer.latency import ReplyLatency
from pipecat_roark.wire import CallEnded
from tests.observer.helpers import observer_for
from tests.support.backend import RecordingBackend
from tests.support.pipeline import CallScript, run_call
from tests.support.services import ScriptedLLM, ScriptedSTT, ScriptedTTS

STOP_SECS = 0.2
STT, LLM, TTS = 0.15, 0.35, 0.25
KEYS = {"transcription": "stt", "llm_inference": "llm", "speech_synthesis": "tts"}
PIPECAT_NAMES_PARTS = ReplyLatency().pipecat_names_parts
_CLOCK_GRAIN_SECS = 0.01


def breakdowns(ended: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in ended["metrics"] if m["kind"] == "latency_breakdown"]


def turn_latencies(ended: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {m["turnIndex"]: m for m in ended["metrics"] if m["kind"] == "turn_latency"}


async def user_turn(script: CallScript) -> None:
    """The caller speaks; the VAD hears the end ``STOP_SECS`` later and releases the turn."""
    await script.push(VADUserStartedSpeakingFrame(start_secs=0.2), UserStartedSpeakingFrame())
    script.user_speaking = True
    await script.wait(0.8)
    script.user_speaking = False
    await script.wait(STOP_SECS)  # the silence a VAD waits out
    await script.push(VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS), UserStoppedSpeakingFrame())


async def _replies(
    backend: RecordingBackend, *, speed: float, delays: tuple[float, float, float], **params: Any
) -> dict[str, Any]:
    observer = observer_for(backend)
    stt, llm, tts = (
        ScriptedSTT(delays[0], name="stt"),
        ScriptedLLM(delays[1], name="llm"),
        ScriptedTTS(delays[2], name="tts"),
    )

    async def call(script: CallScript) -> None:
        await script.wait(0.4)
        for _ in range(2):
            await user_turn(script)
            await script.wait(sum(delays) + 1.2)

    await run_call(
        [observer],
        call,
        processors=[stt, llm, tts],
        after_output=[observer.audio_processor],
        speed=speed,
        params={"enable_metrics": True, **params},
    )
    ended = backend.call_ended()
    CallEnded.model_validate(ended)
    return ended


async def test_each_service_owns_its_injected_delay(backend: RecordingBackend) -> None:
    ended = await _replies(backend, speed=1.0, delays=(STT, LLM, TTS))
    replies = breakdowns(ended)
    assert len(replies) == 2
    heard = turn_latencies(ended)
    for reply in replies:
        assert reply["source"] == ("pipecat" if PIPECAT_NAMES_PARTS else "derived")
        parts = {c["key"]: c for c in reply["contributions"]}
        owners = {key: parts[key]["owner"] for key in KEYS}
        assert owners == KEYS
        assert all(parts[key]["ownerKind"] == "service" for key in KEYS)
        # Each service's part holds at least the delay it took (a sleep never ends early;
        # 10 ms for the clock's grain). A busy machine adds lag to some part, never takes
        # from one, and the parts add up to the reply as the recording has it (below): a
        # delay counted in the wrong part, or twice, fails one of the two.
        for key, delay in (
            ("transcription", STT),
            ("llm_inference", LLM),
            ("speech_synthesis", TTS),
        ):
            assert parts[key]["durationSecs"] >= delay - _CLOCK_GRAIN_SECS, key
        assert parts["endpointing_wait"]["ownerKind"] == "setting"
        # Spanning the reply as the recording has it: the user's last word to the bot's
        # first sample, the parts end to end on the recording.
        latency = heard[reply["turnIndex"]]
        total = sum(c["durationSecs"] for c in reply["contributions"])
        assert total == pytest.approx(reply["value"])
        assert total == pytest.approx(latency["value"], abs=0.02)
        assert reply["audioOffsetMs"] == pytest.approx(latency["userSpeechEndMs"], abs=20)
        assert reply["endAudioOffsetMs"] == latency["audioOffsetMs"]
        placed = [c["audioOffsetMs"] for c in reply["contributions"] if c["key"] in KEYS]
        assert placed == sorted(placed)
        assert (
            parts["transcription"]["audioOffsetMs"]
            < parts["llm_inference"]["audioOffsetMs"]
            < parts["speech_synthesis"]["audioOffsetMs"]
            < reply["endAudioOffsetMs"]
        )


async def test_unpaced_parts_are_never_negative_and_sum_to_the_reply(
    backend: RecordingBackend,
) -> None:
    ended = await _replies(backend, speed=50.0, delays=(0.0, 0.0, 0.0))
    replies = breakdowns(ended)
    assert replies
    for reply in replies:
        durations = [c["durationSecs"] for c in reply["contributions"]]
        assert all(duration >= 0 for duration in durations)
        assert sum(durations) == pytest.approx(reply["value"])


@pytest.mark.skipif(not PIPECAT_NAMES_PARTS, reason="Pipecat 1.9+ names the parts itself")
async def test_stored_parts_are_what_pipecat_reported(backend: RecordingBackend) -> None:
    observer = observer_for(backend)
    reported: list[Any] = []
    observer.latency_observer.add_event_handler(
        "on_latency_breakdown", lambda _, breakdown: reported.append(breakdown)
    )

    async def call(script: CallScript) -> None:
        await script.wait(0.4)
        await user_turn(script)
        await script.wait(STT + LLM + TTS + 1.2)

    await run_call(
        [observer],
        call,
        processors=[ScriptedSTT(STT), ScriptedLLM(LLM), ScriptedTTS(TTS)],
        after_output=[observer.audio_processor],
        speed=2.0,
        params={"enable_metrics": True},
    )
    (reply,) = breakdowns(backend.call_ended())
    (breakdown,) = [b for b in reported if b.contributions]
    stored = [
        (c["key"], c["label"], c["owner"], c["ownerKind"], c.get("reportedSecs", c["durationSecs"]))
        for c in reply["contributions"]
    ]
    assert stored == [
        (c.key, c.label, c.owner, str(c.owner_kind), c.duration_secs)
        for c in breakdown.contributions
    ]
    assert [t["durationSecs"] for t in reply["ttfb"]] == [t.duration_secs for t in breakdown.ttfb]
    assert reply["measuredFrom"] == "user_silence"


@pytest.mark.skipif(not PIPECAT_NAMES_PARTS, reason="Pipecat 1.9+ names the parts itself")
async def test_without_pipecat_metrics_the_llm_wait_is_pipeline_time(
    backend: RecordingBackend,
) -> None:
    """``enable_metrics=False``: no TTFB marks the LLM's first token, so Pipecat cannot
    tell the LLM's wait from the frames' hops; the parts still sum to the reply."""
    ended = await _replies(backend, speed=1.0, delays=(STT, LLM, TTS), enable_metrics=False)
    for reply in breakdowns(ended):
        parts = {c["key"]: c for c in reply["contributions"]}
        assert "llm_inference" not in parts
        assert parts["transcription"]["durationSecs"] >= STT - _CLOCK_GRAIN_SECS
        assert parts["pipeline"]["durationSecs"] >= LLM - _CLOCK_GRAIN_SECS
        assert reply["ttfb"] == []
        total = sum(c["durationSecs"] for c in reply["contributions"])
        assert total == pytest.approx(reply["value"])


async def test_no_breakdown_without_metrics(backend: RecordingBackend) -> None:
    observer = observer_for(backend, metrics=False)
    assert observer.latency_observer is None


def test_parts_are_fitted_to_the_recording_when_the_pipeline_clock_ran_ahead() -> None:
    """A stalled machine: the pipeline clock counted 1.136 s, the recording holds 0.89 s
    (it records no stall). The endpointing wait gives what it has, the rest shrink in
    proportion; every part keeps what was measured, and none goes negative."""
    from pipecat_roark.observer.latency import _anchor
    from pipecat_roark.observer.reply_parts import Part

    parts = [
        Part("endpointing_wait", "Endpointing", "vad", "setting", 0.0, 0.1),
        Part("llm_inference", "LLM", "llm", "service", 0.1, 0.536),
        Part("tts_first_audio", "TTS", "tts", "service", 0.636, 0.5),
    ]
    _anchor(parts, 0.89)
    assert sum(part.duration for part in parts) == pytest.approx(0.89)
    assert all(part.duration >= 0 for part in parts)
    assert [part.reported for part in parts] == [0.1, 0.536, 0.5]
    assert parts[0].duration == 0
    assert parts[1].duration / parts[2].duration == pytest.approx(0.536 / 0.5)
    # Parts stay end to end.
    assert parts[2].start == pytest.approx(parts[1].start + parts[1].duration)


def test_time_before_the_first_observed_part_is_unattributed() -> None:
    """No endpointing wait (no VAD in the pipeline): the recording's 0.2 s before the first
    observed part is named, not dropped, so the parts span the reply heard."""
    from pipecat_roark.observer.latency import _anchor
    from pipecat_roark.observer.reply_parts import Part

    parts = [
        Part("llm_inference", "LLM", "llm", "service", 1.0, 0.5),
        Part("tts_first_audio", "TTS", "tts", "service", 1.5, 0.3),
    ]
    _anchor(parts, 1.0)
    assert [part.key for part in parts] == ["unattributed", "llm_inference", "tts_first_audio"]
    assert parts[0].duration == pytest.approx(0.2)
    assert parts[0].start + parts[0].duration == pytest.approx(parts[1].start)
    assert sum(part.duration for part in parts) == pytest.approx(1.0)
    assert [part.reported for part in parts] == [None, None, None]
