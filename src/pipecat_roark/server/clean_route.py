"""Routes whose JSON bodies are made storable (``sanitise``) before they are validated.

FastAPI parses a JSON body with ``Request.json()``; these routes hand it a request whose
``json()`` also replaces the values no database can hold, and leaves what it changed in
``request.state.repairs`` for the route to report.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from .sanitise import Repair, load_json

__all__ = ["SanitisedJsonRoute", "request_repairs"]

_IDENTIFIERS = frozenset({"pipecatCallId"})


class _SanitisedJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json, self.state.repairs = load_json(await self.body(), _IDENTIFIERS)
            except RecursionError:
                raise HTTPException(400, "body: nested too deeply to parse") from None
        return self._json


class SanitisedJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def sanitised(request: Request) -> Response:
            return await handler(_SanitisedJsonRequest(request.scope, request.receive))

        return sanitised


def request_repairs(request: Request) -> list[Repair]:
    """What ``json()`` changed in this request's body (nothing for other routes)."""
    repairs: list[Repair] = getattr(request.state, "repairs", [])
    return repairs
