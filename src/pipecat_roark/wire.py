"""The ingestion protocol's shapes, shared by the observer and the server.

One definition of every request and response body of the protocol (docs/protocol.md). The
observer builds plain dicts with these field names (cheap, no validation on the
call's path); the server parses request bodies with these models, and the tests
validate everything the observer sends against them, so both halves cannot drift.

Nothing here imports Pipecat: the server depends on this module alone.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "API_KEY_HEADER",
    "CALL_ENDED",
    "CALL_ID_PATTERN",
    "CALL_STARTED",
    "CHUNK_CONTENT_TYPE",
    "CHUNK_UPLOAD_URL_PATH",
    "DEFAULT_BASE_URL",
    "EVENTS_PATH",
    "EXTENSION_FIELDS",
    "MAX_CALL_ID_LENGTH",
    "METRIC_KINDS",
    "CallEnded",
    "CallStarted",
    "ChunkUploadUrlRequest",
    "ChunkUploadUrlResponse",
    "Metric",
    "ToolCall",
    "ToolRecord",
    "ToolResult",
    "TranscriptTurn",
    "finite_json",
    "unwrap_data",
]

DEFAULT_BASE_URL = "https://api.roark.ai"
EVENTS_PATH = "/v1/integrations/pipecat"
CHUNK_UPLOAD_URL_PATH = "/v1/integrations/pipecat/chunk-upload-url"
API_KEY_HEADER = "x-roark-api-key"
CHUNK_CONTENT_TYPE = "audio/pcm"

CALL_STARTED = "call-started"
CALL_ENDED = "call-ended"

MAX_CALL_ID_LENGTH = 256

# call-ended fields that are this project's extensions to Roark's protocol. A backend
# that rejects them gets the same call-ended again without them.
EXTENSION_FIELDS = ("metrics",)

# Metric kinds the observer sends (see the README's metrics table). A backend stores
# kinds it does not know as they are.
METRIC_KINDS = (
    "turn_latency",
    "end_of_turn",
    "interruption",
    "ttfb",
    "processing",
    "llm_usage",
    "tts_usage",
    "call_summary",
    "latency_breakdown",
)

# Any text a transport uses as an id ("#" and "/" included: WebRTC pc_ids have them), but
# no control characters; the id is opaque and never part of a path.
CALL_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
CallId = Annotated[str, Field(min_length=1, max_length=MAX_CALL_ID_LENGTH, pattern=CALL_ID_PATTERN)]
OffsetMs = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    """A protocol body: unknown fields are an error, so a typo cannot pass unseen."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CallStarted(_Strict):
    event: Literal["call-started"]
    pipecatCallId: CallId
    eventTimestamp: str
    agentId: Annotated[str, Field(min_length=1, max_length=256)]
    agentName: str | None = None
    agentPrompt: str | None = None


class ChunkUploadUrlRequest(_Strict):
    pipecatCallId: CallId
    chunkIndex: Annotated[int, Field(ge=0, le=1_000_000)]
    contentType: Literal["audio/pcm"] = "audio/pcm"


class ChunkUploadUrlResponse(BaseModel):
    """What a backend answers to a presign request (possibly inside ``data``)."""

    model_config = ConfigDict(extra="allow")

    uploadUrl: str
    s3Key: str | None = None
    chunkIndex: int | None = None
    expiresInSeconds: int | None = None
    method: Literal["PUT"] = "PUT"
    contentType: str = CHUNK_CONTENT_TYPE


class TranscriptTurn(_Strict):
    role: Literal["user", "assistant", "system"]
    content: str
    timestamp: str
    endTimestamp: str
    audioOffsetMs: OffsetMs | None = None
    endAudioOffsetMs: OffsetMs | None = None
    userId: str | None = None
    language: str | None = None


class ToolCall(_Strict):
    kind: Literal["tool_call"]
    toolCallId: str
    name: str
    arguments: str
    timestamp: str
    audioOffsetMs: OffsetMs | None = None


class ToolResult(_Strict):
    kind: Literal["tool_result"]
    toolCallId: str
    content: str
    timestamp: str
    audioOffsetMs: OffsetMs | None = None


ToolRecord = Annotated[ToolCall | ToolResult, Field(discriminator="kind")]


class Metric(BaseModel):
    """One measurement; each kind carries its own extra fields (README, "Metrics")."""

    model_config = ConfigDict(extra="allow")

    kind: Annotated[str, Field(min_length=1, max_length=64)]
    processor: str | None = None
    model: str | None = None
    value: float | None = None
    timestamp: str | None = None
    audioOffsetMs: OffsetMs | None = None


class CallEnded(_Strict):
    event: Literal["call-ended"]
    pipecatCallId: CallId
    eventTimestamp: str
    callStartedAt: str | None = None
    callEndedAt: str | None = None
    callEndedReason: str
    agentSpokeFirst: bool | None = None
    recordingSampleRate: Annotated[int, Field(gt=0, le=384_000)] | None = None
    recordingNumChannels: Annotated[int, Field(ge=1, le=8)] | None = None
    transcript: list[TranscriptTurn] | None = None
    toolCalls: list[ToolRecord] | None = None
    metrics: list[Metric] | None = None


def unwrap_data(body: Any) -> Any:
    """Accept a response both bare and wrapped as ``{"data": {...}}``."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        return body["data"]
    return body


def finite_json(value: Any) -> Any:
    """``value`` with NaN and Infinity as null: JSON has no such numbers, though Python's
    ``json`` writes them, and a backend may refuse the whole body for one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value
