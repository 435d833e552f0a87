"""The dashboard's pages and their JSON twins (``.json`` beside each page, same data).

Pages need a viewer (a session, a key header, or --no-auth) and redirect to /login without
one; twins answer 401 instead. Everything is scoped to the viewer's project: another
project's call, recording or peaks is a 404.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import schema
from ..analytics import TOOL_ERROR_RULE
from ..analytics_api import DEFAULT_DAYS, trend_range
from ..blobs import BlobNotFound
from ..errors import ApiError
from ..pagination import decode_cursor, keyset_after
from ..peaks import ensure_peaks
from ..recordings import recording_url
from ..state import ServerState, get_state
from .access import Viewer, current_viewer, login_redirect_target
from .agentview import agent_page, agents_page
from .callview import CallPage, build_call_page
from .listing import DEFAULT_LIMIT, MAX_LIMIT, SORTS, CallFilters, calls_page
from .templating import page

__all__ = ["LoginRequired", "PageNotFound", "router"]

router = APIRouter(include_in_schema=False)
State = Annotated[ServerState, Depends(get_state)]


class LoginRequired(Exception):
    """A page was asked for without a viewer: send the browser to the login form."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class PageNotFound(Exception):
    """Not in the viewer's project (or nowhere): a 404 page, never a hint which."""

    def __init__(self, viewer: Viewer, what: str) -> None:
        super().__init__(what)
        self.viewer = viewer
        self.what = what


async def _page_viewer(request: Request, state: State) -> Viewer:
    viewer = await current_viewer(request, state)
    if viewer is None:
        raise LoginRequired(login_redirect_target(request))
    return viewer


async def _json_viewer(request: Request, state: State) -> Viewer:
    viewer = await current_viewer(request, state)
    if viewer is None:
        raise ApiError(401, "login_required", "log in, or send a project API key", "authorization")
    return viewer


PageViewer = Annotated[Viewer, Depends(_page_viewer)]
JsonViewer = Annotated[Viewer, Depends(_json_viewer)]


def media_origin(state: ServerState) -> str:
    """Where recordings play from when the bucket serves them (for the page's CSP)."""
    if not state.settings.resolved_blob_url.startswith("s3://"):
        return ""
    endpoint = state.settings.resolved_s3_public_endpoint_url
    if endpoint:
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}"
    return "https:"


def _twin(model: BaseModel) -> JSONResponse:
    response = JSONResponse(model.model_dump(mode="json", by_alias=True))
    response.headers["cache-control"] = "no-store"
    return response


def _page(
    state: ServerState, viewer: Viewer, template: str, *, status: int = 200, **context: Any
) -> Response:
    return page(template, status=status, media_origin=media_origin(state), viewer=viewer, **context)


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _cursor(text: str | None, filters: CallFilters) -> str | None:
    """A cursor this list made for this sort, else None (a stale URL starts from the top)."""
    if not text:
        return None
    try:
        decode_cursor(text, filters.sort, filters.order)
    except ApiError:
        return None
    return text


