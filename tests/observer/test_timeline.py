"""CallTimeline and the call-ended builder, fed plain numbers: no Pipecat, no clock."""

from __future__ import annotations

from datetime import datetime

import pytest

from pipecat_roark.observer.call_ended import (
    NOT_ATTACHED,
    CallEnd,
    build_call_ended,
    build_call_started,
)
from pipecat_roark.observer.speech import SpeechActivity
from pipecat_roark.observer.timeline import CallTimeline, Moment, iso_utc
from pipecat_roark.observer.transcript import Transcript
from pipecat_roark.wire import CallEnded, CallStarted

RATE = 16000
MS = 1_000_000  # ns
WALL0 = 1_800_000_000.0


def samples(ms: int) -> int:
    return ms * RATE // 1000


def moment(frame_id: int | None, clock_ms: int | None = None, **kwargs: object) -> Moment:
    return Moment(None if clock_ms is None else clock_ms * MS, WALL0 + 999, frame_id, **kwargs)  # type: ignore[arg-type]


def a_timeline() -> CallTimeline:
    timeline = CallTimeline()
    timeline.started(RATE)
    timeline.recorded(samples(20), WALL0, 1000 * MS)  # the first 20 ms frame
    return timeline


def test_a_frame_sits_where_it_passed_the_recorder_whatever_the_clocks_said() -> None:
    timeline = a_timeline()
    timeline.recorded(samples(1000), WALL0 + 0.1, 1010 * MS)  # un-paced: 1 s in 10 ms
    timeline.crossed(7, samples(1000), 1010 * MS)
    resolved = timeline.resolve(moment(7, clock_ms=5000))
    assert resolved.offset_ms == 1000
    assert resolved.wall == pytest.approx(WALL0 + 1.0)


def test_a_broadcast_copy_is_found_by_its_sibling() -> None:
    timeline = a_timeline()
    timeline.crossed(8, samples(500), None)
    assert timeline.resolve(moment(99, sibling_id=8)).offset_ms == 500


def test_a_moment_that_never_passed_is_placed_from_the_nearest_one_before_it() -> None:
    timeline = a_timeline()
    timeline.recorded(samples(3000), WALL0 + 3, 4000 * MS)
    timeline.crossed(1, samples(1000), 2000 * MS)
    timeline.crossed(2, samples(2000), 2500 * MS)
    # 300 ms of pipeline time after frame 1: placed 300 ms after it on the recording.
    assert timeline.resolve(moment(None, clock_ms=2300)).offset_ms == 1300
    # Never past the next frame that did pass, however long the pipeline took.
    assert timeline.resolve(moment(None, clock_ms=2499)).offset_ms == 1499
    assert timeline.resolve(moment(None, clock_ms=2400 + 10_000)).offset_ms == 3000
    assert timeline.resolve(moment(None, clock_ms=10)).offset_ms == 0


def test_a_vad_edge_is_placed_its_lag_before_its_frame() -> None:
    timeline = a_timeline()
    timeline.crossed(3, samples(900), None)
    assert timeline.resolve(moment(3, lead_ms=200)).offset_ms == 700
    assert timeline.resolve(moment(3, lead_ms=2000)).offset_ms == 0


def test_the_end_is_the_end_of_the_recording() -> None:
    timeline = a_timeline()
    timeline.recorded(samples(4321), WALL0 + 0.5, None)
    assert timeline.resolve(moment(None, at_end=True)).offset_ms == 4321
    assert timeline.recorded_ms == 4321


def test_without_a_recording_moments_keep_their_wall_time_and_no_offset() -> None:
    timeline = CallTimeline()
    resolved = timeline.resolve(Moment(5 * MS, WALL0 + 2, 1, lead_ms=500))
    assert resolved.offset_ms is None
    assert resolved.wall == pytest.approx(WALL0 + 1.5)


def test_a_restarted_recorder_starts_a_new_timeline() -> None:
    timeline = a_timeline()
    timeline.crossed(4, samples(10), None)
    timeline.started(8000)
    assert timeline.position_ms(4) is None
    assert timeline.recorded_ms == 0


def test_the_recording_never_shrinks() -> None:
    timeline = a_timeline()
    timeline.recorded(samples(2000), WALL0 + 2, None)
    timeline.recorded(samples(100), WALL0 + 3, None)  # a flushed buffer reads shorter
    assert timeline.recorded_ms == 2000


