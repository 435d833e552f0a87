"""The tables, as SQLAlchemy Core metadata shared by every query and by the migrations' tests.

Every lookup on the ingest path goes through a unique index on a natural key, so a request
costs the same however many calls are stored.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import TypeDecorator

__all__ = [
    "agent_days",
    "agent_prompts",
    "agents",
    "api_keys",
    "call_search",
    "calls",
    "chunks",
    "ended_or_epoch",
    "epoch",
    "latency_rollups",
    "metadata",
    "or_last",
    "or_minus_one",
    "projects",
    "reply_parts",
    "search_word_counts",
    "server_secrets",
    "stitch_jobs",
    "tool_failed",
    "trace_spans",
    "used_login_links",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _json() -> Any:
    return JSON().with_variant(JSONB(), "postgresql")


metadata = MetaData()

projects = Table(
    "projects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("custom_id", String(256), nullable=False),
    Column("name", String(512), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Its calls, counted at call-started and uncounted at deletion (server/agent_counts.py).
    Column("call_count", Integer(), nullable=False, default=0, server_default="0"),
    UniqueConstraint("project_id", "custom_id", name="uq_agents_project_custom_id"),
)

agent_prompts = Table(
    "agent_prompts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("agent_id", String(36), ForeignKey("agents.id"), nullable=False),
    Column("prompt_sha256", String(64), nullable=False),
    Column("prompt", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # How many calls ran with this revision (server/agent_counts.py).
    Column("call_count", Integer(), nullable=False, default=0, server_default="0"),
    UniqueConstraint("agent_id", "prompt_sha256", name="uq_agent_prompts_agent_sha"),
)

# A call counted (+1) or uncounted (-1) in its agent's and revision's rows, until the
# maintenance loop folds it in (server/agent_counts.py).
agent_count_changes = Table(
    "agent_count_changes",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("agent_id", String(36), nullable=False),
    Column("prompt_id", String(36), nullable=True),
    Column("calls", Integer(), nullable=False),
    Index("ix_agent_count_changes_agent", "agent_id"),
    Index("ix_agent_count_changes_prompt", "prompt_id"),
)

calls = Table(
    "calls",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("pipecat_call_id", String(256), nullable=False),
    Column("agent_id", String(36), ForeignKey("agents.id"), nullable=True),
    Column("prompt_id", String(36), ForeignKey("agent_prompts.id"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("started_received", Boolean(), nullable=False, default=False),
    Column("ended_received", Boolean(), nullable=False, default=False),
    Column("finalised_by", String(16), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("ended_reason", String(256), nullable=True),
    Column("agent_spoke_first", Boolean(), nullable=True),
    Column("sample_rate", Integer(), nullable=True),
    Column("num_channels", Integer(), nullable=True),
    Column("transcript", _json(), nullable=True),
    Column("transcript_text", Text(), nullable=True),
    Column("tool_calls", _json(), nullable=True),
    Column("metrics", _json(), nullable=True),
    Column("recording_key", String(512), nullable=True),
    Column("recording_bytes", BigInteger(), nullable=True),
    Column("recording_duration_ms", BigInteger(), nullable=True),
    Column("duration_ms", BigInteger(), nullable=True),
    Column("stitch_fingerprint", String(64), nullable=True),
    Column("recording_gaps", _json(), nullable=True),
    Column("recording_issues", _json(), nullable=True),
    Column("stitch_count", Integer(), nullable=False, default=0),
    Column("stitched_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("last_activity_at", UTCDateTime(), nullable=False),
    # Figures derived from call-ended (analytics.call_figures), so lists never read the JSON.
    Column("turn_count", Integer(), nullable=True),
    Column("assistant_turn_count", Integer(), nullable=True),
    Column("tool_call_count", Integer(), nullable=True),
    Column("tool_failure_count", Integer(), nullable=True),
    Column("interruption_count", Integer(), nullable=True),
    Column("response_latencies", _json(), nullable=True),
    Column("response_latency_p50", Float(), nullable=True),
    # What ingest changed to make the call storable (sanitise.Repair), shown with the call.
    Column("ingest_warnings", _json(), nullable=True),
    UniqueConstraint("project_id", "pipecat_call_id", name="uq_calls_project_pipecat_id"),
    Index("ix_calls_project_created", "project_id", "created_at"),
    Index("ix_calls_status_activity", "status", "last_activity_at"),
    Index("ix_calls_created", "created_at"),
)
Index(
    "ix_calls_project_started",
    calls.c.project_id,
    func.coalesce(calls.c.started_at, calls.c.created_at),
    calls.c.id,
)
Index(
    "ix_calls_agent_started",
    calls.c.agent_id,
    func.coalesce(calls.c.started_at, calls.c.created_at),
    calls.c.id,
)


def or_minus_one(*columns: Any) -> Any:
    """The first non-NULL column, else -1: a list's key for sorting by a figure, largest
    first, calls without it last. A literal, not a parameter, so its index matches."""
    return func.coalesce(*columns, literal_column("-1"))


_LAST = 2**31 - 1  # above every figure a call keeps (each fits an INTEGER)


def or_last(*columns: Any) -> Any:
    """The first non-NULL column, else ``LAST``: the key for sorting by a figure, smallest
    first, calls without it last (a literal too)."""
    return func.coalesce(*columns, literal_column(str(_LAST)))


class _Epoch(ColumnElement[datetime]):
    """1970-01-01 UTC written into the SQL as each database stores a time, not bound as a
    parameter: an index on an expression with it then matches the query's."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(_Epoch)
