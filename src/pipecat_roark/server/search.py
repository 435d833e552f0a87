"""Text search in lists: a case-insensitive substring of any of some columns.

A scan, not an index: fine for a project's calls on one machine (see benchmarks/README.md);
full-text indexes would replace this one function.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_

from . import schema

__all__ = ["call_text_matches", "contains_text"]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_text(text: str, *columns: Any) -> ColumnElement[bool]:
    """Rows where ``text`` appears, as typed, in any of ``columns``, case aside."""
    pattern = f"%{_escape_like(text)}%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def call_text_matches(text: str) -> ColumnElement[bool]:
    """Calls whose transcript or ``pipecatCallId`` holds ``text``."""
    calls = schema.calls.c
    return contains_text(text, calls.transcript_text, calls.pipecat_call_id)
