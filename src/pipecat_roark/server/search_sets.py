"""The calls holding each of a project's frequent words, kept as sets of bits beside the
search index, so that the exact total of a search of several words (the REST list's
``total``) is the count of the calls in every word's set, not a count of every call holding
them all: two words held by half and by a fifth of a million calls took 1 s to count on
either database.

A set is rows of ``BLOCK`` bits (``search_word_sets``): bit n of row b is the call indexed
as ``call_search.id`` b x ``BLOCK`` + n. A row of 1 KiB stays in its table page on
PostgreSQL (TOAST starts at 2 KiB), so setting a bit rewrites one small row; a word of a
million calls is 123 rows, read whole in a few milliseconds.

Which words: those held by at least ``frequent_from`` calls, where the list's own count
stops reading the index (``search_costs``: 42 000 calls at a million indexed; 94 words of
the benchmarks' generated million, 11 MB). Fewer calls, and the index counts them fast
enough. A word's set is made from the index when a call ending takes it to that many (once:
``search_word_counts.has_set``), or by ``rebuild``; it is kept while any call holds the word.

Kept at ingest in word order after ``search_counts`` (docs/server.md: the lock order):
call-ended sets the call's bit in each of its words' sets, one statement (``set_bit``:
PostgreSQL's own on ``bytea``, database.py's on SQLite), and a deletion clears it.

Synchronous on purpose, as ``search_counts`` is: the migration runs it as it is, the server
through ``run_sync``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select, update

from . import schema
from .database import dialect_insert
from .search_costs import COUNT_COST_RATIO, few_matches
from .search_counts import indexed_words
from .search_fts import indexed_calls

__all__ = ["BLOCK", "add_call", "calls_holding_all", "frequent_from", "rebuild", "remove_call"]

BLOCK = 8192
"""Calls a row of a set holds: 1 KiB of bits."""
_BYTES = BLOCK // 8
_BATCH = 2000
_sets = schema.search_word_sets
_counts = schema.search_word_counts
_search = schema.call_search
_calls = schema.calls


def frequent_from(indexed: int) -> int:
    """How many calls of ``indexed`` a word is held by when it gets a set."""
    return few_matches(indexed, COUNT_COST_RATIO)


def add_call(
    connection: Connection, project_id: str, search_id: int, counted: Sequence[Row[Any]]
) -> None:
    """Put a call just indexed as ``search_id`` in its words' sets. ``counted``: each of its
    words' ``word``, ``calls`` and ``has_set`` after counting it (``search_counts.add_call``)."""
    block, bit = divmod(search_id, BLOCK)
    kept = sorted(row.word for row in counted if row.has_set)
    if kept:
        fresh = bytearray(_BYTES)
        fresh[bit >> 3] = 1 << (bit & 7)
        upsert = dialect_insert(connection, _sets).values(
            project_id=project_id, block=block, bits=bytes(fresh)
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=["project_id", "word", "block"],
            set_={"bits": func.set_bit(_sets.c.bits, bit, 1)},
        )
        for start in range(0, len(kept), _BATCH):
            connection.execute(upsert, [{"word": word} for word in kept[start : start + _BATCH]])
    least = frequent_from(search_id)
    for word in sorted(row.word for row in counted if not row.has_set and row.calls >= least):
        _make(connection, project_id, word)


def _make(connection: Connection, project_id: str, word: str) -> None:
    """A word's set made from the index: the call being indexed took it to ``frequent_from``
    calls, and holds the word's count, so no other call adds to the set meanwhile."""
    found = indexed_calls(((word,),), connection.dialect.name, of=_search.c.id)
    ids = connection.scalars(
        select(_search.c.id)
        .join(_calls, _calls.c.id == _search.c.call_id)
        .where(_calls.c.project_id == project_id, _search.c.id.in_(found))
    )
    bits = bytearray()
    for search_id in ids:
        byte = search_id >> 3
        if byte >= len(bits):
            bits.extend(bytes(byte + 1 - len(bits)))
        bits[byte] |= 1 << (search_id & 7)
    mine = (_sets.c.project_id == project_id) & (_sets.c.word == word)
    connection.execute(delete(_sets).where(mine))
    _write(connection, project_id, [(word, bits)])


