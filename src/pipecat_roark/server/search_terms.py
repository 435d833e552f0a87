"""The search language, in Python alone: what a word is, and what a query asks for.

Both databases index the text this module makes, never the raw text: each word is cut out
here (letters and digits, case folded) and written as plain ASCII, so SQLite's FTS5 and
PostgreSQL's ``tsvector`` see the same words and answer the same query the same way, and a
scan in Python (the tests, the benchmark) can say exactly which calls must match.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "MAX_WORD_CHARS",
    "SEPARATOR",
    "TOO_MANY_WORDS",
    "Terms",
    "call_text",
    "document",
    "matches",
    "parse",
    "words",
]

MAX_WORD_CHARS = 64
"""A longer word is cut to its first 64 characters, in the text and in a query alike."""
MAX_TERMS = 16
"""A query's words and phrases after the first 16 are not used."""
MAX_QUERY_CHARS = 1000
"""Of a query, only its first 1 000 characters are read."""
SEPARATOR = "z0x"
"""Written between two lines or tool-call fields so that no phrase spans them; no typed
word encodes to it (see ``_encoded``)."""
TOO_MANY_WORDS = "z0y"
"""The distinct words kept of a call whose distinct words would not fit a ``tsvector`` (1 MB,
``search_index``); no typed word encodes to it either."""
_WORD = re.compile(r"[^\W_]+")
_TERM = re.compile(r'"([^"]*)"|([^"\s]+)')
_ASCII_WORD = re.compile(r"[a-z0-9]+")

Terms = tuple[tuple[str, ...], ...]
"""A query: its terms, each one word or a phrase of words in a row."""


def _encoded(word: str) -> str:
    """A word as plain ASCII letters and digits that starts with a letter, one to one
    (PostgreSQL's parser reads ``54e81n5`` as the number ``54e81`` and the word ``n5``).

    A word of ASCII letters and digits that starts with a letter stays itself, unless it
    starts with ``z0``, which marks the other forms: ``z0z`` + the rest for those, ``z0w`` +
    the word for one that starts with a digit, ``z0`` + hexadecimal UTF-8 for a word with any
    other character. The hexadecimal never holds ``w``, ``x``, ``y`` or ``z``.
    """
    if _ASCII_WORD.fullmatch(word):
        if word[0].isdigit():
            return "z0w" + word
        return "z0z" + word[2:] if word.startswith("z0") else word
    return "z0" + word.encode("utf-8", "surrogatepass").hex()


def words(text: str) -> list[str]:
    """The words of ``text`` as they are indexed: runs of letters and digits (after NFKC
    normalisation and case folding), each cut to ``MAX_WORD_CHARS`` and encoded."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [_encoded(word[:MAX_WORD_CHARS]) for word in _WORD.findall(folded)]


def call_text(transcript_text: str | None, tool_calls: Sequence[Any] | None) -> list[str]:
    """What of a call is searched, as lines: the transcript's lines, then each tool call's
    name and arguments and each tool result's content."""
    lines = (transcript_text or "").split("\n")
    for record in tool_calls or ():
        if not isinstance(record, dict):
            continue
        for field in ("name", "arguments", "content"):
            value = record.get(field)
            if value is not None:
                lines.append(value if isinstance(value, str) else json.dumps(value))
    return lines


def document(lines: Iterable[str]) -> str:
    """The indexed text: every line's words, lines apart by ``SEPARATOR``, spaces around."""
    joined = f" {SEPARATOR} ".join(" ".join(words(line)) for line in lines)
    return f" {joined} "


def parse(query: str) -> Terms:
    """A query's terms: ``"a quoted phrase"`` is one, and so is each other run of non-space
    characters (a phrase if it holds several words, as ``don't`` or ``e-mail``). An
    unmatched quote is ignored; a term without a letter or digit is dropped."""
    terms: list[tuple[str, ...]] = []
    for phrase, word in _TERM.findall(query[:MAX_QUERY_CHARS]):
        term = tuple(words(phrase or word))
        if term and term not in terms:
            terms.append(term)
    return tuple(terms[:MAX_TERMS])


def matches(terms: Terms, indexed: str) -> bool:
    """Whether an indexed ``document`` holds every term, each phrase's words in a row:
    the definition both databases implement."""
    return bool(terms) and all(f" {' '.join(term)} " in indexed for term in terms)
