"""The database side of search: the full-text structures over ``call_search`` and the
condition that reads them, one form per backend for the same ``search_terms.Terms``.

SQLite: an FTS5 table with ``call_search`` as its external content, kept in step by
triggers; a query is FTS5 phrases, each word quoted (words are ASCII letters and digits
only, so no FTS5 syntax can reach it). PostgreSQL: a GIN index over the call's distinct
words as a ``tsvector`` ('simple': no stemming, no stop words) finds the calls holding every
word; a phrase is then checked exactly on the text (``LIKE '% a b %'``), since a
``tsvector``'s positions stop counting at 16 383.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, column, func, literal_column, or_, select
from sqlalchemy import table as light_table
from sqlalchemy.ext.compiler import compiles

from . import schema
from .search_index import TOO_MANY_WORDS
from .search_terms import Terms

__all__ = ["FTS_TABLES", "MatchingCalls", "create_statements", "drop_statements"]

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


class MatchingCalls(ColumnElement[bool]):
    """``calls.id`` is that of a call whose indexed text holds every term."""

    type = Boolean()
    inherit_cache = False  # the terms are not a cache key; each query compiles its own

    def __init__(self, terms: Terms) -> None:
        self.terms = terms


def _sqlite_query(terms: Terms) -> str:
    return " ".join('"' + " ".join(term) + '"' for term in terms)


def _phrase(term: tuple[str, ...]) -> ColumnElement[bool]:
    # Words are ASCII letters and digits: nothing in them is special to LIKE.
    return _search.c.body.like(f"% {' '.join(term)} %")


def _condition(terms: Terms, dialect: str) -> ColumnElement[bool]:
    ids: Any
    if dialect == "sqlite":
        fts = light_table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
        rowids = select(fts.c.rowid).where(fts.c[FTS_TABLE].op("MATCH")(_sqlite_query(terms)))
        ids = select(_search.c.call_id).where(_search.c.id.in_(rowids))
    else:
        every = " & ".join(sorted({word for term in terms for word in term}))
        query = func.to_tsquery(_SIMPLE, f"({every}) | {TOO_MANY_WORDS}")
        found = func.to_tsvector(_SIMPLE, _search.c.words).op("@@")(query)
        single = [_phrase(term) for term in terms if len(term) == 1]
        phrases = [_phrase(term) for term in terms if len(term) > 1]
        unindexed = and_(_search.c.words == TOO_MANY_WORDS, *single)
        ids = select(_search.c.call_id).where(
            found, or_(_search.c.words != TOO_MANY_WORDS, unindexed), *phrases
        )
    return schema.calls.c.id.in_(ids)


@compiles(MatchingCalls)
def _compile(element: MatchingCalls, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(_condition(element.terms, compiler.dialect.name), **kw))
