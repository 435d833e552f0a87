"""Where a fleet's reply time goes: the parts of every reply, aggregated.

Plain functions over the ``latency_breakdown`` metrics calls stored (docs/latency.md): the
p50 and p95 of each part (key, owner, owner kind) with the number of replies, per UTC day
and over a window; the parts ranked by how much their p95 grew from one window to
another, each with its worst replies; and the slowest replies themselves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..stats import percentile

__all__ = ["Part", "Reply", "attribute", "replies_of", "slower", "slowest"]

Part = tuple[str, str, str]
"""(key, owner, ownerKind) of a reply's contribution."""


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


def attribute(replies: Sequence[Reply]) -> dict[str, Any]:
    """Per part: replies, p50 and p95 (a reply without the part does not count), and the
    part's share of the replies' p95; over the window and per UTC day."""
    days: dict[date, list[Reply]] = defaultdict(list)
    for reply in replies:
        days[reply.day].append(reply)
    return {
        "total": _summary(replies),
        "days": [{"day": day.isoformat(), **_summary(days[day])} for day in sorted(days)],
    }


def slower(
    before: Sequence[Reply], after: Sequence[Reply], *, worst: int = 3
) -> list[dict[str, Any]]:
    """The parts ranked by the growth of their p95 from ``before`` to ``after``, largest
    first, each with the ``worst`` replies of ``after`` for that part."""
    a, b = _durations(before), _durations(after)
    ranked: list[dict[str, Any]] = []
    for part in sorted(set(a) | set(b)):
        p95_before = percentile(a[part], 0.95) if a.get(part) else 0.0
        p95_after = percentile(b[part], 0.95) if b.get(part) else 0.0
        worst_replies = sorted(
            (reply for reply in after if part in reply.parts),
            key=lambda reply: -reply.parts[part],
        )[:worst]
        ranked.append(
            {
                **_names(part),
                "p95Before": p95_before,
                "p95After": p95_after,
                "change": p95_after - p95_before,
                "repliesBefore": len(a.get(part, ())),
                "repliesAfter": len(b.get(part, ())),
                "worst": [_reply_out(reply, part) for reply in worst_replies],
            }
        )
    ranked.sort(key=lambda entry: -entry["change"])
    return ranked


def slowest(replies: Iterable[Reply], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` slowest replies, slowest first, each part by part."""
    ordered = sorted(replies, key=lambda reply: -reply.total)[:limit]
    return [
        {
            **_reply_out(reply, None),
            "contributions": [
                {**_names(part), "durationSecs": seconds}
                for part, seconds in sorted(reply.parts.items(), key=lambda item: -item[1])
            ],
        }
        for reply in ordered
    ]


def _summary(replies: Sequence[Reply]) -> dict[str, Any]:
    durations = _durations(replies)
    totals = [reply.total for reply in replies]
    p95_total = percentile(totals, 0.95) if totals else None
    figures = sorted(
        ((part, values, percentile(values, 0.95)) for part, values in durations.items()),
        key=lambda figure: -figure[2],
    )
    parts = [
        {
            **_names(part),
            "replies": len(values),
            "p50": percentile(values, 0.5),
            "p95": p95,
            "shareOfP95": p95 / p95_total if p95_total else None,
        }
        for part, values, p95 in figures
    ]
    return {
        "replies": len(replies),
        "p50": percentile(totals, 0.5) if totals else None,
        "p95": p95_total,
        "parts": parts,
    }


def _durations(replies: Iterable[Reply]) -> dict[Part, list[float]]:
    out: dict[Part, list[float]] = defaultdict(list)
    for reply in replies:
        for part, seconds in reply.parts.items():
            out[part].append(seconds)
    return out


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
