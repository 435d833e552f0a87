"""List filters that look inside a call's stored JSON: its tool calls and its latencies.

The calls table keeps the tool records and every response latency as JSON (SQLite) or JSONB
(PostgreSQL), so these conditions are written once per dialect, each a correlated EXISTS on
the row being filtered.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, text

__all__ = ["TOOL_ERROR_RULE", "slowest_response_above", "tool_failed"]

TOOL_ERROR_RULE = 'a tool call without a result, or whose result contains "error" in quotes'


def _pg_array(column: str) -> str:
    """The column as a JSONB array (a JSON null is stored as a scalar, not as SQL NULL)."""
    return f"CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]'::jsonb END"


_PG_TOOLS = _pg_array("calls.tool_calls")
_PG_LATENCIES = _pg_array("calls.response_latencies")

_TOOL_FAILED = {
    "sqlite": """(
        EXISTS (SELECT 1 FROM json_each(calls.tool_calls) AS r
                WHERE json_extract(r.value, '$.kind') = 'tool_result'
                  AND json_extract(r.value, '$.content') LIKE '%"error"%')
        OR EXISTS (SELECT 1 FROM json_each(calls.tool_calls) AS c
                   WHERE json_extract(c.value, '$.kind') = 'tool_call'
                     AND NOT EXISTS (SELECT 1 FROM json_each(calls.tool_calls) AS r
                                     WHERE json_extract(r.value, '$.kind') = 'tool_result'
                                       AND json_extract(r.value, '$.toolCallId')
                                           = json_extract(c.value, '$.toolCallId'))))""",
    "postgresql": f"""(
        EXISTS (SELECT 1 FROM jsonb_array_elements({_PG_TOOLS}) AS r(v)
                WHERE r.v->>'kind' = 'tool_result'
                  AND r.v->>'content' LIKE '%"error"%')
        OR EXISTS (SELECT 1 FROM jsonb_array_elements({_PG_TOOLS}) AS c(v)
                   WHERE c.v->>'kind' = 'tool_call'
                     AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements({_PG_TOOLS}) AS r(v)
                                     WHERE r.v->>'kind' = 'tool_result'
                                       AND r.v->>'toolCallId' = c.v->>'toolCallId')))""",
}

_SLOWEST_ABOVE = {
    "sqlite": """EXISTS (SELECT 1 FROM json_each(calls.response_latencies) AS l
                         WHERE l.value > :latency_above)""",
    "postgresql": f"""EXISTS (SELECT 1 FROM jsonb_array_elements_text({_PG_LATENCIES}) AS l(v)
                             WHERE l.v::float8 > :latency_above)""",
}


def tool_failed(dialect: str) -> ColumnElement[bool]:
    """Calls with a failed tool call (see ``TOOL_ERROR_RULE``)."""
    return text(_TOOL_FAILED[dialect])  # type: ignore[return-value]


def slowest_response_above(dialect: str, seconds: float) -> ColumnElement[bool]:
    """Calls whose slowest response took longer than ``seconds``."""
    return text(_SLOWEST_ABOVE[dialect]).bindparams(latency_above=seconds)  # type: ignore[return-value]
