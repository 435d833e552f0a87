"""Ingest writes: the rows behind call-started, chunk-upload-url, chunk PUT and call-ended.

Each function runs inside the caller's transaction and is idempotent on its natural key,
so a retried or reordered request builds the same call. Every lookup is by a unique index.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Executable, Row, and_, bindparam, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..wire import CallEnded, CallStarted, ToolCall
from . import schema
from .agent_counts import count_call
from .agent_days import count_call as count_days
from .agent_days import recounted
from .analytics import call_figures
from .database import dialect_insert, insert_or_select, utcnow
from .errors import ApiError
from .jobs import enqueue_stitch, stitch_wanted
from .reply_index import add_to_rollups, index_call, store_parts
from .sanitise import MAX_DEPTH, Repair, nesting_depth, repair
from .search_index import count_ended_call, store_ended_call

__all__ = [
    "ENDED",
    "IN_PROGRESS",
    "CallRef",
    "check_call_id",
    "record_call_ended",
    "record_call_started",
    "record_chunk_requested",
    "record_chunk_uploaded",
]

IN_PROGRESS = "IN_PROGRESS"
ENDED = "ENDED"

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")
# The widths of the text columns that hold a field as it was sent (schema.py).
_AGENT_NAME_LENGTH = 512
_ENDED_REASON_LENGTH = 256


@dataclass(frozen=True)
class CallRef:
    """The stored call a request landed on."""

    id: str
    status: str
    num_channels: int | None


def check_call_id(value: str) -> str:
    """A call id is opaque text; control characters (NUL included) are refused.

    It is the call's key, so it is never repaired as other text is: two ids must not
    become one. A lone surrogate cannot be stored, so it is refused too.
    """
    if _CONTROL_CHARACTERS.search(value) or _LONE_SURROGATES.search(value):
        raise ApiError(
            422,
            "invalid_field",
            "pipecatCallId: must not contain control characters or lone surrogates",
            "pipecatCallId",
        )
    return value


_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _parse_time(value: str | None, field: str, repairs: list[Repair]) -> datetime | None:
    """An ISO 8601 time in UTC; one whose UTC instant is outside years 1-9999 is clamped."""
    if value is None:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_field", f"{field}: not an ISO 8601 timestamp", field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        clamped = _EARLIEST if parsed.year == 1 else _LATEST
        repairs.append(
            repair(
                field,
                "timestamp_out_of_range",
                f"in UTC outside years 1-9999: stored as {clamped.isoformat()}",
                value,
            )
        )
        return clamped


def _new_call(project_id: str, pipecat_call_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "project_id": project_id,
        "pipecat_call_id": pipecat_call_id,
        "status": IN_PROGRESS,
        "started_received": False,
        "ended_received": False,
        "stitch_count": 0,
        "created_at": now,
        "updated_at": now,
        "last_activity_at": now,
    }


async def _stored_call(
    connection: AsyncConnection,
    project_id: str,
    pipecat_call_id: str,
    columns: Sequence[str],
    *,
    lock: bool = False,
) -> tuple[CallRef, Row[Any]]:
    """The project's call with this id, created (IN_PROGRESS) by whichever request comes
    first, with the stored ``columns`` the event needs, read in the same statement."""
    row = await insert_or_select(
        connection,
        schema.calls,
        _new_call(project_id, pipecat_call_id, utcnow()),
        ("project_id", "pipecat_call_id"),
        columns=("id", "status", "num_channels", *columns),
        lock=lock,
    )
    return CallRef(row.id, row.status, row.num_channels), row


@dataclass(frozen=True)
class _ChunkStatements:
    """The statements of every chunk, built once per dialect and run with parameters.

    A chunk comes every few seconds of every call; building and hashing a statement costs
    more than running it, and these never change.
    """

    active_call: Executable
    chunk_requested: Executable
    requested_at_once: Executable | None
    """PostgreSQL: ``active_call``, ``chunk_requested`` and an ended call's stitch job as
    one statement, its own transaction; None where a statement cannot write two tables."""
    chunk_uploaded: Executable
    call_touched: Executable


_CHUNK_STATEMENTS: dict[str, _ChunkStatements] = {}
_NEW_CALL_COLUMNS = tuple(_new_call("", "", datetime.now(timezone.utc)))


def _param(column: Any) -> Any:
    """A parameter named after ``column``, of its type (a column's own name is taken)."""
    return bindparam(f"p_{column.name}", type_=column.type)


def _chunk_statements(connection: AsyncConnection) -> _ChunkStatements:
    built = _CHUNK_STATEMENTS.get(connection.dialect.name)
    if built is not None:
        return built
    calls, chunks = schema.calls.c, schema.chunks.c
    now = bindparam("p_now", type_=calls.updated_at.type)
    new_call = dialect_insert(connection, schema.calls).values(
        {name: _param(calls[name]) for name in _NEW_CALL_COLUMNS}
    )
    requested = dialect_insert(connection, schema.chunks).values(
        call_id=_param(chunks.call_id),
        chunk_index=_param(chunks.chunk_index),
        url_expires_at=_param(chunks.url_expires_at),
    )
    active_call = new_call.on_conflict_do_update(
        index_elements=["project_id", "pipecat_call_id"],
        set_={"updated_at": now, "last_activity_at": now},
    ).returning(calls.id, calls.status, calls.num_channels)
    built = _ChunkStatements(
        active_call=active_call,
        chunk_requested=_chunk_noted(requested),
        requested_at_once=(
            _requested_at_once(connection, active_call)
            if connection.dialect.name == "postgresql"
            else None
        ),
        chunk_uploaded=update(schema.chunks)
        .where(chunks.call_id == _param(chunks.call_id))
        .where(chunks.chunk_index == _param(chunks.chunk_index))
        .values(size=_param(chunks.size), sha256=_param(chunks.sha256), uploaded_at=now),
        call_touched=update(schema.calls)
        .where(calls.id == _param(calls.id))
        .values(updated_at=now, last_activity_at=now)
        .returning(calls.status),
    )
    _CHUNK_STATEMENTS[connection.dialect.name] = built
    return built


def _chunk_noted(insert: Any) -> Any:
    """``insert`` of a chunk's row; a chunk asked for again gets the new URL's expiry."""
    return insert.on_conflict_do_update(
        index_elements=["call_id", "chunk_index"],
        set_={"url_expires_at": insert.excluded.url_expires_at},
    )


def _requested_at_once(connection: AsyncConnection, active_call: Any) -> Executable:
    """The call's row, then its chunk's and (an ended call's late chunk) its stitch job's,
    in one statement: no BEGIN and COMMIT round trips around the most frequent request.

    Both later writes read the call's row from the first, so they come after its lock,
    the order every other request keeps.
    """
    chunks, jobs = schema.chunks.c, schema.stitch_jobs.c
    call = active_call.cte("call")
    chunk = dialect_insert(connection, schema.chunks).from_select(
        ["call_id", "chunk_index", "url_expires_at"],
        select(call.c.id, _param(chunks.chunk_index), _param(chunks.url_expires_at)),
    )
    late = select(
        call.c.id, bindparam("p_stitch_due", type_=jobs.due_at.type), literal(0), literal(0)
    ).where(call.c.status == ENDED)
    stitch = dialect_insert(connection, schema.stitch_jobs).from_select(
        ["call_id", "due_at", "generation", "attempts"], late
    )
    return (
        select(call.c.id, call.c.status, call.c.num_channels)
        .add_cte(_chunk_noted(chunk).cte("chunk"))
        .add_cte(stitch_wanted(stitch).cte("stitch"))
    )


def _active_call_parameters(project_id: str, pipecat_call_id: str) -> dict[str, Any]:
    now = utcnow()
    values = _new_call(project_id, pipecat_call_id, now)
    return {f"p_{name}": value for name, value in values.items()} | {"p_now": now}


async def _active_call(
    connection: AsyncConnection, project_id: str, pipecat_call_id: str
) -> CallRef:
    """``_call``, marked active now (``_touch``), in one statement: chunks come often."""
    parameters = _active_call_parameters(project_id, pipecat_call_id)
    statement = _chunk_statements(connection).active_call
    row = (await connection.execute(statement, parameters)).one()
    return CallRef(row.id, row.status, row.num_channels)


async def _touch(connection: AsyncConnection, call_id: str, **values: Any) -> None:
    now = utcnow()
    await connection.execute(
        update(schema.calls)
        .where(schema.calls.c.id == call_id)
        .values(updated_at=now, last_activity_at=now, **values)
    )


async def _agent_id(
    connection: AsyncConnection, project_id: str, custom_id: str, name: str | None
) -> str:
    """The agent is registered on first sight; a new ``agentName`` renames it."""
    now = utcnow()
    row = await insert_or_select(
        connection,
        schema.agents,
        {
            "id": str(uuid.uuid4()),
            "project_id": project_id,
            "custom_id": custom_id,
            "name": name,
            "created_at": now,
            "updated_at": now,
        },
        ("project_id", "custom_id"),
        update_on_conflict={"name": name, "updated_at": now} if name else None,
        update_where=schema.agents.c.name.is_distinct_from(name),
        read_first=True,
    )
    return str(row.id)


async def _prompt_id(connection: AsyncConnection, agent_id: str, prompt: str) -> str:
    """Each distinct prompt text of an agent is kept once, as a revision."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    row = await insert_or_select(
        connection,
        schema.agent_prompts,
        {
            "id": str(uuid.uuid4()),
            "agent_id": agent_id,
            "prompt_sha256": digest,
            "prompt": prompt,
            "created_at": utcnow(),
        },
        ("agent_id", "prompt_sha256"),
        read_first=True,
    )
    return str(row.id)


async def record_call_started(
    connection: AsyncConnection,
    project_id: str,
    body: CallStarted,
    repairs: list[Repair] | None = None,
) -> tuple[CallRef, bool]:
    """Store call-started once; return the call and whether this request changed it.

    ``repairs`` holds what was changed to make the body storable; this adds its own and
    stores them with the call.
    """
    check_call_id(body.pipecatCallId)
    repairs = [] if repairs is None else repairs
    started_at = _parse_time(body.eventTimestamp, "eventTimestamp", repairs)
    agent_name = _fit(body.agentName, _AGENT_NAME_LENGTH, "agentName", repairs)
    agent_id = await _agent_id(connection, project_id, body.agentId, agent_name)
    prompt_id = (
        await _prompt_id(connection, agent_id, body.agentPrompt) if body.agentPrompt else None
    )
    call, stored = await _stored_call(
        connection,
        project_id,
        body.pipecatCallId,
        ("started_received", "ended_received", "ingest_warnings"),
        lock=True,
    )
    if stored.started_received:
        await _touch(connection, call.id)
        return call, False
    values: dict[str, Any] = {
        "started_received": True,
        "agent_id": agent_id,
        "prompt_id": prompt_id,
        "ingest_warnings": _merged(stored.ingest_warnings, repairs),
    }
    # An ended call now has its agent.
    async with recounted(connection, call.id, was_ended=call.status == ENDED):
        # call-ended may have set started_at from callStartedAt already; keep that one.
        column = schema.calls.c.started_at
        kept_start = func.coalesce(column, literal(started_at, column.type))
        await _touch(connection, call.id, **values, started_at=kept_start)
        await count_call(connection, agent_id, prompt_id)  # the agent's row before its days'
    if stored.ended_received:  # its replies wait for their agent (call-ended indexes the rest)
        await connection.run_sync(index_call, call.id)
    return call, True


def _fit(text: str | None, limit: int, field: str, repairs: list[Repair]) -> str | None:
    """Text for a column of ``limit`` characters: a longer one is cut, with a repair."""
    if text is None or len(text) <= limit:
        return text
    repairs.append(repair(field, "text_truncated", f"longer than {limit} characters: cut"))
    return text[:limit]


def _merged(stored: list[Repair] | None, repairs: list[Repair]) -> list[Repair] | None:
    """The call's repairs so far plus this request's, each once."""
    merged = list(stored or ())
    merged.extend(item for item in repairs if item not in merged)
    return merged or None


async def record_chunk_requested(
    connection: AsyncConnection,
    project_id: str,
    pipecat_call_id: str,
    chunk_index: int,
    url_ttl: int,
    late_chunk_delay: float,
) -> CallRef:
    """A client is about to upload chunk ``chunk_index``; note it so a gap can be told.

    On PostgreSQL it is one statement: ``connection`` may be outside a transaction
    (``ServerState.at_once``). Elsewhere it is a transaction's.
    """
    check_call_id(pipecat_call_id)
    statements = _chunk_statements(connection)
    if statements.requested_at_once is not None:
        parameters = _active_call_parameters(project_id, pipecat_call_id)
        now = parameters["p_now"]
        parameters |= {
            "p_chunk_index": chunk_index,
            "p_url_expires_at": now + timedelta(seconds=url_ttl),
            "p_stitch_due": now + timedelta(seconds=late_chunk_delay),
        }
        row = (await connection.execute(statements.requested_at_once, parameters)).one()
        return CallRef(row.id, row.status, row.num_channels)
    call = await _active_call(connection, project_id, pipecat_call_id)
    now = utcnow()
    await connection.execute(
        _chunk_statements(connection).chunk_requested,
        {
            "p_call_id": call.id,
            "p_chunk_index": chunk_index,
            "p_url_expires_at": now + timedelta(seconds=url_ttl),
        },
    )
    if call.status == ENDED:
        # A late retry: the bytes may go straight to a bucket, so look again shortly.
        await enqueue_stitch(connection, call.id, now + timedelta(seconds=late_chunk_delay))
    return call


async def record_chunk_uploaded(
    connection: AsyncConnection,
    call_id: str,
    chunk_index: int,
    size: int,
    sha256: str | None = None,
) -> str | None:
    """The server stored a chunk's bytes: the call's status, or None when the call is gone.

    A chunk of an ended call (a late retry) enqueues a stitch. ``sha256`` is the digest of
    the bytes, which tells a client's retry (the same bytes) from a replayed URL.
    """
    now = utcnow()
    statements = _chunk_statements(connection)
    # The call's row before the chunk's, as every other request that takes both does.
    status = await connection.scalar(statements.call_touched, {"p_id": call_id, "p_now": now})
    if status is None:
        return None
    result = await connection.execute(
        statements.chunk_uploaded,
        {
            "p_call_id": call_id,
            "p_chunk_index": chunk_index,
            "p_size": size,
            "p_sha256": sha256,
            "p_now": now,
        },
    )
    if not result.rowcount:
        return None
    if status == ENDED:
        await enqueue_stitch(connection, call_id, now)
    return str(status)


def _transcript_text(body: CallEnded) -> str:
    return "\n".join(turn.content for turn in body.transcript or () if turn.role != "system")


async def record_call_ended(
    connection: AsyncConnection,
    project_id: str,
    body: CallEnded,
    repairs: list[Repair] | None = None,
) -> tuple[CallRef, bool]:
    """Store call-ended once; return the call and whether this request changed it.

    A repeat is acknowledged unchanged, but one whose recording format disagrees with the
    stored one is a conflict: the chunks already stored cannot be both. ``repairs`` as for
    ``record_call_started``.
    """
    check_call_id(body.pipecatCallId)
    repairs = [] if repairs is None else repairs
    event_at = _parse_time(body.eventTimestamp, "eventTimestamp", repairs)
    started_at = _parse_time(body.callStartedAt, "callStartedAt", repairs)
    ended_at = _parse_time(body.callEndedAt, "callEndedAt", repairs) or event_at
    ended_reason = _fit(body.callEndedReason, _ENDED_REASON_LENGTH, "callEndedReason", repairs)
    _note_deep_arguments(body, repairs)
    call, stored = await _stored_call(
        connection,
        project_id,
        body.pipecatCallId,
        ("ended_received", "sample_rate", "started_at", "ingest_warnings"),
        lock=True,
    )
    if stored.ended_received:
        _check_same_format(body, stored.sample_rate, stored.num_channels)
        await _touch(connection, call.id)
        return call, False

    started_at = started_at or stored.started_at
    duration_ms = None
    if started_at is not None and ended_at is not None and ended_at >= started_at:
        duration_ms = int((ended_at - started_at).total_seconds() * 1000)
    transcript, tool_calls, metrics = (
        _dump(body.transcript),
        _dump(body.toolCalls),
        _dump(body.metrics),
    )
    transcript_text = _transcript_text(body)
    # Ended by inactivity, it counted already.
    async with recounted(
        connection, call.id, was_ended=call.status == ENDED, ends=True, starts=started_at
    ):
        await _touch(
            connection,
            call.id,
            status=ENDED,
            ended_received=True,
            finalised_by="call-ended",
            started_at=started_at,
            ended_at=ended_at,
            duration_ms=duration_ms,
            ended_reason=ended_reason,
            agent_spoke_first=body.agentSpokeFirst,
            sample_rate=body.recordingSampleRate,
            num_channels=body.recordingNumChannels,
            transcript=transcript,
            transcript_text=transcript_text,
            tool_calls=tool_calls,
            metrics=metrics,
            ingest_warnings=_merged(stored.ingest_warnings, repairs),
            **call_figures(transcript, tool_calls, metrics),
        )
        # The call's own rows first. The rows it shares with every call of its agent (its
        # day, counted as this block ends, and its rollups) and of its project (the words'
        # counts and sets) stay locked from their first write to the commit, and a burst
        # of calls ending queues there.
        rollups = await connection.run_sync(store_parts, call.id)
        search_id, words = await connection.run_sync(
            store_ended_call, call.id, transcript_text, tool_calls
        )
        await enqueue_stitch(connection, call.id, utcnow())
    await connection.run_sync(add_to_rollups, rollups)
    await connection.run_sync(count_ended_call, project_id, search_id, words)
    return CallRef(call.id, ENDED, body.recordingNumChannels), True


def _note_deep_arguments(body: CallEnded, repairs: list[Repair]) -> None:
    """Tool arguments are kept as sent; too deep to parse, they are also shown as text."""
    for index, record in enumerate(body.toolCalls or ()):
        if isinstance(record, ToolCall) and nesting_depth(record.arguments) > MAX_DEPTH:
            repairs.append(
                repair(
                    f"toolCalls.{index}.arguments",
                    "nested_too_deep",
                    f"nested more than {MAX_DEPTH} levels: parameters are its text",
                )
            )


def _check_same_format(body: CallEnded, sample_rate: int | None, channels: int | None) -> None:
    for field, given, stored in (
        ("recordingSampleRate", body.recordingSampleRate, sample_rate),
        ("recordingNumChannels", body.recordingNumChannels, channels),
    ):
        if given is not None and stored is not None and given != stored:
            raise ApiError(
                409,
                "recording_format_conflict",
                f"{field}: {given} disagrees with {stored} sent earlier for this call",
                field,
            )


def _dump(items: list[Any] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    return [item.model_dump(mode="json", exclude_none=True) for item in items]


async def finalise_inactive(
    connection: AsyncConnection, idle_seconds: float, limit: int = 100
) -> list[str]:
    """End calls that have been silent for ``idle_seconds``, as if call-ended had come."""
    now = utcnow()
    cutoff = now - timedelta(seconds=idle_seconds)
    ids = list(
        await connection.scalars(
            select(schema.calls.c.id)
            .where(schema.calls.c.status == IN_PROGRESS, schema.calls.c.last_activity_at < cutoff)
            .limit(limit)
        )
    )
    for call_id in ids:
        result = await connection.execute(
            update(schema.calls)
            .where(and_(schema.calls.c.id == call_id, schema.calls.c.status == IN_PROGRESS))
            .values(
                status=ENDED,
                finalised_by="inactivity",
                ended_at=schema.calls.c.last_activity_at,
                ended_reason="inactivity-timeout",
                updated_at=now,
            )
        )
        if result.rowcount:  # ended here, not by a call-ended meanwhile: it counts now
            await connection.run_sync(count_days, call_id)
            await enqueue_stitch(connection, call_id, now)
    return ids
