"""The calls list: one page of a project's calls, sorted, filtered, by keyset.

Newest first by default, a page reads its rows through the (project, started, id) index and
only the columns the list shows (of the transcript, its first ``SNIPPET_CHARS`` characters),
plus a count capped at ``COUNT_CAP``, so it costs the same with ten calls or ten million.
The other sorts (duration, median latency, interruptions) and the filters on tool errors and
on the slowest response read the call's stored figures; the calls with a failed tool call
have an index of their own.
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
from ..search import plan_call_search
from ..views import ended_status, iso
from .figures import slowest_response_above

__all__ = [
    "COUNT_CAP",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SORTS",
    "CallFilters",
    "CallsPage",
    "calls_page",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
COUNT_CAP = 1000
SNIPPET_CHARS = 160
MAX_REASONS = 50
SORTS = ("started", "duration", "latency", "interruptions")
"""What the list sorts by: the call's start, its length, its median response, interruptions."""
_calls = schema.calls
_agents = schema.agents


def _sort_key(sort: str, order: str) -> ColumnElement[Any]:
    if sort == "started":
        return call_started()
    columns: tuple[ColumnElement[Any], ...] = {
        "duration": (_calls.c.duration_ms, _calls.c.recording_duration_ms),
        "latency": (_calls.c.response_latency_p50,),
        "interruptions": (_calls.c.interruption_count,),
    }[sort]
    # Either way round, calls without the figure last, each order off an index (schema.py).
    if order == "desc":
        return schema.or_minus_one(*columns)  # type: ignore[no-any-return]
    return schema.or_last(*columns)  # type: ignore[no-any-return]


class CallFilters(BaseModel):
    """What the list is filtered by; it round-trips through the page's URL."""

    agent: str | None = None
    start: date | None = Field(default=None, serialization_alias="from")
    end: date | None = Field(default=None, serialization_alias="to")
    reason: str | None = None
    q: str | None = None
    min_duration: float | None = Field(default=None, serialization_alias="minDuration")
    max_duration: float | None = Field(default=None, serialization_alias="maxDuration")
    interrupted: bool = False
    tool_error: bool = Field(default=False, serialization_alias="toolError")
    latency_above: float | None = Field(default=None, serialization_alias="latencyAbove")
    sort: str = "started"
    order: str = "desc"

    def query(self, **extra: str | None) -> str:
        """The URL query string of these filters (plus ``extra``), empty values left out."""
        values = {
            "agent": self.agent,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "reason": self.reason,
            "q": self.q,
            "min_duration": _text(self.min_duration),
            "max_duration": _text(self.max_duration),
            "interrupted": "1" if self.interrupted else None,
            "tool_error": "1" if self.tool_error else None,
            "latency_above": _text(self.latency_above),
            "sort": None if self.sort == "started" else self.sort,
            "order": None if self.order == "desc" else self.order,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v})

    def sorted_by(self, sort: str) -> str:
        """The query of this view sorted by ``sort``: the other way round if it already is."""
        order = "asc" if sort == self.sort and self.order == "desc" else "desc"
        return self.model_copy(update={"sort": sort, "order": order}).query()

    @property
    def narrowed(self) -> bool:
        """Whether any filter (not the sort) is set."""
        return bool(self.model_copy(update={"sort": "started", "order": "desc"}).query())


def _text(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


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
    interruptions: int | None
    snippet: str | None


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


def _conditions(project_id: str, filters: CallFilters, dialect: str) -> list[ColumnElement[bool]]:
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
    duration = func.coalesce(_calls.c.duration_ms, _calls.c.recording_duration_ms)
    if filters.min_duration is not None:
        conditions.append(duration >= filters.min_duration * 1000)
    if filters.max_duration is not None:
        conditions.append(duration <= filters.max_duration * 1000)
    if filters.interrupted:
        conditions.append(_calls.c.interruption_count > 0)
    if filters.tool_error:
        conditions.append(schema.tool_failed())
    if filters.latency_above is not None:
        conditions.append(slowest_response_above(dialect, filters.latency_above))
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
        startedAt=iso(row.started_at),
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
        interruptions=row.interruption_count,
        snippet=_snippet(row.snippet),
    )


def _snippet(text: str | None) -> str | None:
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(text) < SNIPPET_CHARS else flat + "\u2026"


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
    return agents, await _reasons(connection, project_id)


async def _reasons(connection: AsyncConnection, project_id: str) -> list[str]:
    """The project's ended reasons (up to ``MAX_REASONS``), one index seek each: a DISTINCT
    would read every call's."""
    reasons: list[str] = []
    while len(reasons) < MAX_REASONS:
        query = select(func.min(_calls.c.ended_reason)).where(
            _calls.c.project_id == project_id, _calls.c.ended_reason.is_not(None)
        )
        if reasons:
            query = query.where(_calls.c.ended_reason > reasons[-1])
        found = await connection.scalar(query)
        if found is None:
            break
        reasons.append(str(found))
    return reasons


async def calls_page(
    connection: AsyncConnection,
    project_id: str,
    filters: CallFilters,
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> CallsPage:
    """One page: after ``after``, or before ``before`` (the previous page), in the sort."""
    sort, order = filters.sort, filters.order
    started = _sort_key(sort, order)
    conditions = _conditions(project_id, filters, connection.dialect.name)
    count_conditions = list(conditions)
    kept = None
    if filters.q:
        search = await plan_call_search(connection, project_id, filters.q)
        started = search.sort_key(started)
        if len(conditions) == 1:  # the project's calls, no other filter: a word's count is kept
            kept = await search.kept_count(
                connection, project_id, list(conditions), indexed_calls_listed=True
            )
        conditions.append(search.page)
        count_conditions.append(search.capped_count)
    page_conditions = list(conditions)
    backwards = before is not None and after is None
    cursor = before if backwards else after
    if cursor:
        key, last_id = decode_cursor(cursor, sort, order)
        if sort == "started" and not isinstance(key, datetime):
            key = _midnight(date.min)
        elif sort != "started" and not isinstance(key, (int, float)):
            key = -1
        flip = {"asc": "desc", "desc": "asc"}
        direction = flip[order] if backwards else order
        page_conditions.append(keyset_after(started, _calls.c.id, direction, key, last_id))
    ascending = (order == "asc") != backwards
    ordering = (
        (started.asc(), _calls.c.id.asc()) if ascending else (started.desc(), _calls.c.id.desc())
    )
    rows = list(
        await connection.execute(
            select(
                _calls.c.id,
                _calls.c.pipecat_call_id,
                call_started().label("started_at"),
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
                _calls.c.interruption_count,
                func.substr(_calls.c.transcript_text, 1, SNIPPET_CHARS).label("snippet"),
                _calls.c.recording_key,
                _calls.c.recording_gaps,
            )
            .select_from(_calls.outerjoin(_agents, _agents.c.id == _calls.c.agent_id))
            .where(*page_conditions)
            .order_by(*ordering)
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    total = kept
    if total is None:
        total = await connection.scalar(
            select(func.count()).select_from(
                select(_calls.c.id).where(*count_conditions).limit(COUNT_CAP + 1).subquery()
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
            nextCursor=encode_cursor(sort, order, last.sort_key, last.id)
            if older and last is not None
            else None,
            hasNewer=bool(newer and first is not None),
            prevCursor=encode_cursor(sort, order, first.sort_key, first.id)
            if newer and first is not None
            else None,
            total=min(int(total or 0), COUNT_CAP),
            totalIsCapped=int(total or 0) > COUNT_CAP,
        ),
        filters=filters,
        agents=agents,
        reasons=reasons,
    )
