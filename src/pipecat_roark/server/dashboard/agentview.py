"""The agents pages' data: each agent's calls, prompt revisions with a diff, and trends."""

from __future__ import annotations

import difflib
from datetime import date, datetime, timezone
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import schema
from ..agent_counts import agent_calls, revision_calls
from ..analytics_api import DayOut, agent_trends, call_started, day_out
from ..views import iso
from .charts import Chart, line_chart
from .listing import CallFilters, CallRow, calls_page

__all__ = ["AgentPage", "AgentsPage", "agent_page", "agents_page", "prompt_diff"]

_calls = schema.calls
_agents = schema.agents
_prompts = schema.agent_prompts
_RECENT_CALLS = 20


class AgentSummary(BaseModel):
    id: str
    name: str
    customId: str
    createdAt: str
    calls: int
    lastCallAt: str | None
    revisions: int


class AgentsPage(BaseModel):
    data: list[AgentSummary]


class Revision(BaseModel):
    id: str
    number: int
    sha256: str
    createdAt: str
    prompt: str
    calls: int


class DiffLine(BaseModel):
    kind: str
    """``add``, ``del``, ``same`` or ``hunk``."""
    text: str


class Diff(BaseModel):
    fromRevision: int
    toRevision: int
    identical: bool
    lines: list[DiffLine]


class Trends(BaseModel):
    start: str = Field(serialization_alias="from")
    end: str = Field(serialization_alias="to")
    timezone: str
    days: list[DayOut]
    total: DayOut


class AgentPage(BaseModel):
    agent: AgentSummary
    revisions: list[Revision]
    diff: Diff | None
    trends: Trends
    charts: list[Chart]
    recentCalls: list[CallRow]


def prompt_diff(old: Revision, new: Revision) -> Diff:
    """A unified line diff of two prompt revisions."""
    lines: list[DiffLine] = []
    for text in difflib.unified_diff(
        old.prompt.splitlines(), new.prompt.splitlines(), lineterm="", n=3
    ):
        if text.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "+": "add", "-": "del"}.get(text[:1], "same")
        lines.append(DiffLine(kind=kind, text=text if kind == "hunk" else text[1:]))
    return Diff(fromRevision=old.number, toRevision=new.number, identical=not lines, lines=lines)


async def _summaries(
    connection: AsyncConnection, project_id: str, agent_id: str | None = None
) -> list[AgentSummary]:
    # The count is kept in the agent's row, with the changes not folded into it yet
    # (server/agent_counts.py); the last call is one seek per agent on its (agent, started)
    # index.
    started = call_started()
    last_call = (
        select(started)
        .where(_calls.c.agent_id == _agents.c.id)
        .order_by(started.desc())
        .limit(1)
        .correlate(_agents)
        .scalar_subquery()
    )
    revisions = select(_prompts.c.agent_id, func.count().label("revisions")).group_by(
        _prompts.c.agent_id
    )
    if agent_id is not None:
        revisions = revisions.where(_prompts.c.agent_id == agent_id)
    revision_counts = {row.agent_id: row.revisions for row in await connection.execute(revisions)}
    query = select(_agents, agent_calls(), last_call.label("last_call")).where(
        _agents.c.project_id == project_id
    )
    if agent_id is not None:
        query = query.where(_agents.c.id == agent_id)
    rows = await connection.execute(query.order_by(_agents.c.name, _agents.c.custom_id).limit(500))
    summaries: list[AgentSummary] = []
    for row in rows:
        last = row.last_call
        summaries.append(
            AgentSummary(
                id=row.id,
                name=row.name or row.custom_id,
                customId=row.custom_id,
                createdAt=iso(row.created_at),
                calls=row.calls,
                lastCallAt=None if last is None else iso(_aware(last)),
                revisions=int(revision_counts.get(row.id, 0)),
            )
        )
    return summaries


def _aware(value: Any) -> Any:
    """The started expression in a subquery comes back untyped on SQLite: make it UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


async def agents_page(connection: AsyncConnection, project_id: str) -> AgentsPage:
    return AgentsPage(data=await _summaries(connection, project_id))


async def _revisions(connection: AsyncConnection, agent_id: str) -> list[Revision]:
    """Each revision with its kept count of calls (server/agent_counts.py)."""
    rows = await connection.execute(
        select(_prompts, revision_calls())
        .where(_prompts.c.agent_id == agent_id)
        .order_by(_prompts.c.created_at, _prompts.c.id)
    )
    return [
        Revision(
            id=row.id,
            number=number,
            sha256=row.prompt_sha256,
            createdAt=iso(row.created_at),
            prompt=row.prompt,
            calls=row.calls,
        )
        for number, row in enumerate(rows, start=1)
    ]


def _pick(revisions: list[Revision], wanted: str | None) -> Revision | None:
    """The revision named by its id or number."""
    for revision in revisions:
        if wanted is not None and wanted in (revision.id, str(revision.number)):
            return revision
    return None


def _compared(
    revisions: list[Revision], diff_from: str | None, diff_to: str | None
) -> tuple[Revision, Revision] | None:
    """The two revisions to diff: as asked, else the newest and the one before it."""
    new = _pick(revisions, diff_to) or (revisions[-1] if revisions else None)
    if new is None:
        return None
    old = _pick(revisions, diff_from)
    if old is None:
        position = revisions.index(new)
        old = revisions[position - 1] if position > 0 else None
    return None if old is None or old == new else (old, new)


def _charts(trends: Trends) -> list[Chart]:
    labels = [day.date or "" for day in trends.days]
    return [
        line_chart(
            "Response latency",
            labels,
            [
                ("p50", "p50", [d.responseLatencyP50 for d in trends.days]),
                ("p95", "p95", [d.responseLatencyP95 for d in trends.days]),
            ],
            unit="s",
        ),
        line_chart(
            "Interruption rate",
            labels,
            [("interrupted turns", "rate", [d.interruptionRate for d in trends.days])],
            unit="%",
            scale=100,
            digits=0,
        ),
    ]


async def agent_page(
    connection: AsyncConnection,
    project_id: str,
    agent_id: str,
    *,
    first: date,
    last: date,
    diff_from: str | None = None,
    diff_to: str | None = None,
) -> AgentPage | None:
    """None when the project has no such agent."""
    summaries = await _summaries(connection, project_id, agent_id)
    if not summaries:
        return None
    revisions = await _revisions(connection, agent_id)
    compared = _compared(revisions, diff_from, diff_to)
    found = await agent_trends(connection, project_id, agent_id, first, last)
    trends = Trends(
        start=first.isoformat(),
        end=last.isoformat(),
        timezone="UTC",
        days=[day_out(day, figures) for day, figures in found.days],
        total=day_out(None, found.total),
    )
    recent = await calls_page(
        connection, project_id, CallFilters(agent=agent_id), limit=_RECENT_CALLS
    )
    return AgentPage(
        agent=summaries[0],
        revisions=revisions,
        diff=None if compared is None else prompt_diff(*compared),
        trends=trends,
        charts=_charts(trends),
        recentCalls=recent.data,
    )
