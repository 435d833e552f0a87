"""Where reading a search's matches from the index stops paying, for N calls indexed: the
list reads the index up to about sqrt(ratio x N) matches and walks itself beyond
(``search``), and a word held by more calls than the count's point keeps a set of its calls
(``search_sets``), so that a total of several such words is never counted from the index."""

from __future__ import annotations

from math import isqrt

__all__ = ["COUNT_COST_RATIO", "PAGE_COST_RATIO", "few_matches"]

PAGE_COST_RATIO = 32
"""A page of 50 walking the list checks about 50 N / M calls for M matches of N calls; read
from the index it fetches and sorts all M: equal at M = sqrt(50 N x check / fetch). The
ratio is 50 x check / fetch, measured at a million calls (a check 5-7 us on SQLite and
14 us on PostgreSQL, a fetch 10 and 17 us: benchmarks/README.md)."""
COUNT_COST_RATIO = 1800
"""The same for a count that stops at 1 000 (the dashboard's): walking checks 1 000 N / M
calls, the index counts M (3 us each on SQLite, 8 on PostgreSQL)."""
_FLOOR = 1000
"""Under this many matches the index is always read: a small project's pages cost little
whichever way they are read."""


def few_matches(indexed: int, ratio: int) -> int:
    """Up to how many matches of ``indexed`` calls the index is read rather than the list."""
    return max(_FLOOR, isqrt(ratio * max(indexed, 0)))
