"""The transcript state, fed plain calls: which turn a word, a final or a cut belongs to."""

from __future__ import annotations

from pipecat_roark.observer.timeline import CallTimeline, Moment
from pipecat_roark.observer.transcript import Transcript

RATE = 16000


def at(frame_id: int, clock_ms: int = 0) -> Moment:
    return Moment(clock_ms * 1_000_000, 0.0, frame_id)


def placed(positions: dict[int, int]) -> CallTimeline:
    timeline = CallTimeline()
    timeline.started(RATE)
    timeline.recorded(RATE * 60, 0.0, None)
    for frame_id, ms in positions.items():
        timeline.crossed(frame_id, ms * RATE // 1000, None)
    return timeline


def test_a_late_final_stays_in_the_turn_it_was_spoken_in() -> None:
    transcript = Transcript()
    transcript.user_started(at(1))
    transcript.user_stopped(at(2))
    transcript.bot_started(at(3))  # the reply began before the STT final came
    transcript.user_text("book a table", False, at(4))
    transcript.bot_stopped(at(5))
    transcript.close(at(6))
    timeline = placed({1: 0, 2: 1000, 3: 1500, 4: 1600, 5: 2000})
    turns = transcript.transcript(timeline.resolve)
    assert [(t["role"], t["audioOffsetMs"]) for t in turns] == [("user", 0)]


def test_without_vad_edges_the_bot_starting_ends_the_user_turn() -> None:
    transcript = Transcript()
    transcript.user_text("hello", False, at(1))
    transcript.user_text("there", False, at(2))
    transcript.bot_started(at(3))
    transcript.user_text("again", False, at(4))
    transcript.close(at(5))
    timeline = placed({1: 100, 2: 200, 3: 300, 4: 400, 5: 500})
    assert [t["content"] for t in transcript.transcript(timeline.resolve)] == [
        "hello there",
        "again",
    ]


def test_a_cut_turn_counts_the_words_made_for_it_in_their_own_order() -> None:
    """Un-paced, the next reply's words can be generated before the cut turn's end is seen:
    the words' own order and where they played decide, not when the observer saw them."""
    transcript = Transcript()
    transcript.words_are_played = True
    transcript.bot_started(at(1))
    for frame_id, word in zip(range(10, 14), ["No", "earlier", "slot", "today."], strict=True):
        transcript.assistant_text(word, False, at(frame_id), played=False, frame_id=frame_id)
    transcript.interrupted(at(2))
    transcript.bot_stopped(at(3))  # the audio already on its way played out to here
    transcript.bot_started(at(4))
    transcript.assistant_text("Sorry.", False, at(20), played=False, frame_id=20)
    transcript.bot_stopped(at(5))
    transcript.close(at(6))
    timeline = placed({1: 1000, 10: 1200, 11: 1400, 2: 1500, 3: 1600, 4: 3000, 20: 3300, 5: 3500})
    turns = transcript.transcript(timeline.resolve, timeline.position_ms)
    assert [(t["content"], t["audioOffsetMs"], t["endAudioOffsetMs"]) for t in turns] == [
        ("No earlier", 1000, 1600),
        ("Sorry.", 3000, 3500),
    ]
    (cut,) = transcript.cuts
    assert transcript.cut_words(cut, timeline.resolve, timeline.position_ms) == (2, 4)


def test_a_turn_nobody_heard_is_left_out() -> None:
    transcript = Transcript()
    transcript.words_are_played = True
    transcript.bot_started(at(1))
    transcript.assistant_text("unheard", False, at(10), played=False, frame_id=10)
    transcript.bot_stopped(at(2))
    transcript.close(at(3))
    timeline = placed({1: 100, 2: 200})
    assert transcript.transcript(timeline.resolve, timeline.position_ms) == []


def test_each_tool_call_and_result_is_kept_once() -> None:
    transcript = Transcript()
    for _ in range(3):
        transcript.tool_call("t1", "look", '{"q":1}', at(1))
        transcript.tool_result("t1", "ok", at(2))
    timeline = placed({1: 100, 2: 200})
    records = transcript.tool_records(timeline.resolve)
    assert [(r["kind"], r["audioOffsetMs"]) for r in records] == [
        ("tool_call", 100),
        ("tool_result", 200),
    ]
