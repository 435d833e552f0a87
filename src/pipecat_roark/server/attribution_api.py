"""REST extensions for fleet-wide latency attribution (docs/latency.md, "Across calls").

An agent is named by the server's id or by its own ``agentId`` (the custom id). Windows
are UTC days, ``from`` and ``to`` inclusive, as ``/v1/agent/{id}/analytics`` takes them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema
from .analytics import failed_tools
from .analytics_api import trend_range
from .attribution import attribute, merged, slower, slowest
from .auth import ProjectId
from .errors import ERROR_RESPONSES, ApiError
from .reply_reads import load_samples, load_slowest, load_worst
from .state import ServerState, get_state

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES)
State = Annotated[ServerState, Depends(get_state)]
_calls = schema.calls
_agents = schema.agents
MAX_SLOWEST = 500
_FIRST_DATE = date(1970, 1, 1)
_LAST_DATE = date(9998, 12, 31)


@router.get(
    "/v1/agent/{agentId}/latency",
    summary="p50/p95 of each part of the agent's replies, per UTC day and overall (extension)",
)
async def get_agent_latency(
    agentId: str,
    project_id: ProjectId,
    state: State,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    first, last = trend_range(start, end)
    async with state.reader.connect() as connection:
        agent = await _agent_id(connection, project_id, agentId)
        days = await load_samples(connection, project_id, agent, first, last)
    return {
        "data": {"agentId": agent, "from": first.isoformat(), "to": last.isoformat()}
        | attribute(days)
    }


@router.get(
    "/v1/agent/{agentId}/latency/slower",
    summary="The parts of the agent's replies ranked by the growth of their p95 (extension)",
)
async def get_agent_latency_slower(
    agentId: str,
    project_id: ProjectId,
    state: State,
    before_from: Annotated[date | None, Query(alias="beforeFrom")] = None,
    before_to: Annotated[date | None, Query(alias="beforeTo")] = None,
    after_from: Annotated[date | None, Query(alias="afterFrom")] = None,
    after_to: Annotated[date | None, Query(alias="afterTo")] = None,
    before_prompt: Annotated[str | None, Query(alias="beforePrompt")] = None,
    after_prompt: Annotated[str | None, Query(alias="afterPrompt")] = None,
    worst: Annotated[int, Query(ge=1, le=50)] = 3,
) -> dict[str, Any]:
    """Two time windows (``beforeFrom``..``afterTo``, UTC days), or two prompt revisions
    (``beforePrompt``, ``afterPrompt``: ids from ``/v1/agent/{id}/prompt-revisions``, each
    over all the agent's calls that ran with it)."""
    prompts = (before_prompt, after_prompt)
    windows = (before_from, before_to, after_from, after_to)
    if all(prompts) and not any(windows):
        before = after = (_FIRST_DATE, _LAST_DATE)
    elif all(windows) and not any(prompts):
        before = trend_range(before_from, before_to)
        after = trend_range(after_from, after_to)
    else:
        raise ApiError(
            422,
            "invalid_field",
            "give beforeFrom, beforeTo, afterFrom and afterTo, or beforePrompt and afterPrompt",
            "beforeFrom",
        )
    async with state.reader.connect() as connection:
        agent = await _agent_id(connection, project_id, agentId)
        days_before = await load_samples(
            connection, project_id, agent, *before, prompt_id=before_prompt
        )
        days_after = await load_samples(
            connection, project_id, agent, *after, prompt_id=after_prompt
        )
        a, b = merged(days_before.values()), merged(days_after.values())
        window = (_midnight(after[0]), _midnight(after[1] + timedelta(days=1)))
        worst_replies = await load_worst(
            connection, project_id, agent, window, b, worst, prompt_id=after_prompt
        )
    return {"data": {"agentId": agent, "parts": slower(a, b, worst_replies)}}


@router.get(
    "/v1/agent/{agentId}/slowest-replies",
    summary="The agent's slowest replies, part by part, with their tool errors (extension)",
)
async def get_slowest_replies(
    agentId: str,
    project_id: ProjectId,
    state: State,
    since_days: Annotated[float, Query(alias="sinceDays", gt=0, le=366)] = 7,
    limit: Annotated[int, Query(ge=1, le=MAX_SLOWEST)] = 20,
) -> dict[str, Any]:
    last = datetime.now(timezone.utc)
    first = last - timedelta(days=since_days)
    async with state.reader.connect() as connection:
        agent = await _agent_id(connection, project_id, agentId)
        worst = slowest(await load_slowest(connection, project_id, agent, (first, last), limit))
        errors = await _tool_errors(connection, {reply["callId"] for reply in worst})
    for reply in worst:
        reply["toolErrors"] = errors.get(reply["callId"], [])
    return {"data": {"agentId": agent, "since": first.isoformat(), "replies": worst}}


async def _agent_id(connection: AsyncConnection, project_id: str, agent: str) -> str:
    found = await connection.scalar(
        select(_agents.c.id).where(
            _agents.c.project_id == project_id,
            or_(_agents.c.id == agent, _agents.c.custom_id == agent),
        )
    )
    if found is None:
        raise ApiError(404, "not_found", "agentId: no such agent", "agentId")
    return str(found)


async def _tool_errors(connection: AsyncConnection, call_ids: set[str]) -> dict[str, list[Any]]:
    """Each call's failed tool calls (``analytics.failed_tools``), for the calls that have
    some."""
    if not call_ids:
        return {}
    rows = await connection.execute(
        select(_calls.c.id, _calls.c.tool_calls).where(_calls.c.id.in_(call_ids))
    )
    return {row.id: failed for row in rows if (failed := failed_tools(row.tool_calls))}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
