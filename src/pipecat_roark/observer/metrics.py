"""The numbers voice-agent teams watch, from a finished call: latency, interruptions, talk.

Plain functions over the call's resolved transcript, the speech measured on the recording,
the interruptions and the service metrics Pipecat reported. Every kind and its fields are
listed in the README ("Metrics"); ``wire.METRIC_KINDS`` names them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..stats import percentile
from .speech import SpeechActivity, Timeline, overlap_ms, union

__all__ = ["Interruption", "call_metrics", "service_metric"]

_ONSET_SLACK_MS = 100

WallAt = Callable[[int], str]
"""The ISO timestamp of a recording offset."""


@dataclass(frozen=True, slots=True)
class Interruption:
    offset_ms: int
    bot_turn_offset_ms: int | None
    played_words: int
    generated_words: int


def service_metric(data: Any) -> dict[str, Any] | None:
    """One entry of a Pipecat ``MetricsFrame`` as a metric, or None for kinds not kept."""
    kind = _SERVICE_KINDS.get(type(data).__name__)
    if kind is None:
        return None
    entry: dict[str, Any] = {"kind": kind}
    processor = getattr(data, "processor", None)
    model = getattr(data, "model", None)
    if processor:
        entry["processor"] = str(processor)
    if model:
        entry["model"] = str(model)
    value = getattr(data, "value", None)
    if kind == "llm_usage":
        prompt = int(getattr(value, "prompt_tokens", 0) or 0)
        completion = int(getattr(value, "completion_tokens", 0) or 0)
        total = int(getattr(value, "total_tokens", 0) or prompt + completion)
        entry.update(promptTokens=prompt, completionTokens=completion, value=total)
    elif isinstance(value, (int, float)):
        if kind in ("ttfb", "processing") and not value:
            return None  # the zeros a pipeline task reports for every service at start
        entry["value"] = int(value) if kind == "tts_usage" else float(value)
    else:
        return None
    return entry


_SERVICE_KINDS = {
    "TTFBMetricsData": "ttfb",
    "ProcessingMetricsData": "processing",
    "LLMUsageMetricsData": "llm_usage",
    "TTSUsageMetricsData": "tts_usage",
}


def call_metrics(
    transcript: Sequence[dict[str, Any]],
    releases: Sequence[int | None],
    speech: SpeechActivity | None,
    interruptions: Sequence[Interruption],
    wall_at: WallAt,
) -> list[dict[str, Any]]:
    """Per-turn latency and end-of-turn delay, interruptions, and the call's summary."""
    user = Timeline(speech.stretches(0) if speech else [])
    bot = Timeline(speech.stretches(1) if speech else [])
    metrics: list[dict[str, Any]] = []
    latencies: list[float] = []
    previous: dict[str, Any] | None = None
    for index, (turn, release) in enumerate(zip(transcript, releases, strict=True)):
        if turn["role"] == "user" and release is not None:
            delay = _end_of_turn(turn, release, user)
            if delay is not None:
                metrics.append(
                    {
                        "kind": "end_of_turn",
                        "value": delay[1] / 1000,
                        "audioOffsetMs": delay[0],
                        "timestamp": wall_at(delay[0]),
                        "turnIndex": index,
                    }
                )
        if turn["role"] == "assistant" and previous is not None and previous["role"] == "user":
            latency = _response_latency(previous, turn, user, bot)
            if latency is not None:
                user_end, bot_onset = latency
                latencies.append((bot_onset - user_end) / 1000)
                metrics.append(
                    {
                        "kind": "turn_latency",
                        "value": latencies[-1],
                        "audioOffsetMs": bot_onset,
                        "userSpeechEndMs": user_end,
                        "timestamp": wall_at(bot_onset),
                        "turnIndex": index,
                    }
                )
        previous = turn
    for cut in interruptions:
        entry: dict[str, Any] = {
            "kind": "interruption",
            "audioOffsetMs": cut.offset_ms,
            "timestamp": wall_at(cut.offset_ms),
            "playedWords": cut.played_words,
            "generatedWords": cut.generated_words,
        }
        if cut.generated_words:
            entry["playedFraction"] = round(cut.played_words / cut.generated_words, 4)
        if cut.bot_turn_offset_ms is not None:
            entry["botTurnOffsetMs"] = cut.bot_turn_offset_ms
            entry["value"] = max(0, cut.offset_ms - cut.bot_turn_offset_ms) / 1000
        metrics.append(entry)
    metrics.append(_summary(latencies, len(interruptions), user, bot, speech, wall_at))
    return metrics


def _response_latency(
    user_turn: dict[str, Any], bot_turn: dict[str, Any], user: Timeline, bot: Timeline
) -> tuple[int, int] | None:
    """(user speech end, bot audio onset): from the audio when it shows them, else the edges."""
    if "audioOffsetMs" not in bot_turn:
        return None
    edge = bot_turn["audioOffsetMs"]
    onset = bot.first_start(edge - _ONSET_SLACK_MS, edge + 2000)
    if onset is None:
        onset = edge
    turn_start = user_turn.get("audioOffsetMs", 0) - _ONSET_SLACK_MS
    user_end = user.last_end(turn_start, onset, started_from=turn_start)
    if user_end is None:
        user_end = user_turn.get("endAudioOffsetMs")
    if user_end is None or user_end > onset:
        return None
    return user_end, onset


def _end_of_turn(turn: dict[str, Any], released: int, user: Timeline) -> tuple[int, int] | None:
    """(speech end, delay ms): how long after the caller went quiet the turn was released.

    The speech end is measured on the recording; without audio, the VAD's own estimate
    (the turn's end) stands in."""
    start = turn.get("audioOffsetMs", 0) - _ONSET_SLACK_MS
    speech_end = user.last_end(start, released + _ONSET_SLACK_MS, started_from=start)
    if speech_end is None:
        speech_end = turn.get("endAudioOffsetMs")
    if speech_end is None:
        return None
    speech_end = min(speech_end, released)
    return speech_end, released - speech_end


def _summary(
    latencies: list[float],
    interruptions: int,
    user_speech: Timeline,
    bot_speech: Timeline,
    speech: SpeechActivity | None,
    wall_at: WallAt,
) -> dict[str, Any]:
    user, bot = user_speech.stretches, bot_speech.stretches
    duration = speech.duration_ms if speech else 0
    user_ms = sum(end - start for start, end in user)
    bot_ms = sum(end - start for start, end in bot)
    spoken = union(user, bot)
    gaps = [b[0] - a[1] for a, b in pairwise(spoken)]
    summary: dict[str, Any] = {
        "kind": "call_summary",
        "audioOffsetMs": 0,
        "timestamp": wall_at(0),
        "value": duration / 1000,
        "durationSeconds": duration / 1000,
        "responses": len(latencies),
        "interruptions": interruptions,
        "userTalkSeconds": user_ms / 1000,
        "botTalkSeconds": bot_ms / 1000,
        "overlapSeconds": overlap_ms(user, bot) / 1000,
        "silenceSeconds": max(0, duration - sum(e - s for s, e in spoken)) / 1000,
        "longestSilenceSeconds": max(gaps, default=0) / 1000,
    }
    if user_ms + bot_ms:
        summary["botTalkRatio"] = round(bot_ms / (user_ms + bot_ms), 4)
    if latencies:
        summary["responseLatencyP50"] = round(percentile(latencies, 0.5), 4)
        summary["responseLatencyP95"] = round(percentile(latencies, 0.95), 4)
        summary["responseLatencyMax"] = round(max(latencies), 4)
    return summary
