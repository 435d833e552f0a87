"""The call page's data: turns, tool calls, latencies, interruptions and gaps on one timeline.

Pure functions over a stored call row (and its agent and prompt revision), so each rule is
tested with plain data. The page and its JSON twin are both rendered from ``CallPage``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ...stats import percentile
from ..analytics import metric_entries
from ..sanitise import parse_embedded_json
from ..views import ended_status, iso, tool_invocations, transcript_out

__all__ = ["CallPage", "build_call_page"]

_ROLES = {"AGENT": "assistant", "CUSTOMER": "user"}
_SPEAKERS = {"assistant": "Bot", "user": "User"}


class AgentRef(BaseModel):
    id: str
    name: str
    customId: str


class PromptRef(BaseModel):
    id: str
    revision: int
    createdAt: str
    sha256: str


class CallMeta(BaseModel):
    id: str
    pipecatCallId: str
    status: str
    startedAt: str
    endedAt: str | None
    durationMs: int | None
    endedReason: str | None
    endedStatus: str | None
    finalisedBy: str | None
    agentSpokeFirst: bool | None


class Gap(BaseModel):
    chunkIndex: int
    startMs: int | None
    lengthMs: int | None
    note: str


class Recording(BaseModel):
    available: bool
    url: str | None
    peaksUrl: str | None
    durationMs: int | None
    sampleRate: int | None
    channels: int | None
    gaps: list[Gap]
    chunksReceived: int
    bytesReceived: int


class Turn(BaseModel):
    number: int
    role: str
    speaker: str
    text: str
    startMs: int
    endMs: int
    interrupted: bool
    playedFraction: float | None
    latencyMs: int | None


class Tool(BaseModel):
    toolCallId: str
    name: str
    arguments: str
    result: str | None
    startMs: int | None
    endMs: int | None


class Latency(BaseModel):
    atMs: int
    valueMs: int
    userSpeechEndMs: int | None
    turn: int | None


class Interruption(BaseModel):
    atMs: int
    botTurnOffsetMs: int | None
    playedFraction: float | None
    playedWords: int | None
    turn: int | None


class ServiceFigures(BaseModel):
    processor: str
    model: str | None
    ttfbAvg: float | None
    ttfbMax: float | None
    processingAvg: float | None
    promptTokens: int | None
    completionTokens: int | None
    ttsCharacters: int | None


class Summary(BaseModel):
    responses: int
    responseLatencyP50: float | None
    responseLatencyP95: float | None
    responseLatencyMax: float | None
    interruptions: int | None
    userTalkSeconds: float | None
    botTalkSeconds: float | None
    overlapSeconds: float | None
    silenceSeconds: float | None
    longestSilenceSeconds: float | None
    botTalkRatio: float | None
    hasMetrics: bool


class TimelineItem(BaseModel):
    """A transcript turn or a tool call, in the order the page lists them."""

    kind: str
    index: int


class CallPage(BaseModel):
    call: CallMeta
    agent: AgentRef | None
    prompt: PromptRef | None
    recording: Recording
    timelineMs: int
    turns: list[Turn]
    tools: list[Tool]
    items: list[TimelineItem]
    latencies: list[Latency]
    interruptions: list[Interruption]
    summary: Summary
    services: list[ServiceFigures]


def _pretty(text: str | None) -> str | None:
    """JSON shown indented; anything else as sent."""
    if text is None:
        return None
    value = parse_embedded_json(text)
    return text if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _turns(call: Any) -> tuple[list[Turn], dict[int, int]]:
    """The transcript's turns in onset order, and the raw transcript index of each."""
    entries = transcript_out(call).entries
    turns = [
        Turn(
            number=position + 1,
            role=_ROLES.get(entry.role or "", "user"),
            speaker=_SPEAKERS[_ROLES.get(entry.role or "", "user")],
            text=entry.text,
            startMs=entry.startOffsetMs,
            endMs=entry.endOffsetMs,
            interrupted=False,
            playedFraction=None,
            latencyMs=None,
        )
        for position, entry in enumerate(entries)
    ]
    # Metrics name turns by their index in the transcript as sent: match them by content.
    unused: dict[tuple[str, int, str], list[int]] = {}
    for position, turn in enumerate(turns):
        unused.setdefault((turn.role, turn.startMs, turn.text), []).append(position)
    by_raw: dict[int, int] = {}
    for raw_index, raw in enumerate(call.transcript or ()):
        offset = raw.get("audioOffsetMs")
        key = (str(raw.get("role")), offset if isinstance(offset, int) else -1, raw.get("content"))
        positions = unused.get(key)  # type: ignore[arg-type]
        if positions:
            by_raw[raw_index] = positions.pop(0)
    return turns, by_raw


