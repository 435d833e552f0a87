"""Pure pieces, fed data directly: the stitch plan, URL signatures, cursors."""

from __future__ import annotations

import pytest

from pipecat_roark.server import signing
from pipecat_roark.server.errors import ApiError
from pipecat_roark.server.pagination import decode_cursor, encode_cursor
from pipecat_roark.server.stitch import Gap, Part, plan_stitch

FRAME = 4


def plan(present: dict[int, int], requested: set[int] | None = None, limit: int = 10**9):  # type: ignore[no-untyped-def]
    return plan_stitch(
        {index: (f"k{index}", size) for index, size in present.items()},
        requested or set(),
        frame_bytes=FRAME,
        max_chunk_bytes=limit,
    )


def test_chunks_are_joined_in_index_order() -> None:
    result = plan({2: 40, 0: 100, 1: 100})
    assert result.parts == [Part(0, "k0", 100), Part(1, "k1", 100), Part(2, "k2", 40)]
    assert result.gaps == []


def test_a_missing_middle_chunk_is_as_long_as_the_full_chunks() -> None:
    result = plan({0: 100, 2: 100, 3: 20})
    assert result.parts[1] == Part(1, None, 100)
    assert result.gaps == [Gap(1, 100)]


def test_the_length_of_a_missing_last_chunk_is_unknown() -> None:
    result = plan({0: 100, 1: 100}, requested={0, 1, 2})
    assert result.gaps == [Gap(2, None)]
    assert result.total_bytes == 200


def test_disagreeing_full_chunks_make_a_gap_length_unknown() -> None:
    result = plan({0: 100, 1: 80, 3: 20})
    assert result.gaps == [Gap(2, None)]


def test_bytes_past_the_last_whole_frame_are_dropped_and_reported() -> None:
    result = plan({0: 102})
    assert result.parts == [Part(0, "k0", 100)]
    assert result.issues == [{"chunkIndex": 0, "problem": "partial_frame", "droppedBytes": 2}]


def test_an_oversized_chunk_is_left_out_and_reported() -> None:
    result = plan({0: 100, 1: 500}, limit=200)
    assert [part.chunk_index for part in result.parts] == [0]
    assert result.gaps == [Gap(1, None)]
    assert result.issues[0]["problem"] == "too_large"


def test_no_chunks_plan_nothing() -> None:
    assert plan({}).parts == []


def test_a_signature_binds_purpose_call_number_and_expiry() -> None:
    expires, signature = signing.sign("secret", "chunk-upload", "call", 3, 60)
    assert signing.verify("secret", "chunk-upload", "call", 3, expires, signature)
    for changed in (
        ("other", "chunk-upload", "call", 3, expires, signature),
        ("secret", "recording", "call", 3, expires, signature),
        ("secret", "chunk-upload", "call2", 3, expires, signature),
        ("secret", "chunk-upload", "call", 4, expires, signature),
        ("secret", "chunk-upload", "call", 3, expires + 1, signature),
        ("secret", "chunk-upload", "call", 3, expires, "ü" * 64),
    ):
        assert not signing.verify(*changed)
    expired, old = signing.sign("secret", "p", "c", 0, -1)
    assert not signing.verify("secret", "p", "c", 0, expired, old)


def test_a_cursor_round_trips_and_refuses_another_sort() -> None:
    cursor = encode_cursor("duration", "asc", 1234, "id-1")
    assert decode_cursor(cursor, "duration", "asc") == (1234, "id-1")
    with pytest.raises(ApiError):
        decode_cursor(cursor, "duration", "desc")
    with pytest.raises(ApiError):
        decode_cursor("%%%", "duration", "asc")
