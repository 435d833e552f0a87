"""Word error rate between what the caller was scripted to say and what was recognised."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["normalise_words", "word_error_rate"]

_NUMBERS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
    "11": "eleven",
    "12": "twelve",
}


def normalise_words(text: str) -> list[str]:
    """Lower case, no punctuation, hyphens split ("bye-bye"), digits spelt out ("7")."""
    words = re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))
    return [_NUMBERS.get(word, word) for word in words]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Edits (substitutions, insertions, deletions) per reference word, over all the pairs.

    A missing hypothesis counts as all its reference words deleted.
    """
    edits = 0
    total = 0
    for index, reference in enumerate(references):
        hypothesis = hypotheses[index] if index < len(hypotheses) else ""
        expected, heard = normalise_words(reference), normalise_words(hypothesis)
        edits += _edit_distance(expected, heard)
        total += len(expected)
    for extra in hypotheses[len(references) :]:
        edits += len(normalise_words(extra))
    return edits / total if total else 0.0


def _edit_distance(expected: list[str], heard: list[str]) -> int:
    previous = list(range(len(heard) + 1))
    for i, word in enumerate(expected, start=1):
        current = [i]
        for j, other in enumerate(heard, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
            )
        previous = current
    return previous[-1]
