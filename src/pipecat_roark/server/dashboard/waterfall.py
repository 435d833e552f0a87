"""Latency on the dashboard, as JSON for its scripts.

The call page's waterfalls (``latency.js`` draws them under the waveform): every reply's
parts (the ``latency_breakdown`` metrics the observer sent) and the spans of the call's
traces (``/v1/traces``), each turn's stt, llm and tts under it. The agent page's
attribution table: each part's p50 and p95 over the agent's replies in a window of days.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from .. import schema
from ..analytics_api import trend_range
from ..attribution import attribute
from ..errors import ApiError
from ..reply_reads import load_samples
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


@router.get("/agents/{agent_id}/latency.json")
async def agent_latency_json(
    agent_id: str,
    state: State,
    viewer: JsonViewer,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> JSONResponse:
    first, last = trend_range(start, end)
    agents = schema.agents
    async with state.reader.connect() as connection:
        known = await connection.scalar(
            select(agents.c.id).where(
                agents.c.id == agent_id, agents.c.project_id == viewer.project_id
            )
        )
        if known is None:
            raise ApiError(404, "not_found", "agentId: no such agent", "agentId")
        days = await load_samples(connection, viewer.project_id, agent_id, first, last)
    body = {"from": first.isoformat(), "to": last.isoformat(), **attribute(days)}
    return JSONResponse(body)
