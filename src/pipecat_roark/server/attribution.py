"""Where a fleet's reply time goes: the parts of every reply, aggregated.

Plain functions over the ``latency_breakdown`` metrics calls stored (docs/latency.md), as
server/reply_index.py keeps them: the p50 and p95 of each part (key, owner, owner kind)
with the number of replies, per UTC day and over a window; the parts ranked by how much
their p95 grew from one window to another, each with its worst replies; and the slowest
replies themselves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from ..stats import array_percentiles
from .durations import Durations

__all__ = [
    "TOTAL",
    "Part",
    "Reply",
    "Samples",
    "attribute",
    "merged",
    "replies_of",
    "slower",
    "slowest",
]

Part = tuple[str, str, str]
"""(key, owner, ownerKind) of a reply's contribution."""

TOTAL: Part = ("", "", "")
"""The reply as a whole, kept beside its parts."""

Samples = dict[Part, Durations]
"""Every duration of each part (and of ``TOTAL``) over some replies: numpy's, since a busy
agent's month holds over a million, and sorting them in Python took 0.4 s."""


@dataclass(frozen=True, slots=True)
class Reply:
    call_id: str
    day: date
    turn_index: int | None
    total: float
    offset_ms: int | None
    parts: dict[Part, float]


def replies_of(call_id: str, day: date, metrics: Any) -> list[Reply]:
    """The replies of one call, from the ``latency_breakdown`` metrics it stored."""
    out: list[Reply] = []
    for metric in metrics if isinstance(metrics, list) else ():
        if not isinstance(metric, dict) or metric.get("kind") != "latency_breakdown":
            continue
        parts: dict[Part, float] = defaultdict(float)
        for part in metric.get("contributions") or ():
            if isinstance(part, dict) and isinstance(part.get("durationSecs"), (int, float)):
                name = (str(part.get("key")), str(part.get("owner")), str(part.get("ownerKind")))
                parts[name] += float(part["durationSecs"])
        if not parts:
            continue
        turn = metric.get("turnIndex")
        offset = metric.get("audioOffsetMs")
        out.append(
            Reply(
                call_id=call_id,
                day=day,
                turn_index=turn if isinstance(turn, int) else None,
                total=sum(parts.values()),
                offset_ms=offset if isinstance(offset, int) else None,
                parts=dict(parts),
            )
        )
    return out


def merged(days: Iterable[Samples]) -> Samples:
    """Several days' durations as one window's."""
    out: dict[Part, list[Durations]] = defaultdict(list)
    for samples in days:
        for part, values in samples.items():
            out[part].append(values)
    return {part: np.concatenate(values) for part, values in out.items()}


def attribute(days: dict[date, Samples]) -> dict[str, Any]:
    """Per part: replies, p50 and p95 (a reply without the part does not count), and the
    part's share of the replies' p95; over the window and per UTC day."""
    return {
        "total": _summary(merged(days.values())),
        "days": [{"day": day.isoformat(), **_summary(days[day])} for day in sorted(days)],
    }


def slower(
    before: Samples, after: Samples, worst: Mapping[Part, Sequence[Reply]]
) -> list[dict[str, Any]]:
    """The parts ranked by the growth of their p95 from ``before`` to ``after``, largest
    first, each with its ``worst`` replies (of ``after``, slowest first)."""
    ranked: list[dict[str, Any]] = []
    for part in sorted((set(before) | set(after)) - {TOTAL}):
        p95_before, p95_after = _p95(before, part), _p95(after, part)
        ranked.append(
            {
                **_names(part),
                "p95Before": p95_before,
                "p95After": p95_after,
                "change": p95_after - p95_before,
                "repliesBefore": _count(before, part),
                "repliesAfter": _count(after, part),
                "worst": [_reply_out(reply, part) for reply in worst.get(part, ())],
            }
        )
    ranked.sort(key=lambda entry: -entry["change"])
    return ranked


def slowest(replies: Iterable[Reply]) -> list[dict[str, Any]]:
    """The replies as given (slowest first), each part by part."""
    return [
        {
            **_reply_out(reply, None),
            "contributions": [
                {**_names(part), "durationSecs": seconds}
                for part, seconds in sorted(reply.parts.items(), key=lambda item: -item[1])
            ],
        }
        for reply in replies
    ]


def _summary(samples: Samples) -> dict[str, Any]:
    replies = _count(samples, TOTAL)
    p50_total: float | None = None
    p95_total: float | None = None
    if replies:
        p50_total, p95_total = _p50_p95(samples[TOTAL])
    figures: list[tuple[Part, int, float, float]] = []
    for part, values in samples.items():
        if part != TOTAL and values.size:
            p50, p95 = _p50_p95(values)
            figures.append((part, values.size, p50, p95))
    figures.sort(key=lambda figure: -figure[3])
    parts = [
        {
            **_names(part),
            "replies": count,
            "p50": p50,
            "p95": p95,
            "shareOfP95": p95 / p95_total if p95_total else None,
        }
        for part, count, p50, p95 in figures
    ]
    return {"replies": replies, "p50": p50_total, "p95": p95_total, "parts": parts}


def _count(samples: Samples, part: Part) -> int:
    return samples[part].size if part in samples else 0


def _p95(samples: Samples, part: Part) -> float:
    return _p50_p95(samples[part])[1] if _count(samples, part) else 0.0


def _p50_p95(values: Durations) -> tuple[float, float]:
    p50, p95 = array_percentiles(values, 0.5, 0.95)
    return p50, p95


def _names(part: Part) -> dict[str, str]:
    return {"key": part[0], "owner": part[1], "ownerKind": part[2]}


def _reply_out(reply: Reply, part: Part | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "callId": reply.call_id,
        "turnIndex": reply.turn_index,
        "latencySecs": reply.total,
        "audioOffsetMs": reply.offset_ms,
        "link": f"/calls/{reply.call_id}"
        + (f"#t={reply.offset_ms / 1000:.3f}" if reply.offset_ms is not None else ""),
    }
    if part is not None:
        out["durationSecs"] = reply.parts[part]
    return out