def _epoch(_element: _Epoch, _compiler: Any, **_kw: Any) -> str:
    return "CAST('1970-01-01 00:00:00+00' AS TIMESTAMP WITH TIME ZONE)"  # as PostgreSQL prints it


@compiles(_Epoch, "sqlite")
def _epoch_sqlite(_element: _Epoch, _compiler: Any, **_kw: Any) -> str:
    return "'1970-01-01 00:00:00.000000'"  # how SQLite's DateTime keeps a naive UTC time


def epoch() -> Any:
    """1970-01-01 UTC as a literal (the migrations build the ``endedAt`` index with it)."""
    return _Epoch()


def ended_or_epoch() -> Any:
    """When the call ended, 1970 for one that has not: the REST list's ``endedAt`` order,
    calls still going first when oldest first."""
    return func.coalesce(calls.c.ended_at, epoch(), type_=UTCDateTime())


# The lists' other orders (migrations/versions/v0008_list_indexes.py, v0009_...).

Index(
    "ix_calls_project_duration",
    calls.c.project_id,
    or_minus_one(calls.c.duration_ms, calls.c.recording_duration_ms),
    calls.c.id,
)
Index(
    "ix_calls_project_latency",
    calls.c.project_id,
    or_minus_one(calls.c.response_latency_p50),
    calls.c.id,
)
Index(
    "ix_calls_project_interruptions",
    calls.c.project_id,
    or_minus_one(calls.c.interruption_count),
    calls.c.id,
)
# The same sorts smallest first (v0013_ascending_list_indexes.py).
Index(
    "ix_calls_project_duration_asc",
    calls.c.project_id,
    or_last(calls.c.duration_ms, calls.c.recording_duration_ms),
    calls.c.id,
)
Index(
    "ix_calls_project_latency_asc",
    calls.c.project_id,
    or_last(calls.c.response_latency_p50),
    calls.c.id,
)
Index(
    "ix_calls_project_interruptions_asc",
    calls.c.project_id,
    or_last(calls.c.interruption_count),
    calls.c.id,
)
Index("ix_calls_project_status", calls.c.project_id, calls.c.status, calls.c.id)
Index(
    "ix_calls_project_reason",
    calls.c.project_id,
    calls.c.ended_reason,
    func.coalesce(calls.c.started_at, calls.c.created_at),
    calls.c.id,
)
Index("ix_calls_agent_prompt", calls.c.agent_id, calls.c.prompt_id)
Index("ix_calls_project_ended", calls.c.project_id, ended_or_epoch(), calls.c.id)
Index("ix_calls_project_id", calls.c.project_id, calls.c.id)


def tool_failed() -> Any:
    """Calls with a failed tool call: the condition of ``ix_calls_project_tool_failed``, with
    its 0 a literal so that the index matches a query's."""
    return calls.c.tool_failure_count > literal_column("0")


# Only the calls a tool failed in (a few in a hundred): the tool-error filter reads those.
# The figure itself is in it too, so the filter's count needs no other read: SQLite does not
# see that the index's condition answers the query's, and without statistics it counted
# through another index as often as through this one.
Index(
    "ix_calls_project_tool_failed",
    calls.c.project_id,
    func.coalesce(calls.c.started_at, calls.c.created_at),
    calls.c.id,
    calls.c.tool_failure_count,
    sqlite_where=tool_failed(),
    postgresql_where=tool_failed(),
)

chunks = Table(
    "chunks",
    metadata,
    Column("call_id", String(36), ForeignKey("calls.id"), primary_key=True),
    Column("chunk_index", Integer(), primary_key=True),
    Column("url_expires_at", UTCDateTime(), nullable=False),
    Column("size", BigInteger(), nullable=True),
    Column("uploaded_at", UTCDateTime(), nullable=True),
    # Of the bytes a folder-store upload stored: its URL then takes no other bytes.
    Column("sha256", String(64), nullable=True),
)

used_login_links = Table(
    "used_login_links",
    metadata,
    # SHA-256 of a login link's token: a link opens one session, once.
    Column("token_sha256", String(64), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
)

stitch_jobs = Table(
    "stitch_jobs",
    metadata,
    Column("call_id", String(36), ForeignKey("calls.id"), primary_key=True),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("generation", Integer(), nullable=False, default=0),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("attempts", Integer(), nullable=False, default=0),
    Index("ix_stitch_jobs_due", "due_at"),
)

# Pipecat's OpenTelemetry spans, kept by trace: only a trace's conversation span names the
# call (conversation.id), and it is exported last, so a trace joins its call when it comes.
trace_spans = Table(
    "trace_spans",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16), nullable=True),
    Column("name", String(256), nullable=False),
    Column("start_ns", BigInteger(), nullable=False),
    Column("end_ns", BigInteger(), nullable=False),
    Column("attributes", _json(), nullable=False),
    Column("status_code", Integer(), nullable=False),
    Column("status_message", Text(), nullable=True),
    Column("conversation_id", String(256), nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("project_id", "trace_id", "span_id", name="uq_trace_spans_span"),
    Index("ix_trace_spans_conversation", "project_id", "conversation_id"),
    Index("ix_trace_spans_received", "received_at"),
)

