"""Calls in the order they started, a batch at a time: the rebuilds that write an agent's rows
a day at a time walk its calls so, by a keyset on (start, id), never an offset, which would
read every row before it again."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_

from . import schema

__all__ = ["call_start", "in_start_order"]

_calls = schema.calls

call_start = func.coalesce(_calls.c.started_at, _calls.c.created_at, type_=schema.UTCDateTime())
"""When a call started, or when the server first heard of it (never NULL)."""


def in_start_order(
    connection: Connection, query: Select[Any], batch: int
) -> Iterator[Sequence[Any]]:
    """``query``'s calls by (``call_start``, id), ``batch`` rows at a time; ``query`` selects
    ``call_start`` labelled ``started`` and the call's ``id``."""
    after: tuple[datetime, str] | None = None
    while True:
        page = query
        if after is not None:
            page = query.where(
                or_(call_start > after[0], and_(call_start == after[0], _calls.c.id > after[1]))
            )
        rows = connection.execute(page.order_by(call_start, _calls.c.id).limit(batch)).all()
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = (rows[-1].started, rows[-1].id)
