"""Stored rows to REST shapes: pure functions, so each mapping rule is tested directly."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Row

from .models import (
    AgentOut,
    AgentParticipant,
    CallAgent,
    CallCustomer,
    CallOut,
    CustomerParticipant,
    EndedStatus,
    IngestWarning,
    PipecatDetails,
    RecordingDetails,
    RecordingGap,
    ToolInvocation,
    Transcript,
    TranscriptEntry,
)
from .sanitise import parse_embedded_json

__all__ = [
    "agent_out",
    "call_out",
    "ended_status",
    "iso",
    "pipecat_details",
    "tool_invocations",
    "transcript_out",
]

_AGENT_PARTICIPANT = "agent"
_CUSTOMER_PARTICIPANT = "customer"


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def ended_status(reason: str | None, finalised_by: str | None) -> EndedStatus | None:
    """The pipeline's end reason in Roark's vocabulary (a choice; Roark documents none)."""
    if reason is None and finalised_by is None:
        return None
    if finalised_by == "inactivity":
        return "SILENCE_TIME_OUT"
    if reason == "client-disconnected":
        return "CUSTOMER_ENDED_CALL"
    if reason == "agent-ended":
        return "AGENT_ENDED_CALL"
    return "UNKNOWN"


def _duration_ms(call: Row[Any]) -> int | None:
    if call.duration_ms is not None:
        return int(call.duration_ms)
    if call.recording_duration_ms is not None:
        return int(call.recording_duration_ms)
    return None


def call_out(call: Row[Any], *, recording_url: str | None) -> CallOut:
    return CallOut(
        id=call.id,
        callDirection="INBOUND",
        projectId=call.project_id,
        recordingUrlAccess="AVAILABLE" if recording_url else "NOT_AVAILABLE",
        recordingUrl=recording_url,
        startedAt=iso(call.started_at or call.created_at),
        status=call.status,
        endedAt=_iso_or_none(call.ended_at),
        durationMs=_duration_ms(call),
        endedStatus=ended_status(call.ended_reason, call.finalised_by),
        agents=[CallAgent(id=call.agent_id)] if call.agent_id else [],
        customers=[CallCustomer(label="customer")],
        properties={"pipecat_call_id": call.pipecat_call_id},
        externalId=call.pipecat_call_id,
        policyIds=[],
        createdAt=iso(call.created_at),
        updatedAt=iso(call.updated_at),
    )


def _offset_ms(offset: Any, timestamp: Any, started_at: datetime | None) -> int | None:
    """An explicit offset, else the time since the call started, else None."""
    if isinstance(offset, int):
        return offset
    if started_at is None or not isinstance(timestamp, str):
        return None
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(int((moment - started_at).total_seconds() * 1000), 0)


def transcript_out(call: Row[Any]) -> Transcript:
    entries: list[TranscriptEntry] = []
    for turn in call.transcript or ():
        role = {"assistant": "AGENT", "user": "CUSTOMER"}.get(turn.get("role"))
        if role is None:
            continue
        start = _offset_ms(turn.get("audioOffsetMs"), turn.get("timestamp"), call.started_at) or 0
        end = _offset_ms(turn.get("endAudioOffsetMs"), turn.get("endTimestamp"), call.started_at)
        entries.append(
            TranscriptEntry(
                participantId=_AGENT_PARTICIPANT if role == "AGENT" else _CUSTOMER_PARTICIPANT,
                role=role,  # type: ignore[arg-type]
                text=str(turn.get("content", "")),
                startOffsetMs=start,
                endOffsetMs=max(end if end is not None else start, start),
            )
        )
    entries.sort(key=lambda entry: (entry.startOffsetMs, entry.endOffsetMs))
    participants: list[AgentParticipant | CustomerParticipant] = [
        AgentParticipant(id=_AGENT_PARTICIPANT, type="AGENT", agentId=call.agent_id),
        CustomerParticipant(id=_CUSTOMER_PARTICIPANT, type="CUSTOMER", customerId=None),
    ]
    return Transcript(
        entries=entries,
        participants=participants,
        transcriptionSource="CUSTOMER_AGENT_REALTIME" if call.transcript else None,
    )


def tool_invocations(
    records: list[dict[str, Any]] | None, started_at: datetime | None
) -> list[ToolInvocation]:
    """Pair each tool_call with the tool_result of the same ``toolCallId``, in call order."""
    results = {
        record.get("toolCallId"): record
        for record in records or ()
        if record.get("kind") == "tool_result"
    }
    paired: list[ToolInvocation] = []
    for record in records or ():
        if record.get("kind") != "tool_call":
            continue
        result = results.get(record.get("toolCallId"))
        arguments = str(record.get("arguments", ""))
        paired.append(
            ToolInvocation(
                toolCallId=str(record.get("toolCallId", "")),
                name=str(record.get("name", "")),
                parameters=parse_embedded_json(arguments),
                arguments=arguments,
                result=None if result is None else str(result.get("content", "")),
                startOffsetMs=_offset_ms(
                    record.get("audioOffsetMs"), record.get("timestamp"), started_at
                ),
                endOffsetMs=None
                if result is None
                else _offset_ms(result.get("audioOffsetMs"), result.get("timestamp"), started_at),
                timestamp=str(record.get("timestamp", "")),
                resultTimestamp=None if result is None else str(result.get("timestamp", "")),
            )
        )
    return paired


def pipecat_details(
    call: Row[Any], *, agent_custom_id: str | None, recording_url: str | None
) -> PipecatDetails:
    gaps = [RecordingGap(**gap) for gap in call.recording_gaps or ()]
    return PipecatDetails(
        callId=call.id,
        pipecatCallId=call.pipecat_call_id,
        agentId=agent_custom_id,
        callEndedReason=call.ended_reason,
        finalisedBy=call.finalised_by,
        agentSpokeFirst=call.agent_spoke_first,
        promptRevisionId=call.prompt_id,
        toolInvocations=tool_invocations(call.tool_calls, call.started_at),
        metrics=list(call.metrics or ()),
        recording=RecordingDetails(
            status="AVAILABLE" if recording_url else "NOT_AVAILABLE",
            sampleRate=call.sample_rate,
            numChannels=call.num_channels,
            durationMs=call.recording_duration_ms,
            bytes=call.recording_bytes,
            missingChunks=[gap.chunkIndex for gap in gaps],
            gaps=gaps,
            issues=list(call.recording_issues or ()),
            stitchCount=call.stitch_count,
            stitchedAt=_iso_or_none(call.stitched_at),
        ),
        ingestWarnings=[IngestWarning.model_validate(item) for item in call.ingest_warnings or ()],
    )


def agent_out(agent: Row[Any]) -> AgentOut:
    return AgentOut(
        id=agent.id,
        name=agent.name or agent.custom_id,
        customId=agent.custom_id,
        description=None,
        createdAt=iso(agent.created_at),
        updatedAt=iso(agent.updated_at),
    )
