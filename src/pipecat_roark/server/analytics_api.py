"""The call analytics extension of the REST API: one call's figures, an agent's trends.

``GET /v1/call/{callId}/analytics`` gives the figures stored for a call with the metrics the
observer sent; ``GET /v1/agent/{agentId}/analytics`` gives an agent's p50/p95 response
latency and interruption rate per UTC day. Both are scoped to the key's project.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..stats import percentile
from . import schema
from .agent_days import trend_days
from .analytics import DayAggregate, daily, metric_entries
from .auth import ProjectId
from .errors import ERROR_RESPONSES, ApiError
from .start_order import call_start
from .state import ServerState, get_state
from .views import iso

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "AgentTrends",
    "agent_trends",
    "call_started",
    "day_out",
    "router",
    "trend_range",
]

router = APIRouter(responses=ERROR_RESPONSES)

State = Annotated[ServerState, Depends(get_state)]
DEFAULT_DAYS = 30
MAX_DAYS = 366
_FIRST_DATE = date(1970, 1, 1)
_LAST_DATE = date(9998, 12, 31)
_calls = schema.calls


def call_started() -> ColumnElement[datetime]:
    """When a call started, or when the server first heard of it (never NULL)."""
    return call_start


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CallAnalytics(_Out):
    callId: str
    agentId: str | None
    startedAt: str
    turns: int | None
    assistantTurns: int | None
    toolCalls: int | None
    interruptions: int | None
    interruptionRate: float | None
    responseLatencies: list[float] | None
    responseLatencyP50: float | None
    responseLatencyP95: float | None
    responseLatencyMax: float | None
    summary: dict[str, Any] | None
    metrics: list[dict[str, Any]] | None


class CallAnalyticsOne(_Out):
    data: CallAnalytics


class DayOut(_Out):
    date: str | None
    calls: int
    callsWithMetrics: int
    responses: int
    responseLatencyP50: float | None
    responseLatencyP95: float | None
    interruptions: int
    assistantTurns: int
    interruptionRate: float | None


class AgentAnalytics(_Out):
    agentId: str
    timezone: str
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    days: list[DayOut]
    total: DayOut


class AgentAnalyticsOne(_Out):
    data: AgentAnalytics


def day_out(day: date | None, figures: DayAggregate) -> DayOut:
    return DayOut(
        date=None if day is None else day.isoformat(),
        calls=figures.calls,
        callsWithMetrics=figures.calls_with_metrics,
        responses=figures.responses,
        responseLatencyP50=figures.latency_p50,
        responseLatencyP95=figures.latency_p95,
        interruptions=figures.interruptions,
        assistantTurns=figures.assistant_turns,
        interruptionRate=figures.interruption_rate,
    )


@dataclass(frozen=True)
class AgentTrends:
    first: date
    last: date
    days: list[tuple[date, DayAggregate]]
    total: DayAggregate


def trend_range(
    start: date | None, end: date | None, today: date | None = None
) -> tuple[date, date]:
    """The days asked for: ``DEFAULT_DAYS`` up to today (UTC) unless given; 422 if unusable."""
    today = today or datetime.now(timezone.utc).date()
    for name, day in (("from", start), ("to", end)):
        if day is not None and not _FIRST_DATE <= day <= _LAST_DATE:
            raise ApiError(422, "invalid_field", f"{name}: a date from 1970 to 9998", name)
    span = timedelta(days=DEFAULT_DAYS - 1)
    if end is not None:
        last = end
    elif start is not None:
        last = max(start, min(start + span, today))
    else:
        last = today
    first = start if start is not None else last - span
    if first > last:
        raise ApiError(422, "invalid_field", "from: after 'to'", "from")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(422, "invalid_field", f"from: at most {MAX_DAYS} days before 'to'", "from")
    return first, last


async def agent_trends(
    connection: AsyncConnection, project_id: str, agent_id: str, first: date, last: date
) -> AgentTrends:
    """An agent's ended calls that started in [first, last] (UTC days), aggregated per day:
    a row per day that had calls (``agent_days``), every day listed."""
    found, total = await connection.run_sync(trend_days, project_id, agent_id, first, last)
    return AgentTrends(first, last, daily(found, first, last), total)


@router.get(
    "/v1/agent/{agentId}/analytics",
    response_model=AgentAnalyticsOne,
    summary="An agent's response latency (p50/p95) and interruption rate per UTC day (extension)",
)
async def get_agent_analytics(
    agentId: str,
    project_id: ProjectId,
    state: State,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> AgentAnalyticsOne:
    first, last = trend_range(start, end)
    async with state.reader.connect() as connection:
        known = await connection.scalar(
            select(schema.agents.c.id).where(
                schema.agents.c.id == agentId, schema.agents.c.project_id == project_id
            )
        )
        if known is None:
            raise ApiError(404, "not_found", "agentId: no such agent", "agentId")
        trends = await agent_trends(connection, project_id, agentId, first, last)
    return AgentAnalyticsOne(
        data=AgentAnalytics.model_validate(
            {
                "agentId": agentId,
                "timezone": "UTC",
                "from": first.isoformat(),
                "to": last.isoformat(),
                "days": [day_out(day, figures) for day, figures in trends.days],
                "total": day_out(None, trends.total),
            }
        )
    )


def call_analytics(row: Any) -> CallAnalytics:
    """A call row's stored figures, with the observer's summary and raw metrics."""
    latencies: list[float] | None = row.response_latencies
    summaries = metric_entries(row.metrics, "call_summary")
    rate = None
    if row.interruption_count is not None and row.assistant_turn_count:
        rate = row.interruption_count / row.assistant_turn_count
    return CallAnalytics(
        callId=row.id,
        agentId=row.agent_id,
        startedAt=iso(row.started),
        turns=row.turn_count,
        assistantTurns=row.assistant_turn_count,
        toolCalls=row.tool_call_count,
        interruptions=row.interruption_count,
        interruptionRate=rate,
        responseLatencies=latencies,
        responseLatencyP50=percentile(latencies, 0.5) if latencies else None,
        responseLatencyP95=percentile(latencies, 0.95) if latencies else None,
        responseLatencyMax=max(latencies) if latencies else None,
        summary=summaries[-1] if summaries else None,
        metrics=row.metrics,
    )


@router.get(
    "/v1/call/{callId}/analytics",
    response_model=CallAnalyticsOne,
    summary="A call's response latencies, interruptions and metrics (extension)",
)
async def get_call_analytics(callId: str, project_id: ProjectId, state: State) -> CallAnalyticsOne:
    async with state.reader.connect() as connection:
        row = (
            await connection.execute(
                select(
                    _calls.c.id,
                    _calls.c.agent_id,
                    call_started().label("started"),
                    _calls.c.turn_count,
                    _calls.c.assistant_turn_count,
                    _calls.c.tool_call_count,
                    _calls.c.interruption_count,
                    _calls.c.response_latencies,
                    _calls.c.metrics,
                ).where(_calls.c.id == callId, _calls.c.project_id == project_id)
            )
        ).first()
    if row is None:
        raise ApiError(404, "not_found", "callId: no such call", "callId")
    return CallAnalyticsOne(data=call_analytics(row))