def _seconds(text: str | None) -> float | None:
    """A non-negative number of seconds from the URL; anything else is no filter."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < 1e9 else None


def _limit(text: str | None) -> int:
    try:
        return min(max(int(text or DEFAULT_LIMIT), 1), MAX_LIMIT)
    except ValueError:
        return DEFAULT_LIMIT


async def _list(request: Request, state: ServerState, viewer: Viewer) -> Any:
    params = request.query_params
    filters = CallFilters(
        agent=params.get("agent") or None,
        start=_date(params.get("from")),
        end=_date(params.get("to")),
        reason=params.get("reason") or None,
        q=(params.get("q") or "").strip()[:500] or None,
        min_duration=_seconds(params.get("min_duration")),
        max_duration=_seconds(params.get("max_duration")),
        interrupted=params.get("interrupted") == "1",
        tool_error=params.get("tool_error") == "1",
        latency_above=_seconds(params.get("latency_above")),
        sort=next((sort for sort in SORTS if sort == params.get("sort")), "started"),
        order="asc" if params.get("order") == "asc" else "desc",
    )
    async with state.reader.connect() as connection:
        return await calls_page(
            connection,
            viewer.project_id,
            filters,
            after=_cursor(params.get("after"), filters),
            before=_cursor(params.get("before"), filters),
            limit=_limit(params.get("limit")),
        )


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/calls", status_code=303)


@router.get("/calls.json")
async def calls_json(request: Request, state: State, viewer: JsonViewer) -> JSONResponse:
    return _twin(await _list(request, state, viewer))


@router.get("/calls")
async def calls_html(request: Request, state: State, viewer: PageViewer) -> Response:
    listing = await _list(request, state, viewer)
    return _page(
        state, viewer, "calls.html", listing=listing, tool_error_rule=TOOL_ERROR_RULE, nav="calls"
    )


async def _call_row(connection: AsyncConnection, viewer: Viewer, call_id: str) -> Row[Any] | None:
    return (
        await connection.execute(
            select(schema.calls).where(
                schema.calls.c.id == call_id, schema.calls.c.project_id == viewer.project_id
            )
        )
    ).first()


async def _call_page(state: ServerState, viewer: Viewer, call_id: str) -> CallPage | None:
    async with state.reader.connect() as connection:
        call = await _call_row(connection, viewer, call_id)
        if call is None:
            return None
        agent = prompt = None
        revision = None
        if call.agent_id is not None:
            agent = (
                await connection.execute(
                    select(schema.agents).where(schema.agents.c.id == call.agent_id)
                )
            ).first()
        if call.prompt_id is not None:
            prompts = schema.agent_prompts
            prompt = (
                await connection.execute(select(prompts).where(prompts.c.id == call.prompt_id))
            ).first()
            if prompt is not None:
                revision = await connection.scalar(
                    select(func.count())
                    .select_from(prompts)
                    .where(
                        prompts.c.agent_id == prompt.agent_id,
                        keyset_after(
                            prompts.c.created_at, prompts.c.id, "desc", prompt.created_at, prompt.id
                        )
                        | (prompts.c.id == prompt.id),
                    )
                )
        chunks = schema.chunks.c
        received = (
            await connection.execute(
                select(func.count(), func.coalesce(func.sum(chunks.size), 0)).where(
                    chunks.call_id == call.id, chunks.uploaded_at.is_not(None)
                )
            )
        ).one()
    has_recording = call.recording_key is not None
    return build_call_page(
        call,
        agent=agent,
        prompt=prompt,
        prompt_revision=None if revision is None else int(revision),
        recording_url=f"/calls/{call.id}/recording" if has_recording else None,
        peaks_url=f"/calls/{call.id}/peaks.json" if has_recording else None,
        received=(int(received[0]), int(received[1])),
    )


@router.get("/calls/{call_id}.json")
async def call_json(call_id: str, state: State, viewer: JsonViewer) -> JSONResponse:
    found = await _call_page(state, viewer, call_id)
    if found is None:
        raise ApiError(404, "not_found", "callId: no such call", "callId")
    return _twin(found)


async def _recording_key(state: ServerState, viewer: Viewer, call_id: str) -> str | None:
    async with state.reader.connect() as connection:
        key = await connection.scalar(
            select(schema.calls.c.recording_key).where(
                schema.calls.c.id == call_id, schema.calls.c.project_id == viewer.project_id
            )
        )
    return None if key is None else str(key)


@router.get("/calls/{call_id}/peaks.json")
async def call_peaks(call_id: str, state: State, viewer: JsonViewer) -> JSONResponse:
    key = await _recording_key(state, viewer, call_id)
    if key is None:
        raise ApiError(404, "not_found", "callId: no such call, or no recording", "callId")
    try:
        peaks = await ensure_peaks(state.blobs, call_id, key)
    except BlobNotFound:
        raise ApiError(404, "not_found", "recording: not stitched yet", "callId") from None
    response = JSONResponse(peaks)
    response.headers["cache-control"] = "private, max-age=60"
    return response


@router.get("/calls/{call_id}/recording")
async def call_recording(
    call_id: str, request: Request, state: State, viewer: JsonViewer
) -> RedirectResponse:
    key = await _recording_key(state, viewer, call_id)
    url = await recording_url(state, request, call_id, key)
    if url is None:
        raise ApiError(404, "not_found", "callId: no such call, or no recording", "callId")
    return RedirectResponse(url, status_code=307)


@router.get("/calls/{call_id}")
async def call_html(call_id: str, state: State, viewer: PageViewer) -> Response:
    found = await _call_page(state, viewer, call_id)
    if found is None:
        raise PageNotFound(viewer, "call")
    return _page(state, viewer, "call.html", view=found, nav="calls")


@router.get("/agents.json")
async def agents_json(state: State, viewer: JsonViewer) -> JSONResponse:
    async with state.reader.connect() as connection:
        return _twin(await agents_page(connection, viewer.project_id))


@router.get("/agents")
async def agents_html(state: State, viewer: PageViewer) -> Response:
    async with state.reader.connect() as connection:
        listing = await agents_page(connection, viewer.project_id)
    return _page(state, viewer, "agents.html", listing=listing, nav="agents")


async def _agent(request: Request, state: ServerState, viewer: Viewer, agent_id: str) -> Any:
    params = request.query_params
    try:
        days = min(max(int(params.get("days") or DEFAULT_DAYS), 1), 366)
    except ValueError:
        days = DEFAULT_DAYS
    end = _date(params.get("to")) or datetime.now(timezone.utc).date()
    start = _date(params.get("from")) or date.fromordinal(max(end.toordinal() - days + 1, 1))
    try:
        first, last = trend_range(start, end)
    except ApiError:
        first, last = trend_range(None, None)
    async with state.reader.connect() as connection:
        return await agent_page(
            connection,
            viewer.project_id,
            agent_id,
            first=first,
            last=last,
            diff_from=params.get("diff_from") or None,
            diff_to=params.get("diff_to") or None,
        )


@router.get("/agents/{agent_id}.json")
async def agent_json(
    agent_id: str, request: Request, state: State, viewer: JsonViewer
) -> JSONResponse:
    found = await _agent(request, state, viewer, agent_id)
    if found is None:
        raise ApiError(404, "not_found", "agentId: no such agent", "agentId")
    return _twin(found)


@router.get("/agents/{agent_id}")
async def agent_html(agent_id: str, request: Request, state: State, viewer: PageViewer) -> Response:
    found = await _agent(request, state, viewer, agent_id)
    if found is None:
        raise PageNotFound(viewer, "agent")
    return _page(state, viewer, "agent.html", view=found, nav="agents")