def _write(connection: Connection, project_id: str, sets: Iterable[tuple[str, bytearray]]) -> None:
    """Store each (word, bits of every call by ``call_search.id``) as its rows, all-zero
    blocks left out, and mark the words as having a set."""
    rows: list[dict[str, Any]] = []
    words: list[str] = []
    for word, bits in sets:
        words.append(word)
        for start in range(0, len(bits), _BYTES):
            block = bytes(bits[start : start + _BYTES]).ljust(_BYTES, b"\0")
            if block.count(0) != _BYTES:
                rows.append(
                    {
                        "project_id": project_id,
                        "word": word,
                        "block": start // _BYTES,
                        "bits": block,
                    }
                )
    for start in range(0, len(rows), _BATCH):
        connection.execute(_sets.insert(), rows[start : start + _BATCH])
    for start in range(0, len(words), _BATCH):
        connection.execute(
            update(_counts)
            .where(
                _counts.c.project_id == project_id,
                _counts.c.word.in_(words[start : start + _BATCH]),
            )
            .values(has_set=True)
        )


def remove_call(
    connection: Connection, project_id: str, search_id: int, words: list[str], gone: list[str]
) -> None:
    """Take a call leaving the index out of its ``words``' sets; the words in ``gone``, that
    no call holds any more, lose their sets (``search_counts.remove_call`` returns both)."""
    block, bit = divmod(search_id, BLOCK)
    for start in range(0, len(words), _BATCH):
        mine = _sets.c.project_id == project_id, _sets.c.word.in_(words[start : start + _BATCH])
        cleared = func.set_bit(_sets.c.bits, bit, 0)
        connection.execute(update(_sets).where(*mine, _sets.c.block == block).values(bits=cleared))
    for start in range(0, len(gone), _BATCH):
        mine = _sets.c.project_id == project_id, _sets.c.word.in_(gone[start : start + _BATCH])
        connection.execute(delete(_sets).where(*mine))


def calls_holding_all(connection: Connection, project_id: str, words: Sequence[str]) -> int | None:
    """How many of the project's indexed calls hold every one of ``words`` (indexed words,
    each once), from their sets; None if one of them has none (the index counts them)."""
    has_set = dict(
        connection.execute(
            select(_counts.c.word, _counts.c.has_set).where(
                _counts.c.project_id == project_id, _counts.c.word.in_(words)
            )
        ).all()
    )
    if len(has_set) < len(words):
        return 0  # a word no call holds
    if not all(has_set.values()):
        return None
    rows = connection.execute(
        select(_sets.c.block, _sets.c.bits)
        .where(_sets.c.project_id == project_id, _sets.c.word.in_(words))
        .order_by(_sets.c.block)
    )
    total = 0
    for _block, group in groupby(rows, key=lambda row: row.block):
        blocks = [int.from_bytes(row.bits, "little") for row in group]
        if len(blocks) == len(words):
            every = blocks[0]
            for other in blocks[1:]:
                every &= other
            total += every.bit_count()
    return total


def rebuild(
    connection: Connection,
    progress: Callable[[int, int], None] | None = None,
    *,
    least: int | None = None,
) -> int:
    """Every set made again from ``call_search``, after ``search_counts.rebuild``; return
    how many words have one. ``least``: the calls a word must be held by, for
    ``frequent_from`` (the tests give every word a set).

    One pass over the index, as ``search_counts.rebuild``'s, each frequent word's bits kept
    in memory (an eighth of a byte per call indexed: 125 KB a word at a million calls)."""
    connection.execute(delete(_sets))
    connection.execute(update(_counts).where(_counts.c.has_set).values(has_set=False))
    indexed = int(connection.scalar(select(func.max(_search.c.id))) or 0)
    least = frequent_from(indexed) if least is None else least
    chosen: dict[str, set[str]] = {}
    for project_id, word in connection.execute(
        select(_counts.c.project_id, _counts.c.word).where(_counts.c.calls >= least)
    ):
        chosen.setdefault(project_id, set()).add(word)
    if not chosen:
        return 0
    bits = {
        (project_id, word): bytearray(indexed // 8 + 1)
        for project_id, words in chosen.items()
        for word in words
    }
    for row in indexed_words(connection, progress):
        words = chosen.get(row.project_id)
        if words is None:
            continue
        byte, mask = row.id >> 3, 1 << (row.id & 7)
        for word in words.intersection(row.words.split()):
            bits[row.project_id, word][byte] |= mask
    for project_id, words in chosen.items():
        _write(connection, project_id, ((word, bits[project_id, word]) for word in sorted(words)))
    return len(bits)