def _assistant_at(turns: Sequence[Turn], offset_ms: int | None) -> int | None:
    if offset_ms is None:
        return None
    for position, turn in enumerate(turns):
        if turn.role == "assistant" and turn.startMs == offset_ms:
            return position
    return None


def _latencies(metrics: Sequence[Any], turns: list[Turn], by_raw: dict[int, int]) -> list[Latency]:
    found: list[Latency] = []
    for metric in metric_entries(metrics, "turn_latency"):
        value, at = _float(metric.get("value")), _int(metric.get("audioOffsetMs"))
        if value is None or at is None:
            continue
        raw = _int(metric.get("turnIndex"))
        position = by_raw.get(raw) if raw is not None else None
        if position is not None:
            turns[position].latencyMs = round(value * 1000)
        found.append(
            Latency(
                atMs=at,
                valueMs=round(value * 1000),
                userSpeechEndMs=_int(metric.get("userSpeechEndMs")),
                turn=None if position is None else position + 1,
            )
        )
    return found


def _interruptions(metrics: Sequence[Any], turns: list[Turn]) -> list[Interruption]:
    found: list[Interruption] = []
    for metric in metric_entries(metrics, "interruption"):
        at = _int(metric.get("audioOffsetMs"))
        if at is None:
            continue
        bot_turn = _int(metric.get("botTurnOffsetMs"))
        fraction = _float(metric.get("playedFraction"))
        position = _assistant_at(turns, bot_turn)
        if position is not None:
            turns[position].interrupted = True
            turns[position].playedFraction = fraction
        found.append(
            Interruption(
                atMs=at,
                botTurnOffsetMs=bot_turn,
                playedFraction=fraction,
                playedWords=_int(metric.get("playedWords")),
                turn=None if position is None else position + 1,
            )
        )
    return found


def _summary(metrics: Sequence[Any] | None, latencies: list[Latency]) -> Summary:
    summaries = metric_entries(metrics, "call_summary")
    given = summaries[-1] if summaries else {}
    values = [item.valueMs / 1000 for item in latencies]
    return Summary(
        responses=len(values),
        responseLatencyP50=percentile(values, 0.5) if values else None,
        responseLatencyP95=percentile(values, 0.95) if values else None,
        responseLatencyMax=max(values) if values else None,
        interruptions=None if metrics is None else len(metric_entries(metrics, "interruption")),
        userTalkSeconds=_float(given.get("userTalkSeconds")),
        botTalkSeconds=_float(given.get("botTalkSeconds")),
        overlapSeconds=_float(given.get("overlapSeconds")),
        silenceSeconds=_float(given.get("silenceSeconds")),
        longestSilenceSeconds=_float(given.get("longestSilenceSeconds")),
        botTalkRatio=_float(given.get("botTalkRatio")),
        hasMetrics=metrics is not None,
    )


def _total(group: dict[str, list[float]], kind: str) -> int | None:
    return int(sum(group[kind])) if kind in group else None


def _services(metrics: Sequence[Any] | None) -> list[ServiceFigures]:
    """Pipecat's service metrics folded per processor and model.

    A usage figure the service never reported (Pipecat sends usage only with
    ``enable_usage_metrics``) is None, not 0, so the page can leave it out.
    """
    groups: dict[tuple[str, str | None], dict[str, list[float]]] = {}
    for metric in metrics or ():
        if not isinstance(metric, dict) or metric.get("kind") not in (
            "ttfb",
            "processing",
            "llm_usage",
            "tts_usage",
        ):
            continue
        key = (str(metric.get("processor") or "?"), metric.get("model"))
        group = groups.setdefault(key, {})
        value = _float(metric.get("value"))
        if metric["kind"] == "llm_usage":
            group.setdefault("prompt", []).append(float(_int(metric.get("promptTokens")) or 0))
            group.setdefault("completion", []).append(
                float(_int(metric.get("completionTokens")) or 0)
            )
        elif value is not None:
            group.setdefault(str(metric["kind"]), []).append(value)
    return [
        ServiceFigures(
            processor=processor,
            model=model,
            ttfbAvg=sum(g["ttfb"]) / len(g["ttfb"]) if g.get("ttfb") else None,
            ttfbMax=max(g["ttfb"]) if g.get("ttfb") else None,
            processingAvg=sum(g["processing"]) / len(g["processing"])
            if g.get("processing")
            else None,
            promptTokens=_total(g, "prompt"),
            completionTokens=_total(g, "completion"),
            ttsCharacters=_total(g, "tts_usage"),
        )
        for (processor, model), g in sorted(groups.items(), key=lambda item: item[0][0])
    ]


