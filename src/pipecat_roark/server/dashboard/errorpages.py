"""HTML error pages (404, 403, 500, ...) for the browser, with a way back.

A request is the browser's when it asks for HTML and is not an API or JSON-twin path; every
other request keeps the JSON error the API answers with, so these handlers wrap the ones the
server installed and hand anything that is not a page request back to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from loguru import logger
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from ..errors import StorageUnavailable, error_response
from .access import Viewer, current_viewer
from .templating import page

__all__ = ["error_page", "failure_page", "install_error_pages", "is_page_request"]

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


async def _answer(handler: Handler, request: Request, exc: Exception) -> Response:
    answer = handler(request, exc)
    return answer if isinstance(answer, Response) else await answer


_TITLES = {
    400: ("Bad request", "The address or the form was not understood."),
    401: ("Log in first", "This page needs you to log in."),
    403: ("Forbidden", "You may not open this page."),
    404: ("Not found", "There is no such page."),
    405: ("Not allowed", "This page cannot be used that way."),
    500: ("Something went wrong", "The server failed to show this page; it has been logged."),
    503: ("Unavailable", "The server's storage is unavailable; try again in a moment."),
}


def is_page_request(request: Request) -> bool:
    """A browser asking for a page (not the API, a JSON twin, or a static file)."""
    path = request.url.path
    if request.method not in ("GET", "HEAD", "POST"):
        return False
    if path.startswith(("/v1/", "/assets/")) or path.endswith(".json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(
    status: int,
    *,
    viewer: Viewer | None,
    media_origin: str = "",
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    title, default = _TITLES.get(status, ("Error", "The request failed."))
    response = page(
        "error.html",
        status=status,
        media_origin=media_origin,
        viewer=viewer,
        nav="",
        status_code=status,
        title=title,
        message=message or default,
        back="/calls" if viewer is not None else "/login",
        back_label="Back to the calls" if viewer is not None else "Go to the login page",
    )
    response.headers.update(headers or {})
    return response


async def _viewer(request: Request) -> Viewer | None:
    try:
        return await current_viewer(request, request.app.state.server)
    except Exception as exc:  # the page still renders when the database is down
        logger.debug("no viewer for the error page: {!r}", exc)
        return None


def install_error_pages(app: FastAPI) -> None:
    """Wrap the server's HTTP, storage and unexpected-error handlers with HTML pages."""
    previous_http: Handler | None = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if is_page_request(request):
            return error_page(
                exc.status_code,
                viewer=await _viewer(request),
                headers=getattr(exc, "headers", None),
            )
        if previous_http is not None:
            return await _answer(previous_http, request, exc)
        return error_response(exc.status_code, "http_error", str(exc.detail))

    for kind, previous in list(app.exception_handlers.items()):
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            continue
        if kind is StarletteHTTPException or not _is_failure_handler(kind):
            continue
        app.add_exception_handler(kind, _failure(previous))

    previous_unexpected: Handler | None = app.exception_handlers.get(Exception)

    async def _unexpected(request: Request, exc: Exception) -> Response:
        if previous_unexpected is not None and not is_page_request(request):
            return await _answer(previous_unexpected, request, exc)
        logger.opt(exception=exc).error(
            "unexpected error on {} {}", request.method, request.url.path
        )
        if is_page_request(request):
            return error_page(500, viewer=None)
        return error_response(500, "internal_error", "internal server error")

    app.add_exception_handler(Exception, _unexpected)


def failure_page(scope: Scope) -> Response | None:
    """The 500 page for a browser whose request failed unexpectedly; None for the API."""
    return error_page(500, viewer=None) if is_page_request(Request(scope)) else None


def _is_failure_handler(kind: type[Exception]) -> bool:
    """Handlers that answer a server-side failure (storage, database, I/O), not a bad request."""
    return issubclass(kind, (SQLAlchemyError, OSError, StorageUnavailable))


def _failure(previous: Handler) -> Handler:
    async def _handle(request: Request, exc: Exception) -> Response:
        answer = await _answer(previous, request, exc)
        if not is_page_request(request):
            return answer
        retry = answer.headers.get("retry-after")
        return error_page(
            answer.status_code,
            viewer=None,
            headers={"Retry-After": retry} if retry else None,
        )

    return _handle
