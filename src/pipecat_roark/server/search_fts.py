"""The database side of search: the full-text structures over ``call_search``, the query
that reads them and the estimate of how many calls it finds, one form per backend for the
same ``search_terms.Terms``; and the check of one call's text, the same on both.

SQLite: an FTS5 table with ``call_search`` as its external content, kept in step by
triggers; a query is FTS5 phrases, each word quoted (words are ASCII letters and digits
only, so no FTS5 syntax can reach it). PostgreSQL: a GIN index over the call's distinct
words as a ``tsvector`` ('simple': no stemming, no stop words) finds the calls holding every
word; a phrase is then checked exactly on the text (``LIKE '% a b %'``), since a
``tsvector``'s positions stop counting at 16 383.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, column, func, literal_column, or_, select
from sqlalchemy import table as light_table
from sqlalchemy.ext.asyncio import AsyncConnection

from . import schema
from .search_terms import SEPARATOR, TOO_MANY_WORDS, Terms

__all__ = [
    "FTS_TABLES",
    "create_statements",
    "drop_statements",
    "estimated_matches",
    "indexed_calls",
    "text_holds",
]

FTS_TABLE = "call_search_fts"
FTS_TABLES = frozenset(
    FTS_TABLE + suffix for suffix in ("", "_data", "_idx", "_docsize", "_config")
)
"""The SQLite tables FTS5 makes for the index (not in ``schema.metadata``)."""
_SIMPLE: ColumnElement[str] = literal_column("'simple'")
_search = schema.call_search

_SQLITE_CREATE = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(body, content='call_search', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    f"""CREATE TRIGGER call_search_insert AFTER INSERT ON call_search BEGIN
  INSERT INTO {FTS_TABLE}(rowid, body) VALUES (new.id, new.body);
END""",
    f"""CREATE TRIGGER call_search_delete AFTER DELETE ON call_search BEGIN
  INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, body) VALUES ('delete', old.id, old.body);
END""",
    f"""CREATE TRIGGER call_search_update AFTER UPDATE ON call_search BEGIN
  INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, body) VALUES ('delete', old.id, old.body);
  INSERT INTO {FTS_TABLE}(rowid, body) VALUES (new.id, new.body);
END""",
)
_POSTGRES_CREATE = (
    "CREATE INDEX ix_call_search_words ON call_search USING gin (to_tsvector('simple', words))",
)


def create_statements(dialect: str) -> tuple[str, ...]:
    """The DDL that makes the full-text structures, after ``call_search`` exists."""
    return _SQLITE_CREATE if dialect == "sqlite" else _POSTGRES_CREATE


def drop_statements(dialect: str) -> tuple[str, ...]:
    if dialect == "sqlite":
        triggers = ("insert", "delete", "update")
        return (
            *(f"DROP TRIGGER call_search_{name}" for name in triggers),
            f"DROP TABLE {FTS_TABLE}",
        )
    return ("DROP INDEX ix_call_search_words",)


def _sqlite_query(terms: Terms) -> str:
    return " ".join('"' + " ".join(term) + '"' for term in terms)


def _phrase(term: tuple[str, ...]) -> ColumnElement[bool]:
    # Words are ASCII letters and digits: nothing in them is special to LIKE.
    return _search.c.body.like(f"% {' '.join(term)} %")


def text_holds(terms: Terms) -> ColumnElement[bool]:
    """``call_search.body`` holds every term, each phrase's words in a row
    (``search_terms.matches``, exactly): a check of one row, no index read."""
    return and_(*(_phrase(term) for term in terms))


def _fts_rowids(terms: Terms) -> Any:
    fts = light_table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
    return select(fts.c.rowid).where(fts.c[FTS_TABLE].op("MATCH")(_sqlite_query(terms)))


def _postgres_found(terms: Terms) -> ColumnElement[bool]:
    every = " & ".join(sorted({word for term in terms for word in term}))
    query = func.to_tsquery(_SIMPLE, f"({every}) | {TOO_MANY_WORDS}")
    return func.to_tsvector(_SIMPLE, _search.c.words).op("@@")(query)


def indexed_calls(terms: Terms, dialect: str, of: Any = _search.c.call_id) -> Select[Any]:
    """The ids of the calls that hold every term, read from the index: as many rows as
    there are such calls, whatever the number of calls stored. ``of``: the column of
    ``call_search`` to select (their ids in the index: ``call_search.c.id``)."""
    if dialect == "sqlite":
        return select(of).where(_search.c.id.in_(_fts_rowids(terms)))
    single = [_phrase(term) for term in terms if len(term) == 1]
    phrases = [_phrase(term) for term in terms if len(term) > 1]
    unindexed = and_(_search.c.words == TOO_MANY_WORDS, *single)
    return select(of).where(
        _postgres_found(terms), or_(_search.c.words != TOO_MANY_WORDS, unindexed), *phrases
    )


async def estimated_matches(connection: AsyncConnection, terms: Terms, at_most: int) -> int:
    """About how many calls hold every word of ``terms``, up to ``at_most``. Of every
    project: it chooses how to read, never what is found.

    SQLite: the index's own count, which stops at ``at_most``. PostgreSQL: the planner's
    estimate, when its statistics know the words as frequent ones: over ``at_most``, or of
    any size for one word, whose frequency it keeps (counting a word one call in 25 holds
    read 40 000 index entries, 150 ms at a million calls; for several words it multiplies
    their frequencies, and words said together would look rarer than they are). Else (it
    guesses every unknown word as common as its least common known one: a rare word looks
    like a thousand calls) the index's count, up to ``at_most``."""
    if connection.dialect.name == "sqlite":
        return await _count_up_to(connection, _fts_rowids(terms), at_most)
    estimate = await _planner_rows(connection, _postgres_found(terms))
    one_word = len({word for term in terms for word in term}) == 1
    if estimate > at_most or one_word:
        unknown = await _planner_rows(connection, _postgres_found(((SEPARATOR,),)))
        if estimate > unknown:
            return min(estimate, at_most)
    return await _count_up_to(
        connection, select(_search.c.id).where(_postgres_found(terms)), at_most
    )


async def _count_up_to(connection: AsyncConnection, rows: Any, at_most: int) -> int:
    found = select(func.count()).select_from(rows.limit(at_most).subquery())
    return int(await connection.scalar(found) or 0)


async def _planner_rows(connection: AsyncConnection, condition: ColumnElement[bool]) -> int:
    statement = select(_search.c.id).where(condition)
    # Words are ASCII letters and digits (search_terms): nothing in them needs quoting.
    compiled = statement.compile(connection.sync_connection, compile_kwargs={"literal_binds": True})
    plan = (await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}")).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