def _gaps(call: Any) -> list[Gap]:
    """Where each missing chunk sits: every chunk but the last is as long as a full one."""
    raw = [g for g in call.recording_gaps or () if isinstance(g, dict)]
    full = next((g["silenceMs"] for g in raw if isinstance(g.get("silenceMs"), int)), None)
    gaps: list[Gap] = []
    for gap in raw:
        index = int(gap.get("chunkIndex", 0))
        length = gap.get("silenceMs") if isinstance(gap.get("silenceMs"), int) else None
        start = index * full if full is not None else None
        if length is None:
            start = call.recording_duration_ms if start is None else start
            note = (
                f"Chunk {index + 1} of the recording is missing; the recording ends before it, "
                "so its length is unknown."
            )
        else:
            note = (
                f"Chunk {index + 1} of the recording is missing: {length / 1000:.1f} s of "
                "silence stands in for it."
            )
        gaps.append(Gap(chunkIndex=index, startMs=start, lengthMs=length, note=note))
    return gaps


def _items(turns: Sequence[Turn], tools: Sequence[Tool]) -> list[TimelineItem]:
    # A tool call shares its offset with the reply it fed (the recording had not moved on
    # while the tool ran), so at equal offsets the tool call is listed first.
    keyed: list[tuple[float, int, TimelineItem]] = [
        (turn.startMs, 1, TimelineItem(kind="turn", index=i)) for i, turn in enumerate(turns)
    ]
    for i, tool in enumerate(tools):
        at = tool.startMs if tool.startMs is not None else float("inf")
        keyed.append((at, 0, TimelineItem(kind="tool", index=i)))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [item for _, _, item in keyed]


def build_call_page(
    call: Any,
    *,
    agent: Any | None,
    prompt: Any | None,
    prompt_revision: int | None,
    recording_url: str | None,
    peaks_url: str | None,
    received: tuple[int, int] = (0, 0),
) -> CallPage:
    """The page of ``call``; ``received`` is (chunks, bytes) of its audio uploaded so far."""
    turns, by_raw = _turns(call)
    metrics = call.metrics
    latencies = _latencies(metrics or (), turns, by_raw)
    interruptions = _interruptions(metrics or (), turns)
    tools = [
        Tool(
            toolCallId=tool.toolCallId,
            name=tool.name,
            arguments=_pretty(tool.arguments) or "",
            result=_pretty(tool.result),
            startMs=tool.startOffsetMs,
            endMs=tool.endOffsetMs,
        )
        for tool in tool_invocations(call.tool_calls, call.started_at)
    ]
    duration = call.duration_ms if call.duration_ms is not None else call.recording_duration_ms
    ends = [turn.endMs for turn in turns] + [t.endMs or t.startMs or 0 for t in tools]
    timeline = max(
        [call.recording_duration_ms or 0, *(ends or [0]), *(i.atMs for i in interruptions)]
    )
    if not call.recording_duration_ms:
        timeline = max(timeline, int(duration or 0))
    available = recording_url is not None
    return CallPage(
        call=CallMeta(
            id=call.id,
            pipecatCallId=call.pipecat_call_id,
            status=call.status,
            startedAt=iso(call.started_at or call.created_at),
            endedAt=None if call.ended_at is None else iso(call.ended_at),
            durationMs=None if duration is None else int(duration),
            endedReason=call.ended_reason,
            endedStatus=ended_status(call.ended_reason, call.finalised_by),
            finalisedBy=call.finalised_by,
            agentSpokeFirst=call.agent_spoke_first,
        ),
        agent=None
        if agent is None
        else AgentRef(id=agent.id, name=agent.name or agent.custom_id, customId=agent.custom_id),
        prompt=None
        if prompt is None or prompt_revision is None
        else PromptRef(
            id=prompt.id,
            revision=prompt_revision,
            createdAt=iso(prompt.created_at),
            sha256=prompt.prompt_sha256,
        ),
        recording=Recording(
            available=available,
            url=recording_url,
            peaksUrl=peaks_url if available else None,
            durationMs=_int(call.recording_duration_ms),
            sampleRate=call.sample_rate,
            channels=call.num_channels,
            gaps=_gaps(call),
            chunksReceived=received[0],
            bytesReceived=received[1],
        ),
        timelineMs=int(timeline),
        turns=turns,
        tools=tools,
        items=_items(turns, tools),
        latencies=latencies,
        interruptions=interruptions,
        summary=_summary(metrics, latencies),
        services=_services(metrics),
    )
