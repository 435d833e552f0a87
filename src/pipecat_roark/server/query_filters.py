"""A list filter this server does not support is a 422 naming it, never silently ignored.

Roark's SDK sends filters this server has no data for (``properties[<name>][exists]``,
simulation ids): answering every call to them would let a client believe it had filtered.
Any query parameter the route does not declare is refused the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from .errors import ApiError

__all__ = ["refuse_unknown_query"]


def _declared(dependant: Any) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """A router dependency: 422 for the first query parameter the route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _declared(route.dependant)
    for name in request.query_params:
        if name not in known:
            raise ApiError(
                422,
                "unsupported_filter",
                f"{name}: not a filter or parameter this server supports",
                name,
            )
