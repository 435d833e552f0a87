"""Response bodies of the REST read API (the Roark subset) and of this server's extensions.

Field names and nullability follow what the official ``roark-analytics`` SDK validates in
strict mode, so these models double as the served OpenAPI schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AgentList",
    "AgentOne",
    "AgentOut",
    "CallList",
    "CallOne",
    "CallOut",
    "DeleteOne",
    "EndedStatus",
    "EventAck",
    "IngestWarning",
    "PipecatDetails",
    "PipecatDetailsOne",
    "PromptRevisionList",
    "TranscriptOne",
]

EndedStatus = Literal[
    "PARTICIPANTS_DID_NOT_SPEAK",
    "AGENT_DID_NOT_ANSWER",
    "AGENT_DID_NOT_SPEAK",
    "AGENT_STOPPED_SPEAKING",
    "AGENT_ENDED_CALL",
    "AGENT_SAID_END_CALL_PHRASE",
    "AGENT_TRANSFERRED_CALL",
    "AGENT_BUSY",
    "AGENT_ERROR",
    "CUSTOMER_ENDED_CALL",
    "VOICE_MAIL_REACHED",
    "SILENCE_TIME_OUT",
    "PHONE_CALL_PROVIDER_CONNECTION_ERROR",
    "CUSTOMER_DID_NOT_ANSWER",
    "CUSTOMER_DID_NOT_SPEAK",
    "CUSTOMER_STOPPED_SPEAKING",
    "CUSTOMER_BUSY",
    "DIAL_ERROR",
    "MAX_DURATION_REACHED",
    "UNKNOWN",
]
RecordingAccess = Literal["AVAILABLE", "NOT_AVAILABLE", "RESTRICTED"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestWarning(_Out):
    """A value changed so that the call could be stored (docs/server.md, "Bad values")."""

    field: str
    code: Literal[
        "text_replaced",
        "text_truncated",
        "non_finite_number",
        "nested_too_deep",
        "timestamp_out_of_range",
    ]
    message: str
    original: str | None = None


class EventAck(_Out):
    """Answer to call-started and call-ended."""

    ok: bool
    callId: str
    status: Literal["IN_PROGRESS", "ENDED"]
    changed: bool
    warnings: list[IngestWarning] = []
    """What this request's values needed to be stored; empty when nothing did."""


class CallAgent(_Out):
    id: str
    endpoint: None = None


class CallCustomer(_Out):
    label: str | None = None
    phoneNumberE164: str | None = None


class CallOut(_Out):
    id: str
    callDirection: Literal["INBOUND", "OUTBOUND"]
    projectId: str
    recordingUrlAccess: RecordingAccess
    startedAt: str
    status: Literal["RINGING", "IN_PROGRESS", "ENDED"] | None = None
    endedAt: str | None = None
    durationMs: int | None = None
    endedStatus: EndedStatus | None = None
    recordingUrl: str | None = None
    title: str | None = None
    summary: str | None = None
    agents: list[CallAgent]
    customers: list[CallCustomer]
    properties: dict[str, Any]
    externalId: str | None = None
    policyIds: list[str]
    simulationJobId: str | None = None
    supersededByCallId: str | None = None
    createdAt: str
    updatedAt: str


class Pagination(_Out):
    hasMore: bool
    nextCursor: str | None
    total: int


class CallList(_Out):
    data: list[CallOut]
    pagination: Pagination


class CallOne(_Out):
    data: CallOut


class TranscriptEntry(_Out):
    participantId: str | None
    role: Literal["AGENT", "CUSTOMER"] | None
    text: str
    startOffsetMs: int
    endOffsetMs: int


class AgentParticipant(_Out):
    id: str
    type: Literal["AGENT"]
    agentId: str | None


class CustomerParticipant(_Out):
    id: str
    type: Literal["CUSTOMER"]
    customerId: str | None


class Transcript(_Out):
    entries: list[TranscriptEntry]
    participants: list[AgentParticipant | CustomerParticipant]
    transcriptionSource: Literal["CUSTOMER_AGENT_REALTIME"] | None


class TranscriptOne(_Out):
    data: Transcript


class AgentOut(_Out):
    id: str
    name: str
    customId: str | None
    description: str | None
    createdAt: str
    updatedAt: str


class AgentList(_Out):
    data: list[AgentOut]
    pagination: Pagination


class AgentOne(_Out):
    data: AgentOut


class Deleted(_Out):
    id: str
    deleted: Literal[True]


class DeleteOne(_Out):
    data: Deleted


class ToolInvocation(_Out):
    """A tool call paired with its result by ``toolCallId``."""

    toolCallId: str
    name: str
    parameters: Any
    arguments: str
    result: str | None
    startOffsetMs: int | None
    endOffsetMs: int | None
    timestamp: str
    resultTimestamp: str | None


class RecordingGap(_Out):
    chunkIndex: int
    silenceMs: int | None


class RecordingDetails(_Out):
    status: RecordingAccess
    sampleRate: int | None
    numChannels: int | None
    durationMs: int | None
    bytes: int | None
    missingChunks: list[int]
    gaps: list[RecordingGap]
    issues: list[dict[str, Any]]
    stitchCount: int
    stitchedAt: str | None


class PromptRevision(_Out):
    id: str
    sha256: str
    prompt: str
    createdAt: str


class PipecatDetails(_Out):
    """What the pipeline sent that the Roark REST shapes have no place for."""

    callId: str
    pipecatCallId: str
    agentId: str | None
    callEndedReason: str | None
    finalisedBy: Literal["call-ended", "inactivity"] | None
    agentSpokeFirst: bool | None
    promptRevisionId: str | None
    toolInvocations: list[ToolInvocation]
    metrics: list[dict[str, Any]]
    recording: RecordingDetails
    ingestWarnings: list[IngestWarning]
    """Every value changed so that the call could be stored."""


class PipecatDetailsOne(_Out):
    data: PipecatDetails


class PromptRevisionList(_Out):
    data: list[PromptRevision]
