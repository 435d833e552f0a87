"""Logging in and out: the key form, login links, and the --no-auth project picker.

``POST /v1/dashboard/login-links`` (with a project API key) returns a link that opens a
session in a browser, once, within minutes: the demo prints one to show its call. A link
is a capability (whoever holds it is logged in), so a used one is refused.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select

from .. import schema
from ..auth import ProjectId
from ..database import dialect_insert, utcnow
from ..errors import ERROR_RESPONSES, ApiError
from ..recordings import public_base_url
from ..state import ServerState, get_state
from ..views import iso
from .access import (
    CSRF_COOKIE,
    LINK_TTL,
    LINK_TTL_MAX,
    SESSION_COOKIE,
    csrf_ok,
    current_viewer,
    form_fields,
    key_owner,
    list_projects,
    login_link_token,
    new_csrf_token,
    no_auth_allowed,
    read_login_link,
    request_key,
    safe_next,
    same_origin,
    set_csrf_cookie,
    set_session,
)
from .templating import page

__all__ = ["api_router", "router"]

router = APIRouter(include_in_schema=False)
api_router = APIRouter(responses=ERROR_RESPONSES)
State = Annotated[ServerState, Depends(get_state)]


async def _login_form(
    request: Request, state: ServerState, next_path: str, *, error: str = "", status: int = 200
) -> Response:
    projects: list[tuple[str, str]] = []
    if no_auth_allowed(request, state):
        async with state.reader.connect() as connection:
            projects = await list_projects(connection)
    token = new_csrf_token()
    response = page(
        "login.html",
        status=status,
        viewer=None,
        next_path=next_path,
        error=error,
        projects=projects,
        csrf=token,
        nav="login",
    )
    set_csrf_cookie(response, request, token)
    return response


@router.get("/login")
async def login_page(request: Request, state: State, next: str | None = None) -> Response:
    target = safe_next(next)
    if await current_viewer(request, state) is not None:
        return RedirectResponse(target, status_code=303)
    return await _login_form(request, state, target)


@router.post("/login")
async def login(request: Request, state: State) -> Response:
    fields = await form_fields(request)
    target = safe_next(fields.get("next"))
    given = fields.get("csrf", "")
    if not same_origin(request, state) or not csrf_ok(given, request.cookies.get(CSRF_COOKIE, "")):
        return await _login_form(
            request, state, target, error="The form expired; please try again.", status=400
        )
    project_id: str | None = None
    key_id: str | None = None
    async with state.reader.connect() as connection:
        if fields.get("project") and no_auth_allowed(request, state):
            known = {pid for pid, _ in await list_projects(connection)}
            project_id = fields["project"] if fields["project"] in known else None
        elif fields.get("key"):
            owner = await key_owner(connection, fields["key"].strip())
            if owner is not None:
                key_id, project_id = owner
    if project_id is None:
        return await _login_form(
            request, state, target, error="That API key is not known here.", status=401
        )
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, state, project_id, key_id)
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, state: State) -> Response:
    fields = await form_fields(request)
    viewer = await current_viewer(request, state)
    if viewer is not None and (
        not same_origin(request, state) or not csrf_ok(fields.get("csrf", ""), viewer.csrf)
    ):
        return RedirectResponse("/calls", status_code=303)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/login/link")
async def login_by_link(
    request: Request, state: State, token: str = "", next: str | None = None
) -> Response:
    target = safe_next(next)
    token = token[:512]
    found = read_login_link(state.secret, token) if token else None
    if found is not None:
        project_id, key_id = found
        async with state.reader.connect() as connection:
            live = await connection.scalar(
                select(schema.api_keys.c.id).where(
                    schema.api_keys.c.id == key_id, schema.api_keys.c.project_id == project_id
                )
            )
        if live is not None and await _first_use(state, token):
            response = RedirectResponse(target, status_code=303)
            set_session(response, request, state, project_id, key_id)
            return response
    return await _login_form(
        request,
        state,
        target,
        error="This login link has expired, was used already or is not valid: "
        "log in with an API key.",
        status=400,
    )


async def _first_use(state: ServerState, token: str) -> bool:
    """Mark a valid link used; False when it was used before. Expired marks are dropped."""
    used = schema.used_login_links
    expires = datetime.fromtimestamp(int(token.split(".")[2]), timezone.utc)
    async with state.begin() as connection:
        await connection.execute(delete(used).where(used.c.expires_at < utcnow()))
        result = await connection.execute(
            dialect_insert(connection, used)
            .values(token_sha256=hashlib.sha256(token.encode()).hexdigest(), expires_at=expires)
            .on_conflict_do_nothing(index_elements=["token_sha256"])
        )
    return bool(result.rowcount)


class LoginLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    next: Annotated[str, Field(max_length=2048)] = "/calls"
    """The dashboard page to open, e.g. ``/calls/{callId}``."""
    expiresInSeconds: Annotated[int, Field(ge=60, le=LINK_TTL_MAX)] = LINK_TTL


class LoginLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    expiresAt: str


class LoginLinkOne(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: LoginLink


@api_router.post(
    "/v1/dashboard/login-links",
    response_model=LoginLinkOne,
    summary="A short-lived link that opens the dashboard in a browser (extension)",
)
async def create_login_link(
    request: Request,
    project_id: ProjectId,
    state: State,
    body: Annotated[LoginLinkRequest | None, Body()] = None,
) -> LoginLinkOne:
    wanted = body or LoginLinkRequest()
    async with state.reader.connect() as connection:
        owner = await key_owner(connection, request_key(request) or "")
    if owner is None or owner[1] != project_id:
        raise ApiError(401, "invalid_api_key", "authorization: unknown API key", "authorization")
    token = login_link_token(state.secret, project_id, owner[0], wanted.expiresInSeconds)
    expires = datetime.fromtimestamp(time.time() + wanted.expiresInSeconds, timezone.utc)
    url = (
        f"{public_base_url(state, request)}/login/link?token={quote(token, safe='')}"
        f"&next={quote(safe_next(wanted.next), safe='')}"
    )
    return LoginLinkOne(data=LoginLink(url=url, expiresAt=iso(expires)))
