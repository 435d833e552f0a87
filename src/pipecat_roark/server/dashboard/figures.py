"""The list filter that looks inside a call's stored JSON: its response latencies.

The calls table keeps every response latency as JSON (SQLite) or JSONB (PostgreSQL), so the
condition is written once per dialect, a correlated EXISTS on the row being filtered. (The
tool-error filter reads a stored figure instead: ``schema.tool_failed``.)
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, text

__all__ = ["slowest_response_above"]


def _pg_array(column: str) -> str:
    """The column as a JSONB array (a JSON null is stored as a scalar, not as SQL NULL)."""
    return f"CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE '[]'::jsonb END"


_PG_LATENCIES = _pg_array("calls.response_latencies")

_SLOWEST_ABOVE = {
    "sqlite": """EXISTS (SELECT 1 FROM json_each(calls.response_latencies) AS l
                         WHERE l.value > :latency_above)""",
    "postgresql": f"""EXISTS (SELECT 1 FROM jsonb_array_elements_text({_PG_LATENCIES}) AS l(v)
                             WHERE l.v::float8 > :latency_above)""",
}


def slowest_response_above(dialect: str, seconds: float) -> ColumnElement[bool]:
    """Calls whose slowest response took longer than ``seconds``."""
    return text(_SLOWEST_ABOVE[dialect]).bindparams(latency_above=seconds)  # type: ignore[return-value]
