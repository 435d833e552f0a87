"""Word error rate, the way the demo and its acceptance measure recognition."""

from __future__ import annotations

import pytest

from pipecat_roark.demo.scoring import normalise_words, word_error_rate


def test_words_are_compared_without_case_punctuation_or_digits() -> None:
    assert normalise_words("Bye-bye! A table for 2, at 7.") == [
        "bye",
        "bye",
        "a",
        "table",
        "for",
        "two",
        "at",
        "seven",
    ]


def test_identical_text_has_no_errors() -> None:
    assert word_error_rate(["Good evening, two at seven."], ["good evening two at 7"]) == 0


@pytest.mark.parametrize(
    ("heard", "errors"),
    [
        ("my name is alex", 1),  # a deletion
        ("my name is alex morgan too", 1),  # an insertion
        ("my game is alex morgan", 1),  # a substitution
        ("", 5),
    ],
)
def test_each_edit_counts_once(heard: str, errors: int) -> None:
    assert word_error_rate(["My name is Alex Morgan."], [heard]) == errors / 5


def test_the_rate_is_over_all_lines_and_missing_lines_count_in_full() -> None:
    assert word_error_rate(["one two", "three four five six"], ["one two"]) == 4 / 6
    assert word_error_rate(["one two"], ["one two", "extra words"]) == 2 / 2
