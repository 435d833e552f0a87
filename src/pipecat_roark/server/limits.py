"""Request body limits, enforced while the body streams in (not after it is buffered)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import send_error

__all__ = ["CHUNK_BODY_LIMIT", "JSON_BODY_LIMIT", "BodyLimitMiddleware", "BodyTooLarge"]

JSON_BODY_LIMIT = 2 * 1024 * 1024
CHUNK_BODY_LIMIT = 16 * 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so body parsers pass it through unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than the limit of {limit} bytes")


class BodyLimitMiddleware:
    """Answer 413 once a body passes its limit: chunks under ``upload_prefix``, JSON elsewhere."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        upload_prefix: str,
        json_limit: int = JSON_BODY_LIMIT,
        upload_limit: int = CHUNK_BODY_LIMIT,
    ) -> None:
        self.app = app
        self.upload_prefix = upload_prefix
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = str(scope["path"]).startswith(self.upload_prefix)
        limit = self.upload_limit if is_upload else self.json_limit
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, limit)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await _send_413(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    await send_error(
        send,
        413,
        "body_too_large",
        f"body: larger than the limit of {limit} bytes",
        field="body",
        close=True,
    )
