"""The call page's latency waterfalls: each reply's parts and Pipecat's spans, as JSON.

``latency.js`` draws them under the waveform, on the recording's time axis: every reply's
parts (the ``latency_breakdown`` metrics the observer sent) and the spans of the call's
traces (``/v1/traces``), each turn's stt, llm and tts under it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select

from .. import schema
from ..errors import ApiError
from ..traces import call_spans
from .routes import JsonViewer, State

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/calls/{call_id}/latency.json")
async def call_latency_json(call_id: str, state: State, viewer: JsonViewer) -> JSONResponse:
    calls = schema.calls
    async with state.reader.connect() as connection:
        row = (
            await connection.execute(
                select(calls.c.pipecat_call_id, calls.c.metrics, calls.c.transcript).where(
                    calls.c.id == call_id, calls.c.project_id == viewer.project_id
                )
            )
        ).first()
        if row is None:
            raise ApiError(404, "not_found", "callId: no such call", "callId")
        spans = await call_spans(connection, viewer.project_id, row.pipecat_call_id, row.transcript)
    replies: list[dict[str, Any]] = [
        metric
        for metric in row.metrics or ()
        if isinstance(metric, dict) and metric.get("kind") == "latency_breakdown"
    ]
    return JSONResponse({"replies": replies, "spans": spans})
