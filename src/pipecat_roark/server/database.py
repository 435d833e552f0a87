"""The database connection: one URL picks SQLite or PostgreSQL, migrations run at start.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so concurrent writers in one
process queue instead of failing; reads go through ``read_engine``, which never takes the
write lock. PostgreSQL migrations run under an advisory lock so replicas starting together
apply them once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import ColumnElement, Connection, Row, Table, event, exc, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .private_files import make_private_dirs, make_private_file

__all__ = [
    "MIGRATIONS_DIR",
    "create_engine",
    "dialect_insert",
    "insert_or_select",
    "normalize_database_url",
    "open_database",
    "read_engine",
    "run_migrations",
    "utcnow",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any fixed 64-bit number shared by every replica of this server.
_MIGRATION_LOCK_KEY = 0x726F61726B5F6D67
# A replica's connections to PostgreSQL, at most.
_POOL_CONNECTIONS = 20
# The execution option that marks read_engine's connections.
_READ_ONLY = "pipecat_roark_read_only"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def normalize_database_url(url: str) -> str:
    """Pick the async driver for a plain ``sqlite:`` or ``postgresql:`` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(database_url: str) -> AsyncEngine:
    url = make_url(normalize_database_url(database_url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            # SQLite gives its -wal and -shm files the database file's own mode.
            path = Path(url.database).expanduser()
            make_private_dirs(path.parent)
            make_private_file(path)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # Every connection it opens it keeps: an overflow connection is closed as it comes back,
    # and a busy replica opened (and prepared its statements on) a new one for a third of
    # its requests.
    engine = create_async_engine(url, pool_size=_POOL_CONNECTIONS, max_overflow=0)
    event.listen(engine.sync_engine, "checkout", _drop_closed)
    return engine


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed (a restart, a failover, a terminated
    backend) is replaced before use, with no round trip.

    SQLAlchemy's ``pool_pre_ping`` asks the server instead: three round trips (BEGIN, a
    ping, ROLLBACK), most of a chunk request's database time. The driver already knows:
    the server's goodbye closed its socket. A connection that fails mid-statement is still
    invalidated with the rest of the pool, and the request answers 503.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the database closed this connection")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        dbapi_connection.create_function("set_bit", 3, _set_bit, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if not connection.get_execution_options().get(_READ_ONLY, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _set_bit(bits: bytes, n: int, value: int) -> bytes:
    """PostgreSQL's ``set_bit`` of a ``bytea``, for SQLite (``search_sets``): bit ``n`` is
    bit ``n % 8``, from the least significant, of byte ``n // 8``."""
    changed = bytearray(bits)
    mask = 1 << (n & 7)
    changed[n >> 3] = changed[n >> 3] | mask if value else changed[n >> 3] & ~mask
    return bytes(changed)


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine to read with: the same pool and listeners as ``engine``, and no
    transaction: each statement reads the latest committed data on its own.

    On SQLite (WAL lets a reader in while a writer commits) a read never queues behind an
    ingest write for the write lock, and costs no BEGIN of its own. On PostgreSQL
    (autocommit) it saves the BEGIN and ROLLBACK round trips around every read. Statements
    of one connection do not share a snapshot, as they would not at READ COMMITTED either.
    Never write through it.
    """
    if engine.dialect.name != "sqlite":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine.execution_options(**{_READ_ONLY: True})


def dialect_insert(connection: AsyncConnection | Connection, table: Table) -> Any:
    """An INSERT that supports ``on_conflict_do_*`` on the connection's backend."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


@contextlib.asynccontextmanager
async def open_database(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a schema brought up to date, disposed of on exit."""
    engine = create_engine(database_url)
    try:
        await run_migrations(engine)
        yield engine
    finally:
        await engine.dispose()


async def insert_or_select(
    connection: AsyncConnection,
    table: Table,
    values: dict[str, Any],
    key: Sequence[str],
    *,
    columns: Sequence[str] = ("id",),
    update_on_conflict: dict[str, Any] | None = None,
    update_where: ColumnElement[bool] | None = None,
    lock: bool = False,
    read_first: bool = False,
) -> Row[Any]:
    """The row with ``values``' natural ``key``, inserted by whichever request comes first.

    Safe under concurrent requests and replicas: the insert yields to an existing row
    (optionally updating it), which is then read back by its unique key; a row the insert
    made comes back from the insert itself. ``read_first``,
    for rows that nearly always exist (an agent, a prompt): an existing row that needs no
    update is read alone, one statement instead of two, which matters inside a write that
    others wait for.
    """
    query = select(*(table.c[name] for name in columns)).where(
        *(table.c[name] == values[name] for name in key)
    )
    if lock:
        query = query.with_for_update()
    if read_first:
        unchanged = query
        if update_on_conflict and update_where is not None:
            unchanged = query.where(~update_where)
        found = (await connection.execute(unchanged)).first()
        if found is not None:
            return found
    insert = dialect_insert(connection, table).values(**values)
    inserted = (
        await connection.execute(
            insert.on_conflict_do_nothing(index_elements=list(key)).returning(
                *(table.c[name] for name in columns)
            )
        )
    ).first()
    if inserted is not None:  # this request's row: its values are the ones wanted
        return inserted
    if update_on_conflict:
        # Not ON CONFLICT DO UPDATE: PostgreSQL locks the existing row there even when
        # ``update_where`` turns the update down, and a burst of calls naming a new agent
        # would each hold it to their commit. An update whose WHERE matches nothing locks
        # nothing.
        matched = [table.c[name] == values[name] for name in key]
        if update_where is not None:
            matched.append(update_where)
        await connection.execute(update(table).where(*matched).values(**update_on_conflict))
    return (await connection.execute(query)).one()


async def run_migrations(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe for replicas starting at once, and for
    processes starting at once on one SQLite file (``serve`` beside ``keys create``)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database != ":memory:":
        lock = await asyncio.to_thread(_lock_file, f"{database}.migrations.lock")
        try:
            await _migrate(engine)
        finally:
            os.close(lock)  # closing the file lets the lock go
    else:
        await _migrate(engine)
    logger.debug("database schema is current")


def _lock_file(path: str) -> int:
    """An exclusive lock on ``path`` (owner-only, made if missing), held until closed."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    return descriptor


async def _migrate(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        is_postgres = connection.dialect.name == "postgresql"
        if is_postgres:
            await connection.execute(
                text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            await connection.commit()
        try:
            await connection.run_sync(_upgrade_to_head)
            await connection.commit()
        finally:
            if is_postgres:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
                await connection.commit()


def _upgrade_to_head(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
