"""Text search in lists: calls by their words (an index, see docs/dashboard.md, "Searching
calls"), agents by a case-insensitive substring of their name or id (a scan: few rows)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, true

from . import schema
from .search_fts import MatchingCalls
from .search_terms import parse

__all__ = ["call_text_matches", "contains_text"]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_text(text: str, *columns: Any) -> ColumnElement[bool]:
    """Rows where ``text`` appears, as typed, in any of ``columns``, case aside."""
    pattern = f"%{_escape_like(text)}%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def call_text_matches(text: str) -> ColumnElement[bool]:
    """Calls whose ``pipecatCallId`` is ``text`` (spaces around aside), or whose transcript
    and tool calls hold every word and phrase of ``text`` (``search_terms.parse``). Only
    spaces: every call, as if no search were given."""
    if not text.strip():
        return true()
    calls = schema.calls.c
    terms = parse(text)
    by_id = calls.pipecat_call_id.in_(sorted({text, text.strip()}))
    return or_(by_id, MatchingCalls(terms) if terms else false())
