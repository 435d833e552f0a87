"""Each ended call's number of failed tool calls, kept in its row, so the calls list's
tool-error filter reads an index of the few calls with one instead of every call's tool
records.

Ingest stores the figure with the call's others (``analytics.call_figures``). ``fill``
counts it for the ended calls stored without it: the migration that added the column runs
it, and so does ``pipecat-roark rebuild-counts`` (a replica of an earlier release, during a
rolling upgrade, ends calls without it). It writes only the calls a tool failed in: a
call's row is rewritten whole on SQLite, and a million rows rewritten to say 0 would take
minutes. A call left without the figure reads as no failure, which it had.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, bindparam, func, select, update

from . import schema
from .analytics import failed_tool_calls

__all__ = ["fill"]

_calls = schema.calls
_BATCH = 2000


def fill(connection: Connection, progress: Callable[[int, int], None] | None = None) -> int:
    """Count the figure of each ended call with tool calls that has none; return how many of
    them had a failed tool call."""
    unfilled = (
        _calls.c.ended_received.is_(True),
        _calls.c.tool_call_count > 0,
        _calls.c.tool_failure_count.is_(None),
    )
    total = connection.scalar(select(func.count()).select_from(_calls).where(*unfilled)) or 0
    query = (
        select(_calls.c.id, _calls.c.tool_calls)
        .where(*unfilled)
        .order_by(_calls.c.id)
        .limit(_BATCH)
    )
    write = (
        update(_calls)
        .where(_calls.c.id == bindparam("call_id"))
        .values(tool_failure_count=bindparam("failed"))
    )
    done = failed = 0
    after = None
    while True:
        page = query if after is None else query.where(_calls.c.id > after)
        batch = connection.execute(page).all()
        counted = [(row.id, failed_tool_calls(row.tool_calls)) for row in batch]
        rows = [{"call_id": call_id, "failed": n} for call_id, n in counted if n]
        if rows:
            connection.execute(write, rows)
        failed += len(rows)
        done += len(batch)
        if progress is not None and batch:
            progress(done, total)
        if len(batch) < _BATCH:
            return failed
        after = batch[-1].id
