"""The call's lifecycle bodies; call-ended built from what the observer kept and the timeline.

Plain Python with no Pipecat and no I/O: the observer hands over its transcript state,
the timeline, the speech measured on the recording and the services' metrics, and gets
the protocol's body back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..wire import CALL_ENDED, CALL_STARTED
from .metrics import Interruption, WallAt, call_metrics
from .speech import SpeechActivity, Timeline, snap_to_speech
from .timeline import CallTimeline, Moment, iso_utc
from .transcript import Placed, Transcript

__all__ = ["NOT_ATTACHED", "CallEnd", "build_call_ended", "build_call_started"]

NOT_ATTACHED = "observer_not_attached"
"""The metric that marks a call whose recorder ran without its observer: the recording is
whole, and there is no transcript."""


def build_call_started(
    call_id: str,
    wall: float,
    *,
    agent_id: str,
    agent_name: str | None = None,
    agent_prompt: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": CALL_STARTED,
        "pipecatCallId": call_id,
        "eventTimestamp": iso_utc(wall),
        "agentId": agent_id,
    }
    if agent_name:
        body["agentName"] = agent_name
    if agent_prompt:
        body["agentPrompt"] = agent_prompt
    return body


@dataclass(frozen=True, slots=True)
class CallEnd:
    """How and when the call ended, as the observer knows it."""

    call_id: str
    reason: str
    ended_wall: float
    started_at: str | None = None
    started_wall: float | None = None
    recording_format: tuple[int, int] | None = None
    metrics: bool = True
    attached: bool = True


def build_call_ended(
    end: CallEnd,
    transcript: Transcript,
    timeline: CallTimeline,
    speech: SpeechActivity,
    service_metrics: Sequence[tuple[dict[str, Any], Moment]] = (),
) -> dict[str, Any]:
    """The call-ended body. Every offset is a position on the recording; the call lasts as
    long as its recording when there is one."""
    ended_wall = end.ended_wall
    if end.recording_format is not None and end.started_wall is not None:
        ended_wall = end.started_wall + timeline.recorded_ms / 1000
    ended_at = iso_utc(end.ended_wall)
    body: dict[str, Any] = {
        "event": CALL_ENDED,
        "pipecatCallId": end.call_id,
        "eventTimestamp": ended_at,
        "callStartedAt": end.started_at,
        "callEndedAt": iso_utc(ended_wall),
        "callEndedReason": end.reason,
    }

    def wall_at(offset_ms: int) -> str:
        return timeline.iso_at(offset_ms, fallback_wall=end.started_wall or end.ended_wall)

    placed: Placed | None = timeline.position_ms if timeline.sample_rate else None
    recorded = end.recording_format is not None
    turns = transcript.transcript_with_releases(timeline.resolve, placed)
    if recorded:
        speakers = {
            "user": Timeline(speech.stretches(0)),
            "assistant": Timeline(speech.stretches(1)),
        }
        turns = _snapped(turns, speakers, wall_at)
    entries = [entry for entry, _ in turns]
    if recorded:
        _fit(entries, timeline.recorded_ms, wall_at)
    tools = transcript.tool_records(timeline.resolve)
    if entries:
        body["agentSpokeFirst"] = entries[0]["role"] == "assistant"
    if end.recording_format is not None:
        body["recordingSampleRate"], body["recordingNumChannels"] = end.recording_format
    if entries:
        body["transcript"] = entries
    if tools:
        body["toolCalls"] = tools
    if end.metrics:
        measured: list[dict[str, Any]] = []
        for entry, moment in service_metrics:
            when = timeline.resolve(moment)
            placed_entry = {**entry, "timestamp": iso_utc(when.wall)}
            if when.offset_ms is not None:
                placed_entry["audioOffsetMs"] = when.offset_ms
            measured.append(placed_entry)
        cuts = [
            Interruption(
                timeline.resolve(cut.moment).offset_ms or 0,
                timeline.resolve(cut.bot_turn_start).offset_ms if cut.bot_turn_start else None,
                *transcript.cut_words(cut, timeline.resolve, placed),
            )
            for cut in transcript.cuts
        ]
        releases = [release for _, release in turns]
        body["metrics"] = measured + call_metrics(
            entries, releases, speech if recorded else None, cuts, wall_at
        )
    if not end.attached:
        mark = {"kind": NOT_ATTACHED, "value": 1, "timestamp": wall_at(0), "audioOffsetMs": 0}
        body["metrics"] = [*body.get("metrics", []), mark]
    return body


def _fit(entries: list[dict[str, Any]], length_ms: int, wall_at: WallAt) -> None:
    """Keep every turn on the recording, and each speaker's turns apart: a turn that runs
    into the same speaker's next one ends where that one begins."""
    last: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if "endAudioOffsetMs" not in entry:
            continue
        if entry["endAudioOffsetMs"] > length_ms:
            entry["audioOffsetMs"] = min(entry["audioOffsetMs"], length_ms)
            entry["timestamp"] = wall_at(entry["audioOffsetMs"])
            _end_at(entry, length_ms, wall_at)
        previous = last.get(entry["role"])
        if previous is not None and previous["endAudioOffsetMs"] > entry["audioOffsetMs"]:
            _end_at(previous, max(previous["audioOffsetMs"], entry["audioOffsetMs"]), wall_at)
        last[entry["role"]] = entry


def _end_at(entry: dict[str, Any], end_ms: int, wall_at: WallAt) -> None:
    entry["endAudioOffsetMs"] = end_ms
    entry["endTimestamp"] = wall_at(end_ms)


def _snapped(
    turns: list[tuple[dict[str, Any], int | None]],
    speakers: dict[str, Timeline],
    wall_at: WallAt,
) -> list[tuple[dict[str, Any], int | None]]:
    """Turns placed on their speaker's speech as the recording shows it.

    A user turn's edges come from the VAD and the turn detector, which hear speech a
    little after it begins; a cut bot turn ends where the interruption reached the
    recorder, and audio already on its way still plays after it. Each channel of the
    recording says where its speech is."""
    for entry, _ in turns:
        speech = speakers.get(entry["role"])
        if speech is not None and "endAudioOffsetMs" in entry:
            start, end = snap_to_speech(entry["audioOffsetMs"], entry["endAudioOffsetMs"], speech)
            entry.update(
                audioOffsetMs=start,
                endAudioOffsetMs=end,
                timestamp=wall_at(start),
                endTimestamp=wall_at(end),
            )
    if all("audioOffsetMs" in entry for entry, _ in turns):
        return sorted(turns, key=lambda turn: turn[0]["audioOffsetMs"])
    return turns
