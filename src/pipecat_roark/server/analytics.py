"""Call figures and their per-agent, per-day aggregates: pure functions, no I/O.

``call_figures`` turns what call-ended stored (transcript, tool calls, the observer's
``metrics`` list) into the few numbers kept in the call's row, so lists and trends never
read a call's JSON again. ``summed`` makes the aggregate of calls whose figures were summed
per agent and UTC day (``agent_days``), and ``daily`` lists a range of days. All are
documented in docs/dashboard.md ("Metrics in the server").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from ..stats import array_percentiles, percentile
from .durations import Durations

__all__ = [
    "TOOL_ERROR_RULE",
    "DayAggregate",
    "call_figures",
    "daily",
    "failed_tool_calls",
    "failed_tools",
    "metric_entries",
    "summed",
]

_SPOKEN_ROLES = ("user", "assistant")

TOOL_ERROR_RULE = 'a tool call without a result, or whose result contains "error" in quotes'
_ERROR_MARK = '"error"'


def metric_entries(metrics: Sequence[Any] | None, kind: str) -> list[dict[str, Any]]:
    """The stored metrics of one kind, in the order the observer sent them."""
    return [m for m in metrics or () if isinstance(m, dict) and m.get("kind") == kind]


def _latencies(metrics: Sequence[Any]) -> list[float]:
    values = (m.get("value") for m in metric_entries(metrics, "turn_latency"))
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def failed_tools(tool_calls: Sequence[Any] | None) -> list[dict[str, Any]]:
    """The call's failed tool calls (``TOOL_ERROR_RULE``), in the order they were recorded:
    each result whose text contains ``"error"``, and each call no result answered, with
    the name of the tool that was called. One rule for the list's filter, the count kept in
    the call's row and the replies that show a call's tool errors."""
    records = [t for t in tool_calls or () if isinstance(t, dict)]
    answered = {t.get("toolCallId") for t in records if t.get("kind") == "tool_result"}
    names = {t.get("toolCallId"): t.get("name") for t in records if t.get("kind") == "tool_call"}
    failed = []
    for record in records:
        kind = record.get("kind")
        if kind == "tool_call" and record.get("toolCallId") not in answered:
            content = None
        elif kind == "tool_result":
            raw = record.get("content")
            content = raw if isinstance(raw, str) else json.dumps(raw)
            if _ERROR_MARK not in content:
                continue
        else:
            continue
        failed.append(
            {
                "toolCallId": record.get("toolCallId"),
                "name": names.get(record.get("toolCallId")),
                "content": content,
                "audioOffsetMs": record.get("audioOffsetMs"),
            }
        )
    return failed


def failed_tool_calls(tool_calls: Sequence[Any] | None) -> int:
    """How many of the call's tool calls failed (``failed_tools``)."""
    return len(failed_tools(tool_calls))


def call_figures(
    transcript: Sequence[Any] | None,
    tool_calls: Sequence[Any] | None,
    metrics: Sequence[Any] | None,
) -> dict[str, Any]:
    """The figure columns of a call row, from its stored call-ended lists.

    Latency and interruption columns stay None when the call carries no ``metrics`` list
    at all (an observer with metrics off, or a backend that refused them), so such a call
    counts as unknown rather than as a call without latency or interruptions.
    """
    turns = [t for t in transcript or () if isinstance(t, dict) and t.get("role") in _SPOKEN_ROLES]
    figures: dict[str, Any] = {
        "turn_count": len(turns),
        "assistant_turn_count": sum(1 for t in turns if t.get("role") == "assistant"),
        "tool_call_count": sum(
            1 for t in tool_calls or () if isinstance(t, dict) and t.get("kind") == "tool_call"
        ),
        "tool_failure_count": failed_tool_calls(tool_calls),
        "interruption_count": None,
        "response_latencies": None,
        "response_latency_p50": None,
    }
    if metrics is not None:
        latencies = _latencies(metrics)
        figures["interruption_count"] = len(metric_entries(metrics, "interruption"))
        figures["response_latencies"] = latencies
        figures["response_latency_p50"] = percentile(latencies, 0.5) if latencies else None
    return figures


@dataclass(frozen=True)
class DayAggregate:
    """One agent's figures over a span of calls (a day, or the whole range)."""

    calls: int
    calls_with_metrics: int
    responses: int
    latency_p50: float | None
    latency_p95: float | None
    interruptions: int
    assistant_turns: int

    @property
    def interruption_rate(self) -> float | None:
        """Interrupted assistant turns per assistant turn, over calls that sent metrics."""
        if not self.assistant_turns:
            return None
        return self.interruptions / self.assistant_turns


def summed(
    calls: int,
    with_metrics: int,
    latencies: Durations,
    interruptions: int,
    assistant_turns: int,
) -> DayAggregate:
    """The aggregate of calls already summed (``agent_days``)."""
    p50, p95 = array_percentiles(latencies, 0.5, 0.95) if latencies.size else (None, None)
    return DayAggregate(
        calls=calls,
        calls_with_metrics=with_metrics,
        responses=latencies.size,
        latency_p50=p50,
        latency_p95=p95,
        interruptions=interruptions,
        assistant_turns=assistant_turns,
    )


def daily(
    found: Mapping[date, DayAggregate], first: date, last: date
) -> list[tuple[date, DayAggregate]]:
    """One aggregate per day from ``first`` to ``last`` inclusive, days without calls
    included."""
    none = summed(0, 0, np.empty(0), 0, 0)
    days: list[tuple[date, DayAggregate]] = []
    day = first
    while day <= last:
        days.append((day, found.get(day, none)))
        day += timedelta(days=1)
    return days