# Each reply's latency parts (the observer's latency_breakdown metrics), one row per part, so
# the worst replies for a part are read off an index; the reply's total is the part whose
# key, owner and owner kind are all "". Written at ingest, rebuilt by
# ``pipecat-roark rebuild-latency`` (server/reply_index.py).
reply_parts = Table(
    "reply_parts",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("agent_id", String(36), ForeignKey("agents.id"), nullable=False),
    Column("call_id", String(36), ForeignKey("calls.id"), nullable=False),
    Column("prompt_id", String(36), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("reply_index", Integer(), nullable=False),
    Column("turn_index", Integer(), nullable=True),
    Column("offset_ms", BigInteger(), nullable=True),
    Column("reply_secs", Float(), nullable=False),
    Column("key", String(128), nullable=False),
    Column("owner", String(256), nullable=False),
    Column("owner_kind", String(32), nullable=False),
    Column("secs", Float(), nullable=False),
    UniqueConstraint(
        "call_id", "reply_index", "key", "owner", "owner_kind", name="uq_reply_parts_part"
    ),
    Index("ix_reply_parts_worst", "project_id", "agent_id", "key", "owner", "owner_kind", "secs"),
)

# Every duration of a part, per agent, UTC day and hour and prompt revision ("" for none), as
# exact comma-separated floats: a window's percentiles read a few rows per day, not every
# reply; by the hour, so a call-ended rewrites an hour's durations, not a busy day's.
# Each agent's ended calls per UTC day, summed as its trends need them (server/agent_days.py):
# the calls, those that carried metrics, their interruptions and bot turns, and every
# response latency as exact text (``repr``), comma-separated.
agent_days = Table(
    "agent_days",
    metadata,
    Column("project_id", String(36), ForeignKey("projects.id"), primary_key=True),
    Column("agent_id", String(36), ForeignKey("agents.id"), primary_key=True),
    Column("day", Date(), primary_key=True),
    Column("calls", Integer(), nullable=False),
    Column("calls_with_metrics", Integer(), nullable=False),
    Column("interruptions", Integer(), nullable=False),
    Column("assistant_turns", Integer(), nullable=False),
    Column("latencies", LargeBinary(), nullable=False),  # server/durations.py
)

latency_rollups = Table(
    "latency_rollups",
    metadata,
    Column("project_id", String(36), ForeignKey("projects.id"), primary_key=True),
    Column("agent_id", String(36), ForeignKey("agents.id"), primary_key=True),
    Column("day", Date(), primary_key=True),
    Column("hour", Integer(), primary_key=True),
    Column("prompt_id", String(36), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("owner", String(256), primary_key=True),
    Column("owner_kind", String(32), primary_key=True),
    Column("count", Integer(), nullable=False),
    Column("samples", LargeBinary(), nullable=False),  # server/durations.py
)

# Each ended call's searched text (server/search_index.py): ``body`` every word in order, as
# search_terms.document writes it, ``words`` its distinct words. SQLite's FTS5 table
# ``call_search_fts`` reads ``body`` (the migration makes it and the triggers that keep it in
# step); PostgreSQL indexes ``to_tsvector('simple', words)``.
call_search = Table(
    "call_search",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("call_id", String(36), ForeignKey("calls.id"), nullable=False, unique=True),
    Column("body", Text(), nullable=False),
    Column("words", Text(), nullable=False),
    Index(
        "ix_call_search_words",
        func.to_tsvector(literal_column("'simple'"), literal_column("words")),
        postgresql_using="gin",
    ),
)

# How many of a project's indexed calls hold each word (server/search_counts.py): a one-word
# search's exact total is one row.
search_word_counts = Table(
    "search_word_counts",
    metadata,
    Column("project_id", String(36), ForeignKey("projects.id"), primary_key=True),
    Column("word", Text(), primary_key=True),
    Column("calls", Integer(), nullable=False),
    # The word's calls are also kept as a set (``search_word_sets``).
    Column("has_set", Boolean(), nullable=False, server_default=false()),
)

# The calls holding each frequent word of a project (server/search_sets.py): bit ``n`` of
# ``block`` b is the call indexed as ``call_search.id`` b x 8192 + n. A total of several such
# words is the count of the calls in every word's set.
search_word_sets = Table(
    "search_word_sets",
    metadata,
    Column("project_id", String(36), ForeignKey("projects.id"), primary_key=True),
    Column("word", Text(), primary_key=True),
    Column("block", Integer(), primary_key=True),
    Column("bits", LargeBinary(), nullable=False),
)
