"""Every error leaves the server as ``{"error": {"code", "message", "field"?}}``.

A request that is wrong gets a 4xx naming the field; a storage dependency that is down or
full, or a transaction PostgreSQL rolled back for a concurrent one's sake, gets a 503 with
``Retry-After`` so the client retries later.
"""

from __future__ import annotations

import errno
import json
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "ErrorBody",
    "StorageUnavailable",
    "error_response",
    "install_error_handlers",
    "log_failure",
    "request_id",
    "send_error",
]


# deadlock_detected, serialization_failure: the other transaction is done in moments.
_CONFLICT_STATES = frozenset({"40P01", "40001"})
_CONFLICT_RETRY_AFTER_SECS = 1


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    requestId: str | None = None
    """Set on a 500: the id the server's log names the failure by."""


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Malformed request"),
        (401, "Missing or unknown API key"),
        (403, "Bad or expired signature"),
        (404, "Not found (or another project's)"),
        (409, "Conflicts with what is stored"),
        (413, "Body over its limit"),
        (422, "A field is missing or invalid"),
        (500, "Unexpected failure, logged under the answer's requestId"),
        (503, "Storage unavailable; retry after Retry-After seconds"),
    )
}


class ApiError(Exception):
    """A request the server refuses, with the status, a stable code and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class StorageUnavailable(Exception):
    """The database or blob store cannot take the request now; nothing was half-written."""


def _detail(code: str, message: str, field: str | None, request_id: str | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    if request_id is not None:
        detail["requestId"] = request_id
    return {"error": detail}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> JSONResponse:
    body = _detail(code, message, field, request_id)
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    request_id: str | None = None,
    close: bool = False,
) -> None:
    """The same error body, sent from ASGI middleware (outside FastAPI's handlers)."""
    payload = json.dumps(_detail(code, message, field, request_id)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def log_failure(exc: BaseException, method: object, path: object, found: str | None) -> None:
    """Log an unexpected failure once, with its traceback as Python prints it: without the
    values of variables (which would show transcripts and keys), whatever the log sink's
    ``diagnose`` setting."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    logger.error("unexpected error on {} {} (request {})\n{}", method, path, found, text)


def request_id(request: Request) -> str | None:
    """The id ``request_guard`` gave this request (None outside the app)."""
    value = getattr(request.state, "request_id", None)
    return None if value is None else str(value)


def _field_of(location: tuple[Any, ...]) -> str | None:
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    # A discriminated union adds the tag as a path step ("call-started.agentId").
    parts = [part for part in parts if part not in ("call-started", "call-ended")]
    return ".".join(parts) or None


def _is_conflict(exc: BaseException) -> bool:
    """PostgreSQL rolled the transaction back for another's sake (a deadlock, a
    serialization failure): nothing was written, and the same request succeeds again."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and sqlstate in _CONFLICT_STATES


def _is_storage_failure(exc: BaseException) -> bool:
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, StorageUnavailable)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EROFS,
        errno.ECONNREFUSED,
    ):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


def install_error_handlers(app: FastAPI, retry_after: int) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        kind = str(first.get("type", "invalid"))
        field = _field_of(tuple(first.get("loc", ())))
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            field = "event"
        if kind == "json_invalid":
            return error_response(400, "invalid_json", "body is not valid JSON", "body")
        if kind == "missing":
            code = "missing_field"
        elif kind == "extra_forbidden":
            code = "unknown_field"
        else:
            code = "invalid_field"
        message = f"{field or 'body'}: {first.get('msg', 'invalid')}"
        return error_response(422, code, message, field or "body")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            "body" if exc.status_code in (400, 413) else None,
            headers=getattr(exc, "headers", None),
        )

    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        if _is_conflict(exc):
            logger.warning(
                "{} {} met a concurrent request and was rolled back: {!r}",
                request.method,
                request.url.path,
                exc,
            )
            return error_response(
                503,
                "conflict",
                "the request met a concurrent one and wrote nothing; retry",
                headers={"Retry-After": str(_CONFLICT_RETRY_AFTER_SECS)},
            )
        if _is_storage_failure(exc):
            logger.warning(
                "storage unavailable on {} {}: {!r}", request.method, request.url.path, exc
            )
            return error_response(
                503,
                "storage_unavailable",
                "storage is unavailable; retry later",
                headers={"Retry-After": str(retry_after)},
            )
        found = request_id(request)
        log_failure(exc, request.method, request.url.path, found)
        return error_response(500, "internal_error", "internal server error", request_id=found)

    # Registered per class (not for Exception) so the handler answers without re-raising.
    for storage_error in (SQLAlchemyError, OSError, StorageUnavailable):
        app.add_exception_handler(storage_error, _storage)
