"""The search index of calls, kept at ingest: one ``call_search`` row per ended call.

The row holds the call's searched text as ``search_terms.document`` makes it. On SQLite an
FTS5 table reads it (``call_search_fts``, kept in step by triggers the migration made); on
PostgreSQL a GIN index over ``to_tsvector('simple', words)``, the call's distinct words.
``rebuild`` fills it from the calls (the migration that created it runs it, and so does
``pipecat-roark rebuild-search``). Each word's count of calls (``search_counts``) and each
frequent word's set of calls (``search_sets``) follow every row ingest writes or a deletion
removes.

Synchronous on purpose: the migration runs it as it is, the server through ``run_sync``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from . import schema, search_counts, search_sets
from .search_terms import TOO_MANY_WORDS, call_text, document

__all__ = [
    "TOO_MANY_WORDS",
    "count_ended_call",
    "forget_call",
    "rebuild",
    "row_of",
    "store_ended_call",
]

_TSVECTOR_BUDGET = 700_000  # bytes, well under PostgreSQL's 1 048 575
_BATCH = 500
_search = schema.call_search
_calls = schema.calls


def row_of(call_id: str, transcript_text: str | None, tool_calls: Any) -> dict[str, Any]:
    """The ``call_search`` row of a call with this text."""
    body = document(call_text(transcript_text, tool_calls))
    distinct = search_counts.distinct_words(body)
    size = sum(len(word) + 8 for word in distinct)
    # Too many for a tsvector: the query lets the call through to the check of its body.
    return {
        "call_id": call_id,
        "body": body,
        "words": TOO_MANY_WORDS if size > _TSVECTOR_BUDGET else " ".join(distinct),
    }


def store_ended_call(
    connection: Connection, call_id: str, transcript_text: str | None, tool_calls: Any
) -> tuple[int, str]:
    """Index a call that call-ended has just ended, with the text it stored; return its
    index row's id and text, for ``count_ended_call``. Call-ended ends a call once, under
    the call's lock, and only an ended call is indexed, so the call has no row yet: nothing
    is read (on SQLite every statement of a write is time the other writers wait)."""
    searched = row_of(call_id, transcript_text, tool_calls)
    stored = insert(_search).values(searched).returning(_search.c.id)
    return int(connection.execute(stored).scalar_one()), str(searched["body"])


def count_ended_call(connection: Connection, project_id: str, search_id: int, body: str) -> None:
    """Add the call's words to the project's counts and sets, which every call-ended of the
    project writes: a write runs this last, after the call's own rows."""
    counted = search_counts.add_call(connection, project_id, body)
    search_sets.add_call(connection, project_id, search_id, counted)


def forget_call(connection: Connection, call_id: str) -> None:
    """Take a call out of the index (before the call is deleted)."""
    row = connection.execute(
        select(_search.c.id, _calls.c.project_id, _search.c.body)
        .join(_calls, _calls.c.id == _search.c.call_id)
        .where(_search.c.call_id == call_id)
    ).first()
    if row is None:
        return
    connection.execute(delete(_search).where(_search.c.call_id == call_id))
    words, gone = search_counts.remove_call(connection, row.project_id, row.body)
    search_sets.remove_call(connection, row.project_id, row.id, words, gone)


def rebuild(connection: Connection, progress: Callable[[int, int], None] | None = None) -> int:
    """The index made again from every ended call, a batch at a time; return how many.
    The words' counts and sets stay as they were (``search_counts.rebuild`` and
    ``search_sets.rebuild`` make them again)."""
    connection.execute(delete(_search))
    ended = _calls.c.ended_received.is_(True)
    total = connection.scalar(select(func.count()).select_from(_calls).where(ended)) or 0
    query = select(_calls.c.id, _calls.c.transcript_text, _calls.c.tool_calls).where(ended)
    done, after = 0, None
    while True:
        page = query if after is None else query.where(_calls.c.id > after)
        batch = connection.execute(page.order_by(_calls.c.id).limit(_BATCH)).all()
        if batch:
            connection.execute(insert(_search), [row_of(*row) for row in batch])
            done += len(batch)
            after = batch[-1].id
            if progress is not None:
                progress(done, total)
        if len(batch) < _BATCH:
            return done
