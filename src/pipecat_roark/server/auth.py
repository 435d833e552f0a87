"""Projects and API keys: a key is shown once, only its SHA-256 is stored.

Ingest takes the key in ``x-roark-api-key`` or ``Authorization: Bearer``; the REST API
takes ``Authorization: Bearer``. Both resolve to the one project the key belongs to.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema
from .database import insert_or_select, utcnow
from .errors import ApiError
from .state import ServerState, get_state

__all__ = [
    "KEY_PREFIX",
    "KeyInfo",
    "ProjectId",
    "create_key",
    "ensure_project",
    "hash_key",
    "list_keys",
    "require_project",
]

KEY_PREFIX = "rk_live_"

_api_key_header = APIKeyHeader(name="x-roark-api-key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def ensure_project(connection: AsyncConnection, name: str) -> str:
    """The id of the project called ``name``, creating it on first use."""
    row = await insert_or_select(
        connection,
        schema.projects,
        {"id": str(uuid.uuid4()), "name": name, "created_at": utcnow()},
        ("name",),
    )
    return str(row.id)


async def create_key(connection: AsyncConnection, project_id: str) -> str:
    """A new key for the project; the caller must show it now, it cannot be recovered."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await connection.execute(
        schema.api_keys.insert().values(
            id=str(uuid.uuid4()),
            project_id=project_id,
            key_hash=hash_key(key),
            key_prefix=key[: len(KEY_PREFIX) + 4],
            created_at=utcnow(),
        )
    )
    return key


@dataclass(frozen=True)
class KeyInfo:
    project: str
    prefix: str
    created_at: datetime


async def list_keys(connection: AsyncConnection) -> list[KeyInfo]:
    rows = await connection.execute(
        select(schema.projects.c.name, schema.api_keys.c.key_prefix, schema.api_keys.c.created_at)
        .join(schema.projects, schema.projects.c.id == schema.api_keys.c.project_id)
        .order_by(schema.projects.c.name, schema.api_keys.c.created_at)
    )
    return [KeyInfo(row.name, row.key_prefix, row.created_at) for row in rows]


async def require_project(
    state: Annotated[ServerState, Depends(get_state)],
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The project id of the request's key, or a 401."""
    key = api_key or (bearer.credentials if bearer else None)
    if not key:
        raise ApiError(
            401,
            "missing_api_key",
            "authorization: send the key as 'Authorization: Bearer <key>' or 'x-roark-api-key'",
            "authorization",
        )
    key_hash = hash_key(key)
    project_id = state.known_keys.get(key_hash)
    if project_id is None:
        async with state.reader.connect() as connection:
            project_id = await connection.scalar(
                select(schema.api_keys.c.project_id).where(schema.api_keys.c.key_hash == key_hash)
            )
        if project_id is None:
            raise ApiError(
                401, "invalid_api_key", "authorization: unknown API key", "authorization"
            )
        state.known_keys.put(key_hash, str(project_id))
    request.state.project_id = project_id
    return str(project_id)


ProjectId = Annotated[str, Depends(require_project)]
