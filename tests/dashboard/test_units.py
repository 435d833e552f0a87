"""Pure pieces, fed data directly: peaks, the call page's rules, figures, charts, links."""

from __future__ import annotations

import wave
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pipecat_roark.server.analytics import call_figures
from pipecat_roark.server.dashboard.access import safe_next
from pipecat_roark.server.dashboard.agentview import Revision, prompt_diff
from pipecat_roark.server.dashboard.callview import build_call_page
from pipecat_roark.server.dashboard.charts import line_chart
from pipecat_roark.server.dashboard.templating import clock
from pipecat_roark.server.peaks import MAX_BINS, compute_peaks

T0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def _wav(path: Path, left: np.ndarray, right: np.ndarray | None, rate: int = 16000) -> Path:
    channels = 1 if right is None else 2
    frames = left if right is None else np.stack([left, right], axis=1)
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames.astype("<i2").tobytes())
    return path


def test_peaks_keep_each_channel_in_its_lane(tmp_path: Path) -> None:
    second = np.arange(16000)
    loud = (16000 * np.sin(second / 5)).astype(np.int16)
    quiet = np.zeros(16000, dtype=np.int16)
    left = np.concatenate([loud, quiet])  # the user speaks first
    right = np.concatenate([quiet, loud])  # then the bot
    peaks = compute_peaks(_wav(tmp_path / "a.wav", left, right))
    user, bot = (lane["peaks"] for lane in peaks["lanes"])
    assert [lane["label"] for lane in peaks["lanes"]] == ["user", "bot"]
    assert peaks["binMs"] == 10
    assert len(user) == len(bot) == 200
    assert min(user[:100]) > 100
    assert max(user[100:]) == 0
    assert max(bot[:100]) == 0
    assert min(bot[100:]) > 100
    assert peaks["durationMs"] == 2000


