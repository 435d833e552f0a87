"""How many of a project's indexed calls hold each word, kept beside the search index, so
the exact total of a one-word search (the REST list's ``total``) is one row read, not a
count of every match: half of a million calls hold a common word, and counting them took
2.5 s on either database.

A call's words are added when it is indexed and taken away when it leaves the index, in
word order, so that calls ending or deleted at once lock the words they share in one order
(always after the call, its agent and the latency rollups: docs/server.md). Every indexed
call is ENDED (call-ended sets both at once, and nothing sets a call back), so the counts
are also those of ``status=ENDED``. ``rebuild`` counts again from ``call_search``: the
migration that added the table runs it, and so does ``pipecat-roark rebuild-search``.

Synchronous on purpose, as ``search_index`` is: the migration runs it as it is, the server
through ``run_sync``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, Row, case, delete, func, select

from . import schema
from .database import dialect_insert
from .search_terms import SEPARATOR, TOO_MANY_WORDS

__all__ = [
    "add_call",
    "calls_holding",
    "distinct_words",
    "indexed_words",
    "rebuild",
    "remove_call",
]

_counts = schema.search_word_counts
_search = schema.call_search
_calls = schema.calls
_BATCH = 2000


def distinct_words(body: str) -> list[str]:
    """The words of an indexed ``body`` (``search_terms.document``), each once, in order."""
    return sorted(set(body.split()) - {SEPARATOR})


def _upsert(connection: Connection, project_id: str, counted: Iterable[tuple[str, int]]) -> Any:
    """The upsert that adds each (word, calls) to the project's counts, and its rows in word
    order: run in batches of ``_BATCH`` rows, it takes the words a word at a time."""
    rows = [
        {"project_id": project_id, "word": word, "calls": calls} for word, calls in sorted(counted)
    ]
    upsert = dialect_insert(connection, _counts)
    upsert = upsert.on_conflict_do_update(
        index_elements=["project_id", "word"],
        set_={"calls": _counts.c.calls + upsert.excluded.calls},
    )
    return upsert, rows


def add_call(connection: Connection, project_id: str, body: str) -> list[Row[Any]]:
    """Count a call that was just indexed with this ``body``. Return each of its words'
    ``word``, ``calls`` and ``has_set`` as counted: ``search_sets`` takes them from here, so
    the call's words are not read again."""
    upsert, rows = _upsert(connection, project_id, ((word, 1) for word in distinct_words(body)))
    upsert = upsert.returning(_counts.c.word, _counts.c.calls, _counts.c.has_set)
    counted: list[Row[Any]] = []
    for start in range(0, len(rows), _BATCH):
        counted.extend(connection.execute(upsert, rows[start : start + _BATCH]))
    return counted


def remove_call(connection: Connection, project_id: str, body: str) -> tuple[list[str], list[str]]:
    """Uncount a call leaving the index; a word no call holds any more loses its row.
    Return the call's words, and those no call holds any more."""
    words = distinct_words(body)
    upsert, rows = _upsert(connection, project_id, ((word, -1) for word in words))
    for start in range(0, len(rows), _BATCH):
        connection.execute(upsert, rows[start : start + _BATCH])
    gone: list[str] = []
    for start in range(0, len(words), _BATCH):
        gone.extend(
            connection.scalars(
                delete(_counts)
                .where(
                    _counts.c.project_id == project_id,
                    _counts.c.word.in_(words[start : start + _BATCH]),
                    _counts.c.calls <= 0,
                )
                .returning(_counts.c.word)
            )
        )
    return words, sorted(gone)


def calls_holding(connection: Connection, project_id: str, word: str) -> int:
    """How many of the project's indexed calls hold ``word`` (an indexed word)."""
    found = connection.scalar(
        select(_counts.c.calls).where(_counts.c.project_id == project_id, _counts.c.word == word)
    )
    return int(found or 0)


def indexed_words(
    connection: Connection, progress: Callable[[int, int], None] | None = None
) -> Iterator[Any]:
    """Each indexed call's ``id`` (in ``call_search``), ``project_id`` and distinct
    ``words`` (a space apart), read a batch at a time in ``id`` order."""
    total = connection.scalar(select(func.count()).select_from(_search)) or 0
    done = 0
    # A row's distinct words, shorter than its body, unless there were too many to keep.
    words = case((_search.c.words == TOO_MANY_WORDS, _search.c.body), else_=_search.c.words)
    query = (
        select(_search.c.id, _calls.c.project_id, words.label("words"))
        .join(_calls, _calls.c.id == _search.c.call_id)
        .order_by(_search.c.id)
        .limit(_BATCH)
    )
    after = None
    while True:
        page = query if after is None else query.where(_search.c.id > after)
        batch = connection.execute(page).all()
        yield from batch
        done += len(batch)
        if progress is not None and batch:
            progress(done, total)
        if len(batch) < _BATCH:
            return
        after = batch[-1].id


def rebuild(connection: Connection, progress: Callable[[int, int], None] | None = None) -> int:
    """Every count made again from ``call_search``; return how many words were counted.
    No word has a set after it (``search_sets.rebuild`` makes them).

    One pass over the index a batch at a time, counted in memory per project (an entry per
    distinct (project, word): a million calls with an order number each make a million)."""
    connection.execute(delete(_counts))
    counted: dict[str, Counter[str]] = {}
    for row in indexed_words(connection, progress):
        counted.setdefault(row.project_id, Counter()).update(set(row.words.split()))
    kept = 0
    for project_id, counter in counted.items():
        counter.pop(SEPARATOR, None)
        kept += len(counter)
        _insert(connection, project_id, counter)
    return kept


def _insert(connection: Connection, project_id: str, counter: Counter[str]) -> None:
    rows = [{"project_id": project_id, "word": w, "calls": n} for w, n in counter.items()]
    for start in range(0, len(rows), _BATCH):
        connection.execute(_counts.insert(), rows[start : start + _BATCH])
