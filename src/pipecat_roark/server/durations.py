"""Durations as the latency rollups and each agent's day keep them: IEEE 754 doubles,
little-endian, packed end to end.

An agent's month of replies holds a million durations or more. Kept as text, they took
200 ms to parse for each attribution. Packed, they are read as they lie, and two rows join
by concatenation, in SQL as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, LargeBinary, cast

__all__ = ["WIDTH", "Durations", "appended", "count", "packed", "unpacked", "without"]

Durations = NDArray[np.float64]
"""Seconds, in no order."""

_FORMAT = np.dtype("<f8")
_BITS = np.dtype("<u8")
WIDTH = _FORMAT.itemsize
"""Bytes per duration."""


def packed(values: Iterable[float]) -> bytes:
    return np.fromiter(values, dtype=_FORMAT).tobytes()


def appended(stored: Any, added: Any) -> ColumnElement[bytes]:
    """SQL for a row's durations with more after them. SQLite's ``||`` makes text of two
    blobs, byte for byte; ``CAST`` makes it a blob again (PostgreSQL's is one already)."""
    return cast(stored.op("||")(added), LargeBinary)


def unpacked(rows: Sequence[bytes]) -> Durations:
    """The durations of several rows, as one array."""
    joined = rows[0] if len(rows) == 1 else b"".join(rows)
    return np.frombuffer(joined, dtype=_FORMAT).astype(np.float64, copy=False)


def count(stored: bytes) -> int:
    return len(stored) // WIDTH


def without(stored: bytes, values: Iterable[float]) -> bytes:
    """``stored`` less one of each of ``values``, compared bit for bit (a NaN too)."""
    kept = np.frombuffer(stored, dtype=_BITS).tolist()
    for bits in np.frombuffer(packed(values), dtype=_BITS).tolist():
        if bits in kept:
            kept.remove(bits)
    return np.array(kept, dtype=_BITS).tobytes()