def test_a_long_recording_gets_wider_bins_not_more(tmp_path: Path) -> None:
    rate = 8000
    samples = np.full(rate * 100, 3000, dtype=np.int16)  # 100 s, mono
    peaks = compute_peaks(_wav(tmp_path / "long.wav", samples, None, rate))
    (lane,) = peaks["lanes"]
    assert lane["label"] == "mixed"
    assert len(lane["peaks"]) == MAX_BINS
    assert peaks["binMs"] == pytest.approx(100_000 / MAX_BINS)
    assert set(lane["peaks"]) == {3000 * 255 // 32767}


def _call(**fields: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "id": "c1",
        "pipecat_call_id": "pc-1",
        "status": "ENDED",
        "started_at": T0,
        "created_at": T0,
        "ended_at": T0,
        "duration_ms": 10_000,
        "recording_duration_ms": 10_000,
        "ended_reason": "client-disconnected",
        "finalised_by": "call-ended",
        "agent_spoke_first": True,
        "agent_id": None,
        "sample_rate": 16000,
        "num_channels": 2,
        "transcript": [],
        "tool_calls": [],
        "metrics": None,
        "recording_gaps": None,
    }
    return SimpleNamespace(**(values | fields))


def _turn(role: str, text: str, at: int, end: int) -> dict[str, Any]:
    return {
        "role": role,
        "content": text,
        "timestamp": T0.isoformat(),
        "endTimestamp": T0.isoformat(),
        "audioOffsetMs": at,
        "endAudioOffsetMs": end,
    }


def _page(call: SimpleNamespace) -> Any:
    return build_call_page(
        call, agent=None, prompt=None, prompt_revision=None, recording_url="/r", peaks_url="/p"
    )


def test_metrics_land_on_their_turns() -> None:
    transcript = [
        {"role": "system", "content": "be kind", "timestamp": "", "endTimestamp": ""},
        _turn("user", "hi", 100, 900),
        _turn("assistant", "hello, how can I", 1500, 2500),
        _turn("user", "wait", 2200, 2600),
    ]
    metrics = [
        {"kind": "turn_latency", "value": 0.6, "audioOffsetMs": 1500, "turnIndex": 2},
        {
            "kind": "interruption",
            "audioOffsetMs": 2200,
            "botTurnOffsetMs": 1500,
            "playedFraction": 0.5,
        },
    ]
    view = _page(_call(transcript=transcript, metrics=metrics))
    assert [t.text for t in view.turns] == ["hi", "hello, how can I", "wait"]
    bot = view.turns[1]
    assert bot.latencyMs == 600
    assert bot.interrupted is True
    assert bot.playedFraction == 0.5
    assert view.latencies[0].turn == 2
    assert view.interruptions[0].turn == 2
    assert view.summary.responseLatencyP50 == 0.6
    assert view.summary.interruptions == 1


def test_a_tool_call_is_listed_before_the_reply_it_fed() -> None:
    transcript = [_turn("user", "book it", 0, 800), _turn("assistant", "done", 1400, 2000)]
    tools = [
        {
            "kind": "tool_call",
            "toolCallId": "t",
            "name": "book",
            "arguments": '{"a":1}',
            "timestamp": T0.isoformat(),
            "audioOffsetMs": 1400,
        },
        {
            "kind": "tool_result",
            "toolCallId": "t",
            "content": "not json",
            "timestamp": "",
            "audioOffsetMs": 1400,
        },
    ]
    view = _page(_call(transcript=transcript, tool_calls=tools))
    assert [(i.kind, i.index) for i in view.items] == [("turn", 0), ("tool", 0), ("turn", 1)]
    assert view.tools[0].arguments == '{\n  "a": 1\n}'
    assert view.tools[0].result == "not json"


def test_gaps_sit_where_their_chunk_was() -> None:
    gaps = [{"chunkIndex": 1, "silenceMs": 2000}, {"chunkIndex": 4, "silenceMs": None}]
    view = _page(_call(recording_gaps=gaps))
    middle, last = view.recording.gaps
    assert (middle.startMs, middle.lengthMs) == (2000, 2000)
    assert "2.0 s of silence" in middle.note
    assert (last.startMs, last.lengthMs) == (8000, None)
    assert "length is unknown" in last.note


def test_call_figures_tell_unknown_from_none() -> None:
    transcript = [_turn("assistant", "a", 0, 1), _turn("user", "b", 2, 3)]
    without = call_figures(transcript, None, None)
    assert without["turn_count"] == 2
    assert without["response_latencies"] is None
    assert without["interruption_count"] is None
    quiet = call_figures(transcript, [], [])
    assert quiet["response_latencies"] == []
    assert quiet["interruption_count"] == 0
    assert quiet["response_latency_p50"] is None


def test_a_chart_joins_the_days_that_have_values() -> None:
    chart = line_chart("t", ["d1", "d2", "d3"], [("p50", "p50", [1.0, None, 0.5])], unit="s")
    (series,) = chart.series
    assert len(series.dots) == 2
    assert series.segments == [
        f"{chart.left},{chart.top} {chart.right},{(chart.top + chart.bottom) / 2}"
    ]
    assert chart.maximumLabel == "1.00 s"
    empty = line_chart("t", ["d1"], [("p50", "p50", [None])], unit="s")
    assert empty.empty


def test_a_prompt_diff_marks_added_and_removed_lines() -> None:
    old = Revision(id="a", number=1, sha256="", createdAt="", prompt="one\ntwo\nthree", calls=0)
    new = Revision(id="b", number=2, sha256="", createdAt="", prompt="one\n2\nthree\nfour", calls=0)
    lines = [(line.kind, line.text) for line in prompt_diff(old, new).lines]
    assert ("del", "two") in lines
    assert ("add", "2") in lines
    assert ("add", "four") in lines
    assert prompt_diff(old, old).identical


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/calls/1?x=2", "/calls/1?x=2"),
        ("//evil.example", "/calls"),
        ("/\\evil.example", "/calls"),
        ("https://evil.example/", "/calls"),
        ("calls", "/calls"),
        (None, "/calls"),
    ],
)
def test_only_paths_on_this_server_are_followed_after_login(
    given: str | None, expected: str
) -> None:
    assert safe_next(given) == expected


def test_offsets_read_as_a_clock() -> None:
    assert clock(0) == "0:00.0"
    assert clock(61_250) == "1:01.3"
    assert clock(3_723_400) == "1:02:03.4"
