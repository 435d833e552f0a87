"""Text search in lists: calls by their words (an index, see docs/dashboard.md, "Searching
calls"), agents by a case-insensitive substring of their name or id (a scan: few rows).

A search is read one of two ways, chosen per query from about how many calls hold its words
(``search_fts.estimated_matches``): few, and the list reads just those calls from the index,
then sorts them; many, and the list walks the calls in its own order, checking each call's
text, and stops when the page is full. Neither database can choose alone: SQLite knows
nothing of how many calls a word has, and PostgreSQL's statistics guess a rare word too
common, so either would walk a million calls for a word held by ten, or sort half a
million for a page of fifty. The switch is where the two cost the same (about sqrt(N)
matches for N calls indexed: ``few_matches``), so neither way reads much more than the other
would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles

from . import schema
from .search_costs import COUNT_COST_RATIO, PAGE_COST_RATIO, few_matches
from .search_counts import calls_holding
from .search_fts import estimated_matches, indexed_calls, text_holds
from .search_sets import calls_holding_all
from .search_terms import Terms, parse

__all__ = ["CallSearch", "contains_text", "few_matches", "plan_call_search"]

_calls = schema.calls
_search = schema.call_search


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_text(text: str, *columns: Any) -> ColumnElement[bool]:
    """Rows where ``text`` appears, as typed, in any of ``columns``, case aside."""
    pattern = f"%{_escape_like(text)}%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


class _Unindexed(ColumnElement[Any]):
    """A sort key SQLite may not read from an index: a list drawn from the index's matches
    is then sorted, not walked in order with each call looked up in the matches."""

    inherit_cache = True

    def __init__(self, key: ColumnElement[Any]) -> None:
        self.inner = key
        self.type = key.type


@compiles(_Unindexed)
def _compile_unindexed(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.inner, **kw)
    return f"+({inner})" if compiler.dialect.name == "sqlite" else str(inner)


@dataclass(frozen=True)
class CallSearch:
    """How one text search reads the list: its page's condition and sort key, and the
    condition of its count."""

    page: ColumnElement[bool]
    from_index: bool
    capped_count: ColumnElement[bool]
    """For a count that stops at 1 000."""
    exact_count: tuple[ColumnElement[bool], ...]
    """For a count of every match: conditions of disjoint rows whose counts add up. From the
    index, but for many matches on PostgreSQL: there reading every call's text at once (1 s
    at a million calls) beats the index (6 s: its bitmap of half a million calls outgrows
    its memory and rechecks each call's words), and the call whose id is the text is counted
    apart, since an OR would have the text read once per call."""
    words: tuple[str, ...] = ()
    """The search's words, when it is only single words: one word's exact count is kept
    (``search_counts``), and frequent words' sets (``search_sets``)."""
    by_id_apart: ColumnElement[bool] | None = None
    """The call whose id is the text, if it does not hold the words: counted apart."""

    def sort_key(self, key: ColumnElement[Any]) -> ColumnElement[Any]:
        return _Unindexed(key) if self.from_index else key

    def exact_count_with(
        self, conditions: list[ColumnElement[bool]]
    ) -> list[list[ColumnElement[bool]]]:
        """The list's own ``conditions`` joined to each part of the exact count."""
        return [[*conditions, part] for part in self.exact_count]

    async def kept_count(
        self,
        connection: AsyncConnection,
        project_id: str,
        conditions: list[ColumnElement[bool]],
        *,
        indexed_calls_listed: bool,
    ) -> int | None:
        """The exact count of a search's matches among the list's ``conditions`` from what
        is kept of its words: one word's count, one row however many calls hold it; several
        words' sets, when each has one. None for other searches. ``indexed_calls_listed``:
        the conditions keep every indexed call (no status, or ENDED: every indexed call is
        ENDED); else none of them."""
        if not self.words or self.by_id_apart is None:
            return None
        held: int | None = 0
        if indexed_calls_listed and len(self.words) == 1:
            held = await connection.run_sync(calls_holding, project_id, self.words[0])
        elif indexed_calls_listed:
            held = await connection.run_sync(calls_holding_all, project_id, self.words)
        if held is None:
            return None
        apart = select(func.count()).select_from(_calls).where(*conditions, self.by_id_apart)
        return held + int(await connection.scalar(apart) or 0)


def _by_id(text: str) -> ColumnElement[bool]:
    return _calls.c.pipecat_call_id.in_(sorted({text, text.strip()}))


def _with_id(found: Any, project_id: str, text: str) -> Any:
    """``found`` (a select of call ids) and the project's call whose id is ``text``."""
    return union_all(
        found, select(_calls.c.id).where(_calls.c.project_id == project_id, _by_id(text))
    )


def _from_index(terms: Terms, project_id: str, text: str, dialect: str) -> ColumnElement[bool]:
    ids = _with_id(indexed_calls(terms, dialect), project_id, text)
    if dialect == "postgresql":
        # One array, made first: the planner takes it for a few ids, looks them up and
        # sorts them (for IN it would guess from its statistics, and walk for a rare word).
        found = ids.subquery()
        array = select(func.array_agg(found.c[0])).scalar_subquery()
        return _calls.c.id == any_(cast(array, ARRAY(String())))
    return _calls.c.id.in_(ids)


def _holds(terms: Terms) -> ColumnElement[bool]:
    return exists().where(_search.c.call_id == _calls.c.id, text_holds(terms))


def _walking(terms: Terms, text: str, dialect: str) -> ColumnElement[bool]:
    if dialect != "postgresql":
        return or_(_by_id(text), _holds(terms))
    # Each call's own row checked as the walk reaches it. PostgreSQL may otherwise check
    # every call's text up front into a hash (its guess of a word's matches is low): 740 ms
    # at a million calls, where the walk to a page of a word one call in 100 holds takes
    # 25. OFFSET 0 keeps the check a per-row lookup: PostgreSQL hashes no such subquery.
    one_row: Select[Any] = (
        select(literal_column("1"))
        .where(_search.c.call_id == _calls.c.id, text_holds(terms))
        .offset(literal_column("0"))
    )
    return or_(_by_id(text), one_row.exists())


async def plan_call_search(
    connection: AsyncConnection,
    project_id: str,
    text: str,
    *,
    page_few: int | None = None,
    count_few: int | None = None,
) -> CallSearch:
    """Calls whose ``pipecatCallId`` is ``text`` (spaces around aside), or whose transcript
    and tool calls hold every word and phrase of ``text`` (``search_terms.parse``). Only
    spaces: every call, as if no search were given. ``page_few`` and ``count_few`` override
    ``few_matches`` (the tests read both ways)."""
    if not text.strip():
        return CallSearch(true(), False, true(), (true(),))
    terms = parse(text)
    if not terms:
        by_id = _by_id(text)
        return CallSearch(by_id, False, by_id, (by_id,))
    dialect = connection.dialect.name
    if page_few is None or count_few is None:
        indexed = int(await connection.scalar(select(func.max(_search.c.id))) or 0)
        page_few = few_matches(indexed, PAGE_COST_RATIO) if page_few is None else page_few
        count_few = few_matches(indexed, COUNT_COST_RATIO) if count_few is None else count_few
    found = await estimated_matches(connection, terms, max(page_few, count_few) + 1)
    indexed_ids = _from_index(terms, project_id, text, dialect)
    walking = _walking(terms, text, dialect)
    few = found <= page_few
    count_from_index = found <= count_few
    words = tuple(term[0] for term in terms) if all(len(term) == 1 for term in terms) else ()
    apart = and_(_by_id(text), ~_holds(terms))
    return CallSearch(
        page=indexed_ids if few else walking,
        from_index=few,
        capped_count=indexed_ids if count_from_index else walking,
        exact_count=(indexed_ids,)
        if count_from_index or dialect == "sqlite"
        else (_holds(terms), apart),
        words=words,
        by_id_apart=apart,
    )
