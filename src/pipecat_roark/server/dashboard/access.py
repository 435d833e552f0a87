"""Who is looking: a session cookie from a project API key, a login link, or --no-auth.

A session names one project (and the key that opened it, so deleting the key ends it); every
dashboard query is scoped to that project. The cookie is signed with the server's secret,
HttpOnly and SameSite=Lax. Forms carry a CSRF token and a cross-site Origin is refused.
``--no-auth`` only ever applies to requests from 127.0.0.1 on a server bound there.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import schema, signing
from ..auth import hash_key
from ..state import ServerState

__all__ = [
    "CSRF_COOKIE",
    "LINK_TTL",
    "LINK_TTL_MAX",
    "SESSION_COOKIE",
    "SESSION_TTL",
    "Viewer",
    "csrf_ok",
    "current_viewer",
    "form_fields",
    "key_owner",
    "list_projects",
    "login_link_token",
    "login_redirect_target",
    "new_csrf_token",
    "no_auth_allowed",
    "read_login_link",
    "request_key",
    "safe_next",
    "same_origin",
    "set_csrf_cookie",
    "set_session",
]

SESSION_COOKIE = "roark_session"
CSRF_COOKIE = "roark_csrf"
SESSION_TTL = 7 * 24 * 3600
LINK_TTL = 5 * 60
LINK_TTL_MAX = 15 * 60
_SESSION = "dashboard-session"
_LINK = "dashboard-login-link"
_NO_KEY = "-"
_LOOPBACK = ("127.0.0.1",)
_FORM_LIMIT = 16 * 1024


@dataclass(frozen=True)
class Viewer:
    """The project a request may see, and how it proved it."""

    project_id: str
    project_name: str
    via: str
    """``session``, ``bearer`` (a JSON twin read with a key) or ``no-auth``."""
    csrf: str = ""
    """The token forms must echo (empty without a session)."""


async def key_owner(connection: AsyncConnection, key: str) -> tuple[str, str] | None:
    """(key id, project id) of an API key, or None when the key is unknown."""
    row = (
        await connection.execute(
            select(schema.api_keys.c.id, schema.api_keys.c.project_id).where(
                schema.api_keys.c.key_hash == hash_key(key)
            )
        )
    ).first()
    return None if row is None else (str(row.id), str(row.project_id))


async def list_projects(connection: AsyncConnection, limit: int = 50) -> list[tuple[str, str]]:
    rows = await connection.execute(
        select(schema.projects.c.id, schema.projects.c.name)
        .order_by(schema.projects.c.name)
        .limit(limit)
    )
    return [(str(row.id), str(row.name)) for row in rows]


def _token(
    secret: str, purpose: str, project_id: str, key_id: str | None, ttl: int, nonce: str = ""
) -> str:
    key_part = key_id or _NO_KEY
    subject = f"{project_id}:{key_part}" + (f":{nonce}" if nonce else "")
    expires, signature = signing.sign(secret, purpose, subject, 0, ttl)
    return f"{project_id}.{key_part}.{expires}.{signature}" + (f".{nonce}" if nonce else "")


def _read_token(secret: str, purpose: str, token: str) -> tuple[str, str | None] | None:
    parts = token.split(".")
    if len(parts) not in (4, 5) or not parts[2].isdigit():
        return None
    project_id, key_part, expires, signature = parts[:4]
    subject = f"{project_id}:{key_part}" + (f":{parts[4]}" if len(parts) == 5 else "")
    if not signing.verify(secret, purpose, subject, 0, int(expires), signature):
        return None
    return project_id, None if key_part == _NO_KEY else key_part


def login_link_token(secret: str, project_id: str, key_id: str, ttl: int) -> str:
    """A link's own token: each link differs (a nonce), so using one spends no other."""
    return _token(secret, _LINK, project_id, key_id, ttl, secrets.token_urlsafe(12))


def read_login_link(secret: str, token: str) -> tuple[str, str | None] | None:
    return _read_token(secret, _LINK, token)


def _csrf_for(secret: str, session: str) -> str:
    return hmac.new(secret.encode(), b"csrf\n" + session.encode(), hashlib.sha256).hexdigest()[:32]


def _is_loopback(request: Request, state: ServerState) -> bool:
    client = request.client.host if request.client else ""
    return state.settings.host in _LOOPBACK and client in _LOOPBACK


def no_auth_allowed(request: Request, state: ServerState) -> bool:
    return state.settings.no_auth and _is_loopback(request, state)


def request_key(request: Request) -> str | None:
    """The API key a request carries (``Authorization: Bearer`` or ``x-roark-api-key``)."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-roark-api-key") or None


async def _project_name(connection: AsyncConnection, project_id: str) -> str | None:
    name = await connection.scalar(
        select(schema.projects.c.name).where(schema.projects.c.id == project_id)
    )
    return None if name is None else str(name)


async def _key_is_live(connection: AsyncConnection, key_id: str, project_id: str) -> bool:
    found = await connection.scalar(
        select(func.count())
        .select_from(schema.api_keys)
        .where(schema.api_keys.c.id == key_id, schema.api_keys.c.project_id == project_id)
    )
    return bool(found)


async def current_viewer(request: Request, state: ServerState) -> Viewer | None:
    """The viewer a request proves: a key header, else the session, else --no-auth."""
    async with state.reader.connect() as connection:
        key = request_key(request)
        if key is not None:
            owner = await key_owner(connection, key)
            if owner is None:
                return None
            name = await _project_name(connection, owner[1])
            return None if name is None else Viewer(owner[1], name, "bearer")
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = _read_token(state.secret, _SESSION, cookie) if cookie else None
        if session is not None:
            project_id, key_id = session
            allowed = (
                no_auth_allowed(request, state)
                if key_id is None
                else await _key_is_live(connection, key_id, project_id)
            )
            name = await _project_name(connection, project_id) if allowed else None
            if name is not None:
                return Viewer(project_id, name, "session", _csrf_for(state.secret, cookie))
        if no_auth_allowed(request, state):
            projects = await list_projects(connection, limit=2)
            if len(projects) == 1:
                return Viewer(projects[0][0], projects[0][1], "no-auth")
    return None


def set_session(
    response: Response, request: Request, state: ServerState, project_id: str, key_id: str | None
) -> None:
    value = _token(state.secret, _SESSION, project_id, key_id, SESSION_TTL)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_TTL,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    """The login form's double-submit token (there is no session to bind it to yet)."""
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def same_origin(request: Request, state: ServerState) -> bool:
    """False when the browser says the form came from another site."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return True  # not a browser: the CSRF token still has to match
    if origin == "null":
        return False
    given = urlsplit(origin)
    allowed = {urlsplit(str(request.base_url)).netloc}
    if state.settings.public_url:
        allowed.add(urlsplit(state.settings.public_url).netloc)
    return given.netloc in allowed


def csrf_ok(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given, expected)


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (small, so read whole); the first value of each field."""
    body = await request.body()
    if len(body) > _FORM_LIMIT:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items() if values}


def safe_next(target: str | None, default: str = "/calls") -> str:
    """A path on this server to go to after login; anything else becomes ``default``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def login_redirect_target(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(path, safe="")
