"""The calls list: one page of a project's calls, newest first, filtered, by keyset.

A page reads its rows through the (project, started, id) index and only the columns the
list shows (never a transcript), plus a count capped at ``COUNT_CAP``, so it costs the same
with ten calls or ten million.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import schema
from ..analytics_api import call_started
from ..pagination import decode_cursor, encode_cursor, keyset_after
from ..search import call_text_matches
from ..views import ended_status, iso

__all__ = [
    "COUNT_CAP",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CallFilters",
    "CallsPage",
    "calls_page",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
COUNT_CAP = 1000
_SORT = "startedAt"
_calls = schema.calls
_agents = schema.agents


class CallFilters(BaseModel):
    """What the list is filtered by; it round-trips through the page's URL."""

    agent: str | None = None
    start: date | None = Field(default=None, serialization_alias="from")
    end: date | None = Field(default=None, serialization_alias="to")
    reason: str | None = None
    q: str | None = None

    def query(self, **extra: str | None) -> str:
        """The URL query string of these filters (plus ``extra``), empty values left out."""
        values = {
            "agent": self.agent,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "reason": self.reason,
            "q": self.q,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v})


class AgentChoice(BaseModel):
    id: str
    name: str


class CallRow(BaseModel):
    id: str
    pipecatCallId: str
    startedAt: str
    durationMs: int | None
    agent: AgentChoice | None
    status: str
    endedReason: str | None
    endedStatus: str | None
    turns: int | None
    toolCalls: int | None
    recording: str
    missingChunks: int
    responseLatencyP50: float | None


class ListPagination(BaseModel):
    limit: int
    hasMore: bool
    nextCursor: str | None
    hasNewer: bool
    prevCursor: str | None
    total: int
    totalIsCapped: bool


class CallsPage(BaseModel):
    """The list page's data: its JSON twin is exactly this."""

    data: list[CallRow]
    pagination: ListPagination
    filters: CallFilters
    agents: list[AgentChoice]
    reasons: list[str]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def _conditions(project_id: str, filters: CallFilters) -> list[ColumnElement[bool]]:
    started = call_started()
    conditions: list[ColumnElement[bool]] = [_calls.c.project_id == project_id]
    if filters.agent:
        conditions.append(_calls.c.agent_id == filters.agent)
    if filters.start:
        conditions.append(started >= _midnight(filters.start))
    if filters.end and filters.end < date.max:
        conditions.append(started < _midnight(filters.end + timedelta(days=1)))
    if filters.reason:
        conditions.append(_calls.c.ended_reason == filters.reason)
    if filters.q:
        conditions.append(call_text_matches(filters.q))
    return conditions


def _recording(row: Any) -> tuple[str, int]:
    missing = len(row.recording_gaps or ())
    if row.recording_key is not None:
        return ("missing chunks" if missing else "available"), missing
    if row.status != "ENDED":
        return "in progress", missing
    return "none", missing


def _row(row: Any) -> CallRow:
    recording, missing = _recording(row)
    duration = row.duration_ms if row.duration_ms is not None else row.recording_duration_ms
    return CallRow(
        id=row.id,
        pipecatCallId=row.pipecat_call_id,
        startedAt=iso(row.sort_key),
        durationMs=None if duration is None else int(duration),
        agent=None
        if row.agent_id is None
        else AgentChoice(id=row.agent_id, name=row.agent_name or row.agent_custom_id or "?"),
        status=row.status,
        endedReason=row.ended_reason,
        endedStatus=ended_status(row.ended_reason, row.finalised_by),
        turns=row.turn_count,
        toolCalls=row.tool_call_count,
        recording=recording,
        missingChunks=missing,
        responseLatencyP50=row.response_latency_p50,
    )


async def _choices(
    connection: AsyncConnection, project_id: str
) -> tuple[list[AgentChoice], list[str]]:
    agents = [
        AgentChoice(id=row.id, name=row.name or row.custom_id)
        for row in await connection.execute(
            select(_agents.c.id, _agents.c.name, _agents.c.custom_id)
            .where(_agents.c.project_id == project_id)
            .order_by(_agents.c.name, _agents.c.custom_id)
            .limit(200)
        )
    ]
    reasons = sorted(
        str(reason)
        for reason in await connection.scalars(
            select(_calls.c.ended_reason)
            .where(_calls.c.project_id == project_id, _calls.c.ended_reason.is_not(None))
            .distinct()
            .limit(50)
        )
    )
    return agents, reasons


async def calls_page(
    connection: AsyncConnection,
    project_id: str,
    filters: CallFilters,
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> CallsPage:
    """One page: older than ``after``, or newer than ``before`` (the previous page)."""
    started = call_started()
    conditions = _conditions(project_id, filters)
    page_conditions = list(conditions)
    backwards = before is not None and after is None
    cursor = before if backwards else after
    if cursor:
        key, last_id = decode_cursor(cursor, _SORT, "desc")
        if not isinstance(key, datetime):
            key = _midnight(date.min)
        direction = "asc" if backwards else "desc"
        page_conditions.append(keyset_after(started, _calls.c.id, direction, key, last_id))
    order = (
        (started.asc(), _calls.c.id.asc()) if backwards else (started.desc(), _calls.c.id.desc())
    )
    rows = list(
        await connection.execute(
            select(
                _calls.c.id,
                _calls.c.pipecat_call_id,
                started.label("sort_key"),
                _calls.c.duration_ms,
                _calls.c.recording_duration_ms,
                _calls.c.agent_id,
                _agents.c.name.label("agent_name"),
                _agents.c.custom_id.label("agent_custom_id"),
                _calls.c.status,
                _calls.c.ended_reason,
                _calls.c.finalised_by,
                _calls.c.turn_count,
                _calls.c.tool_call_count,
                _calls.c.response_latency_p50,
                _calls.c.recording_key,
                _calls.c.recording_gaps,
            )
            .select_from(_calls.outerjoin(_agents, _agents.c.id == _calls.c.agent_id))
            .where(*page_conditions)
            .order_by(*order)
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    total = await connection.scalar(
        select(func.count()).select_from(
            select(_calls.c.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
        )
    )
    agents, reasons = await _choices(connection, project_id)
    first, last = (rows[0], rows[-1]) if rows else (None, None)
    older = more if not backwards else True
    newer = bool(cursor) if not backwards else more
    return CallsPage(
        data=[_row(row) for row in rows],
        pagination=ListPagination(
            limit=limit,
            hasMore=bool(older and last is not None),
            nextCursor=encode_cursor(_SORT, "desc", last.sort_key, last.id)
            if older and last is not None
            else None,
            hasNewer=bool(newer and first is not None),
            prevCursor=encode_cursor(_SORT, "desc", first.sort_key, first.id)
            if newer and first is not None
            else None,
            total=min(int(total or 0), COUNT_CAP),
            totalIsCapped=int(total or 0) > COUNT_CAP,
        ),
        filters=filters,
        agents=agents,
        reasons=reasons,
    )
