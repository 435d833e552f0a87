"""Cursor pagination: the cursor holds the last row's sort key and id (keyset, not offset).

Pages stay stable while new calls arrive, and a page costs an index range scan however deep
it is. A cursor also names the sort it was made for, so it cannot be replayed on another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import ApiError
from .sanitise import clean_text

__all__ = ["Page", "decode_cursor", "encode_cursor", "fetch_page", "keyset_after"]


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


_INT64 = 2**63


def _decode_value(value: Any) -> Any:
    """A key as a query can compare it; ``ValueError`` for one no database takes.

    A cursor is client input: an edited one may hold a naive or out-of-range time, NUL or a
    lone surrogate, or an integer past 64 bits.
    """
    if isinstance(value, dict) and isinstance(value.get("t"), str):
        moment = datetime.fromisoformat(value["t"])
        if moment.tzinfo is None:
            raise ValueError("naive time")
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("time out of range") from None
    if isinstance(value, str) and clean_text(value) != value:
        raise ValueError("unstorable text")
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        raise ValueError("integer out of range")
    return value


def encode_cursor(sort: str, direction: str, key: Any, row_id: str) -> str:
    payload = json.dumps([sort, direction, _encode_value(key), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, direction: str) -> tuple[Any, str]:
    """The (sort key, id) a cursor continues after; a 422 naming ``after`` if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for_sort, made_for_direction, key, row_id = json.loads(raw)
        key = _decode_value(key)
        _decode_value(row_id)
    except (ValueError, TypeError, RecursionError, binascii.Error):
        raise ApiError(422, "invalid_field", "after: not a cursor from this API", "after") from None
    if (made_for_sort, made_for_direction) != (sort, direction) or not isinstance(row_id, str):
        raise ApiError(
            422,
            "invalid_field",
            "after: the cursor belongs to another sortBy/sortDirection",
            "after",
        )
    return key, row_id


def keyset_after(
    sort_key: ColumnElement[Any], row_id: ColumnElement[Any], direction: str, key: Any, last_id: str
) -> ColumnElement[bool]:
    """Rows after (key, id) in the list's order."""
    if sort_key.compare(row_id):  # ordered by id alone: one range on its index
        return row_id > last_id if direction == "asc" else row_id < last_id
    if direction == "asc":
        return or_(sort_key > key, and_(sort_key == key, row_id > last_id))
    return or_(sort_key < key, and_(sort_key == key, row_id < last_id))


@dataclass(frozen=True)
class Page:
    rows: list[Row[Any]]
    has_more: bool
    next_cursor: str | None
    total: int

    def pagination(self) -> dict[str, Any]:
        return {"hasMore": self.has_more, "nextCursor": self.next_cursor, "total": self.total}


async def fetch_page(
    connection: AsyncConnection,
    table: Table,
    *,
    conditions: list[ColumnElement[bool]],
    sort_name: str,
    sort_key: ColumnElement[Any],
    key_type: type,
    direction: str,
    after: str | None,
    limit: int,
    counted_as: Sequence[Sequence[ColumnElement[bool]]] | None = None,
    total: int | None = None,
) -> Page:
    """One page of ``table`` rows matching ``conditions``, ordered by (sort key, id), and
    the count of them all: ``total`` when the caller knows it, else of ``conditions``, or
    the sum of the counts of ``counted_as`` (conditions of disjoint rows, together the same
    rows, when they count faster)."""
    page_conditions = list(conditions)
    if after:
        key, last_id = decode_cursor(after, sort_name, direction)
        if not isinstance(key, key_type) or isinstance(key, bool):
            raise ApiError(422, "invalid_field", "after: not a cursor from this API", "after")
        page_conditions.append(keyset_after(sort_key, table.c.id, direction, key, last_id))
    if direction == "asc":
        order = (sort_key.asc(), table.c.id.asc())
    else:
        order = (sort_key.desc(), table.c.id.desc())
    rows = list(
        await connection.execute(
            select(table, sort_key.label("sort_key"))
            .where(*page_conditions)
            .order_by(*order)
            .limit(limit + 1)
        )
    )
    if total is None:
        total = 0
        for counted in [conditions] if counted_as is None else counted_as:
            query = select(func.count()).select_from(table).where(*counted)
            total += int(await connection.scalar(query) or 0)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(sort_name, direction, rows[-1].sort_key, rows[-1].id) if has_more else None
    )
    return Page(rows=rows, has_more=has_more, next_cursor=next_cursor, total=total)
