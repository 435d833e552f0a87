"""The outermost layer of every request: an id, URLs no database can take, and a JSON 500.

Every answer carries ``x-request-id``. A path or query string holding NUL is refused with a
422 naming the field (PostgreSQL cannot compare text with NUL in it). An exception that no
handler answered is logged once, with its traceback but without variable values, under the
request id, and answered as the usual JSON error with that id, never as plain text.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import log_failure, send_error
from .sanitise import clean_text

__all__ = ["REQUEST_ID_HEADER", "RequestGuard"]

REQUEST_ID_HEADER = "x-request-id"


def _nul_field(scope: Scope) -> str | None:
    """The part of the URL that holds a NUL character, if any."""
    if "\x00" in str(scope.get("path", "")):
        return "path"
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return clean_text(name) or "query"
    return None


class RequestGuard:
    """``failure_page`` answers a failure for a browser (an HTML page with a way back);
    when it gives None, the answer is the JSON error."""

    def __init__(
        self, app: ASGIApp, failure_page: Callable[[Scope], Response | None] | None = None
    ) -> None:
        self.app = app
        self.failure_page = failure_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        field = _nul_field(scope)
        if field is not None:
            await send_error(
                send_with_id,
                422,
                "invalid_field",
                f"{field}: must not contain NUL characters",
                field=field,
            )
            return
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log_failure(exc, scope.get("method"), scope.get("path"), request_id)
            if started:
                raise
            page = self.failure_page(scope) if self.failure_page is not None else None
            if page is not None:
                await page(scope, receive, send_with_id)
                return
            await send_error(
                send_with_id,
                500,
                "internal_error",
                "internal server error",
                request_id=request_id,
            )