def a_call() -> tuple[Transcript, CallTimeline, SpeechActivity]:
    """A bot greeting at 0-1000 ms, the caller at 1500-2500 ms, a reply at 3000-3600 ms."""
    timeline = a_timeline()
    transcript = Transcript()
    transcript.words_are_played = True
    for frame_id, at in ((10, 0), (11, 1000), (12, 1500), (13, 2500), (14, 3000), (15, 3600)):
        timeline.crossed(frame_id, samples(at), None)
    for frame_id, at in ((20, 400), (21, 900), (22, 3500)):
        timeline.crossed(frame_id, samples(at), None)
    timeline.recorded(samples(4000), WALL0 + 4, None)
    transcript.bot_started(moment(10))
    transcript.assistant_text("Hello", False, moment(20), played=False, frame_id=20)
    transcript.assistant_text("there.", False, moment(21), played=False, frame_id=21)
    transcript.bot_stopped(moment(11))
    transcript.user_started(moment(12))
    transcript.user_stopped(moment(13))
    transcript.user_text("hi", False, moment(None, clock_ms=1))
    transcript.bot_started(moment(14))
    transcript.assistant_text("Yes.", False, moment(22), played=False, frame_id=22)
    transcript.bot_stopped(moment(15))
    transcript.tool_call("t1", "look", "{}", moment(13))
    speech = SpeechActivity()
    speech.feed(_stereo([(1500, 2500)], [(0, 1000), (3000, 3600)], 4000), RATE, 2)
    return transcript, timeline, speech


def _stereo(left: list[tuple[int, int]], right: list[tuple[int, int]], length_ms: int) -> bytes:
    frames = bytearray()
    for index in range(samples(length_ms)):
        at = index * 1000 // RATE
        loud_left = any(a <= at < b for a, b in left)
        loud_right = any(a <= at < b for a, b in right)
        frames += (3000 if loud_left else 0).to_bytes(2, "little", signed=True)
        frames += (3000 if loud_right else 0).to_bytes(2, "little", signed=True)
    return bytes(frames)


def test_call_ended_places_every_turn_and_tool_on_the_recording() -> None:
    transcript, timeline, speech = a_call()
    transcript.close(moment(None, at_end=True))
    end = CallEnd("call-1", "agent-ended", WALL0 + 60, "x", WALL0, (RATE, 2))
    body = build_call_ended(end, transcript, timeline, speech)
    CallEnded.model_validate(body)
    turns = [
        (t["role"], t["content"], t["audioOffsetMs"], t["endAudioOffsetMs"])
        for t in body["transcript"]
    ]
    assert turns == [
        ("assistant", "Hello there.", 0, 1000),
        ("user", "hi", 1500, 2500),
        ("assistant", "Yes.", 3000, 3600),
    ]
    assert body["agentSpokeFirst"] is True
    assert body["toolCalls"][0]["audioOffsetMs"] == 2500
    latency = next(m for m in body["metrics"] if m["kind"] == "turn_latency")
    assert latency["value"] == pytest.approx(0.5)


def test_an_unpaced_call_lasts_as_long_as_its_recording_not_its_wall_time() -> None:
    transcript, timeline, speech = a_call()
    end = CallEnd("call-1", "agent-ended", WALL0 + 0.2, iso_utc(WALL0), WALL0, (RATE, 2))
    body = build_call_ended(end, transcript, timeline, speech)
    started = datetime.fromisoformat(body["callStartedAt"])
    ended = datetime.fromisoformat(body["callEndedAt"])
    assert (ended - started).total_seconds() == 4.0  # the recording, not the 0.2 s it took
    assert body["eventTimestamp"] == iso_utc(WALL0 + 0.2)


def test_turns_never_run_past_the_recording_or_over_the_same_speakers_next_turn() -> None:
    timeline = a_timeline()
    timeline.recorded(samples(3000), WALL0 + 3, None)
    for frame_id, at in ((1, 100), (2, 2000), (3, 1500), (4, 5000)):
        timeline.crossed(frame_id, samples(at), None)
    transcript = Transcript()
    transcript.user_started(moment(1))
    transcript.user_text("one", False, moment(None))
    transcript.user_stopped(moment(2))
    transcript.user_started(moment(3))
    transcript.user_text("two", False, moment(None))
    transcript.user_stopped(moment(4))
    transcript.close(moment(None, at_end=True))
    body = build_call_ended(
        CallEnd("c", "unknown", WALL0 + 3, None, WALL0, (RATE, 2)),
        transcript,
        timeline,
        SpeechActivity(),
    )
    first, second = body["transcript"]
    assert first["endAudioOffsetMs"] <= second["audioOffsetMs"] == 1500
    assert second["endAudioOffsetMs"] == 3000


def test_a_call_without_its_observer_is_marked_and_valid() -> None:
    _, timeline, speech = a_call()
    body = build_call_ended(
        CallEnd("c", "unknown", WALL0 + 5, None, WALL0, (RATE, 2), attached=False),
        Transcript(),
        timeline,
        speech,
    )
    CallEnded.model_validate(body)
    assert "transcript" not in body
    assert [m["kind"] for m in body["metrics"]][-1] == NOT_ATTACHED
    marks = build_call_ended(
        CallEnd("c", "unknown", WALL0 + 5, None, WALL0, (RATE, 2), metrics=False, attached=False),
        Transcript(),
        timeline,
        speech,
    )["metrics"]
    assert [m["kind"] for m in marks] == [NOT_ATTACHED]


def test_call_started_carries_the_agent() -> None:
    body = build_call_started("c", WALL0, agent_id="a", agent_name="A", agent_prompt="p")
    CallStarted.model_validate(body)
    assert (body["agentId"], body["agentName"], body["agentPrompt"]) == ("a", "A", "p")
    assert "agentName" not in build_call_started("c", WALL0, agent_id="a")
