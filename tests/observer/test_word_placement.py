"""Played words go to the bot turn that holds them on the recording, however long the call."""

from __future__ import annotations

import random

from pipecat_roark.observer.transcript import _owner_finder, _span_of


def _spans(rng: random.Random, count: int) -> list[tuple[int, int, int]]:
    spans, at = [], 0
    for seq in range(count):
        touching = spans and spans[-1][0] < spans[-1][1] and rng.random() < 0.2
        start = at if touching else at + rng.randint(1, 3000)
        end = start + rng.randint(1 if touching else 0, 8000)
        spans.append((start, end, seq * 2 + 1))  # bot turns between user turns
        at = end
    return spans


def test_a_long_calls_words_find_the_same_turns_as_a_scan_would() -> None:
    rng = random.Random(11)
    spans = _spans(rng, 400)
    owner_of = _owner_finder(spans)
    last_end = spans[-1][1]
    places = [rng.randint(-2000, last_end + 2000) for _ in range(20_000)]
    edges = [edge for start, end, _ in spans for edge in (start, end)]
    places += [edge + delta for edge in edges for delta in (-1, 0, 1)]

    assert [owner_of(at) for at in places] == [_span_of(at, spans) for at in places]
    assert {owner_of(at) for at in places} - {None} == {seq for _, _, seq in spans}


def test_overlapping_turns_keep_the_first_that_holds_the_word() -> None:
    spans = [(0, 5000, 1), (4000, 9000, 3), (12000, 13000, 5)]
    owner_of = _owner_finder(spans)
    assert owner_of(4000) == 1
    assert owner_of(4500) == 1
    assert owner_of(9500) == 3
    assert owner_of(11700) == 5
    assert owner_of(11000) is None


def test_where_two_turns_touch_the_first_holds_the_word() -> None:
    spans = [(0, 4000, 1), (4000, 8000, 3), (8000, 8000, 5), (9000, 9000, 7), (9000, 9500, 9)]
    owner_of = _owner_finder(spans)
    for at in (4000, 8000, 8001, 8600, 9000, 9200, 9600):
        assert owner_of(at) == _span_of(at, spans)
    assert owner_of(4000) == 1
    assert owner_of(9000) == 7
