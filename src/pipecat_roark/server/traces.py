"""Pipecat's OpenTelemetry traces: an OTLP/HTTP receiver, and each call's spans.

``POST /v1/traces`` takes what Pipecat's OTLP HTTP exporter sends (protobuf or JSON,
gzipped or not), with the project's key in ``x-roark-api-key`` or ``Authorization:
Bearer``. Spans are kept by trace. In Pipecat only the conversation span names the call
(``conversation.id``, the observer's ``pipecat_call_id``) and it ends, so is exported,
last: the turn and service spans before it wait, by trace id, for it to arrive. A trace
is joined to its call when read, so spans that come before call-started or after
call-ended are joined alike. Spans whose trace names no stored call after
``trace_orphan_ttl`` seconds are dropped and counted.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from loguru import logger
from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema
from .auth import ProjectId
from .database import dialect_insert, utcnow
from .errors import ERROR_RESPONSES, ApiError
from .otlp import OtlpError, Span, decode_spans, encode_response
from .state import ServerState, get_state

__all__ = ["TRACES_PATH", "call_spans", "router"]

TRACES_PATH = "/v1/traces"
_SWEEP_EVERY = 60.0
_spans = schema.trace_spans
_calls = schema.calls

router = APIRouter(responses=ERROR_RESPONSES)
State = Annotated[ServerState, Depends(get_state)]


@router.post(TRACES_PATH, summary="Receive OpenTelemetry spans (OTLP/HTTP, protobuf or JSON)")
async def post_traces(request: Request, project_id: ProjectId, state: State) -> Response:
    content_type = request.headers.get("content-type", "")
    try:
        spans = decode_spans(
            await request.body(), content_type, request.headers.get("content-encoding")
        )
    except OtlpError as exc:
        raise ApiError(400, "invalid_otlp", str(exc)) from None
    now = utcnow()
    if spans:
        async with state.begin() as connection:
            await _store(connection, project_id, spans, now)
    every = min(_SWEEP_EVERY, state.settings.trace_orphan_ttl)
    if time.monotonic() - state.spans_swept_at >= every:
        state.spans_swept_at = time.monotonic()
        async with state.begin() as connection:
            await sweep_orphans(connection, state, now)
    body, media_type = encode_response(content_type)
    return Response(content=body, media_type=media_type)


@router.get("/v1/traces/stats", summary="Spans dropped by this replica (extension)")
async def get_trace_stats(project_id: ProjectId, state: State) -> dict[str, Any]:
    return {"data": {"droppedSpans": state.spans_dropped}}


@router.get("/v1/call/{callId}/spans", summary="The call's spans from Pipecat's traces (extension)")
async def get_call_spans(callId: str, project_id: ProjectId, state: State) -> dict[str, Any]:
    async with state.reader.connect() as connection:
        row = (
            await connection.execute(
                select(_calls.c.pipecat_call_id, _calls.c.transcript).where(
                    _calls.c.id == callId, _calls.c.project_id == project_id
                )
            )
        ).first()
        if row is None:
            raise ApiError(404, "not_found", "callId: no such call", "callId")
        spans = await call_spans(connection, project_id, row.pipecat_call_id, row.transcript)
    return {"data": {"spans": spans}}


async def call_spans(
    connection: AsyncConnection, project_id: str, pipecat_call_id: str, transcript: Any
) -> list[dict[str, Any]]:
    """Every span of the traces whose conversation is this call, oldest first, each placed
    on the recording (``audioOffsetMs``, ``endAudioOffsetMs``) when the transcript says
    where the recording's sample 0 was."""
    traces = select(_spans.c.trace_id).where(
        _spans.c.project_id == project_id, _spans.c.conversation_id == pipecat_call_id
    )
    rows = (
        await connection.execute(
            select(_spans)
            .where(_spans.c.project_id == project_id, _spans.c.trace_id.in_(traces))
            .order_by(_spans.c.start_ns, _spans.c.id)
        )
    ).all()
    zero_ns = _recording_zero_ns(transcript)
    out: list[dict[str, Any]] = []
    for row in rows:
        span: dict[str, Any] = {
            "traceId": row.trace_id,
            "spanId": row.span_id,
            "parentSpanId": row.parent_span_id,
            "name": row.name,
            "startTimeUnixNano": row.start_ns,
            "endTimeUnixNano": row.end_ns,
            "durationMs": round((row.end_ns - row.start_ns) / 1e6, 3),
            "attributes": row.attributes,
            "status": {"code": row.status_code, "message": row.status_message or ""},
        }
        if zero_ns is not None:
            span["audioOffsetMs"] = round((row.start_ns - zero_ns) / 1e6)
            span["endAudioOffsetMs"] = round((row.end_ns - zero_ns) / 1e6)
        out.append(span)
    return out


async def sweep_orphans(connection: AsyncConnection, state: ServerState, now: datetime) -> int:
    """Drop spans older than the orphan TTL whose trace names no stored call; count them."""
    cutoff = now - timedelta(seconds=state.settings.trace_orphan_ttl)
    named = _spans.alias("named")
    joined = exists().where(
        named.c.project_id == _spans.c.project_id,
        named.c.trace_id == _spans.c.trace_id,
        _calls.c.project_id == named.c.project_id,
        _calls.c.pipecat_call_id == named.c.conversation_id,
    )
    result = await connection.execute(delete(_spans).where(_spans.c.received_at < cutoff, ~joined))
    dropped = int(result.rowcount or 0)
    if dropped:
        state.spans_dropped += dropped
        logger.info(
            "traces: dropped {} spans whose trace named no call within {:.0f}s",
            dropped,
            state.settings.trace_orphan_ttl,
        )
    return dropped


async def _store(
    connection: AsyncConnection, project_id: str, spans: list[Span], now: datetime
) -> None:
    rows = [
        {
            "project_id": project_id,
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "parent_span_id": span.parent_span_id,
            "name": span.name[:256],
            "start_ns": span.start_ns,
            "end_ns": span.end_ns,
            "attributes": span.attributes,
            "status_code": span.status_code,
            "status_message": span.status_message or None,
            "conversation_id": span.conversation_id[:256] if span.conversation_id else None,
            "received_at": now,
        }
        for span in spans
    ]
    # An exporter retries a batch it is unsure of: a span already kept is kept once.
    insert = dialect_insert(connection, _spans).on_conflict_do_nothing(
        index_elements=["project_id", "trace_id", "span_id"]
    )
    await connection.execute(insert, rows)


def _recording_zero_ns(transcript: Any) -> int | None:
    """Wall-clock ns of the recording's sample 0, from a turn's timestamp and offset."""
    for entry in transcript or ():
        if isinstance(entry, dict) and "audioOffsetMs" in entry and "timestamp" in entry:
            try:
                wall = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                continue
            return int(wall.timestamp() * 1e9) - int(entry["audioOffsetMs"]) * 1_000_000
    return None
