"""Whole scripted calls through the real pipeline (no backend): the turns, the tool calls,
what was recognised, and a stereo recording that matches the timeline."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

pytest.importorskip("hibari", reason="needs the [demo] extra")
pytest.importorskip("pocketsphinx", reason="needs the [demo] extra")

from pipecat.frames.frames import Frame, StartFrame
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection

from pipecat_roark.demo.call import CallResult, play_call
from pipecat_roark.demo.scenarios import SCENARIOS
from pipecat_roark.demo.scoring import word_error_rate

RATE = 16000


class _StereoRecorder(AudioBufferProcessor):
    """An AudioBufferProcessor that records from the start and keeps every chunk."""

    def __init__(self) -> None:
        super().__init__(num_channels=2)
        self.pcm = bytearray()
        self.add_event_handler("on_audio_data", self._keep)

    async def _keep(self, _: Any, audio: bytes, sample_rate: int, channels: int) -> None:
        assert (sample_rate, channels) == (RATE, 2)
        self.pcm.extend(audio)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.start_recording()

    def _fill_buffer_silence_gap(self, *args: Any, **kwargs: Any) -> None:
        """The caller's line never stops, so a pause of this busy test machine is not
        silence on the line (Pipecat 1.x pads wall-clock gaps over 200 ms)."""


def speech_spans(channel: np.ndarray, *, gap_secs: float = 0.45) -> list[tuple[float, float]]:
    """Where a channel has speech energy: 20 ms windows above -36 dBFS, short gaps bridged."""
    window = RATE // 50
    count = len(channel) // window
    peaks = np.abs(channel[: count * window].astype(np.int32)).reshape(count, window).max(axis=1)
    spans: list[tuple[float, float]] = []
    for index in np.flatnonzero(peaks > 500):
        start, end = index * 0.02, (index + 1) * 0.02
        if spans and start - spans[-1][1] <= gap_secs:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


async def _play(name: str) -> tuple[CallResult, np.ndarray]:
    recorder = _StereoRecorder()
    result = await play_call(SCENARIOS[name], speed=None, recorder=recorder)
    stereo = np.frombuffer(bytes(recorder.pcm), dtype="<i2").reshape(-1, 2)
    return result, stereo


@pytest.fixture(scope="module")
def booking() -> tuple[CallResult, np.ndarray]:
    return asyncio.run(_play("booking"))


def test_booking_is_a_whole_call_that_the_bot_ends(booking: Any) -> None:
    result, _ = booking
    assert result.bot_hung_up
    bot_turns = [text for text, _ in result.bot_said if text]
    assert len(bot_turns) + len(result.caller_heard) >= 6
    assert bot_turns[0] == SCENARIOS["booking"].agent.greeting
    timeline = result.timeline
    assert timeline.bot_speech[0].start_sample < timeline.caller_lines[0].start_sample
    assert [line.text for line in timeline.caller_lines] == list(SCENARIOS["booking"].caller_script)


def test_booking_caller_is_recognised_against_the_script(booking: Any) -> None:
    result, _ = booking
    assert word_error_rate(SCENARIOS["booking"].caller_script, result.caller_heard) <= 0.15


def test_booking_checks_then_books_with_results(booking: Any) -> None:
    result, _ = booking
    assert [use.name for use in result.tool_uses] == ["check_availability", "book_table"]
    assert result.tool_uses[0].result["available"] is True
    assert result.tool_uses[1].result["booked"] is True
    assert result.tool_uses[1].arguments["name"] == "Alex Morgan"


def test_booking_recording_has_each_side_where_the_timeline_puts_it(booking: Any) -> None:
    result, stereo = booking
    timeline = result.timeline
    expected_caller = [
        (timeline.seconds(line.start_sample), timeline.seconds(line.end_sample))
        for line in timeline.caller_lines
    ]
    expected_bot = [
        (timeline.seconds(s.start_sample), timeline.seconds(s.end_sample))
        for s in timeline.bot_speech
    ]
    assert speech_spans(stereo[:, 0]) == [pytest.approx(span, abs=0.1) for span in expected_caller]
    assert speech_spans(stereo[:, 1]) == [pytest.approx(span, abs=0.1) for span in expected_bot]


def test_booking_at_max_speed_is_quick(booking: Any) -> None:
    result, _ = booking
    assert result.wall_secs < 60
    assert result.duration_secs > 2 * result.wall_secs


async def test_interruption_keeps_only_the_words_that_played() -> None:
    result, stereo = await _play("interruption")
    assert result.bot_hung_up
    cut = [speech for speech in result.timeline.bot_speech if speech.interrupted]
    assert len(cut) == 1
    full_answer = next(rule.say for rule in SCENARIOS["interruption"].rules if rule.name == "hours")
    played = cut[0].text
    assert 3 <= len(played.split()) < len(full_answer.split())
    assert full_answer.startswith(played)
    # The context (and so the observer) got exactly the words that went out.
    assert (played, True) in result.bot_said
    # The caller barged in while the bot spoke, and the bot stopped soon after.
    barge_in = result.timeline.caller_lines[1]
    assert cut[0].start_sample < barge_in.start_sample < cut[0].end_sample
    assert result.timeline.seconds(cut[0].end_sample - barge_in.start_sample) < 1.0
    bot_after_cut = stereo[cut[0].end_sample + RATE // 10 : barge_in.end_sample, 1]
    assert np.abs(bot_after_cut.astype(np.int32)).max(initial=0) < 500


async def test_silence_prompts_then_hangs_up() -> None:
    result, _ = await _play("silence")
    scenario = SCENARIOS["silence"]
    assert result.bot_hung_up
    assert len(result.caller_heard) == 1
    said = [text for text, _ in result.bot_said if text]
    assert said[-2:] == list(scenario.idle_prompts)
