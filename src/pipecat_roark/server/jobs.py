"""The stitch queue, kept in the database so any replica can take any call's job.

A job is one row per call. Enqueueing again bumps its generation, so a job finished while a
newer request arrived runs once more. A claim is a lease: a replica killed mid-job leaves a
lease that expires, and the job is claimed again. On PostgreSQL the claim skips rows other
replicas hold (``FOR UPDATE SKIP LOCKED``); SQLite serialises writers (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import dialect_insert, utcnow
from .schema import stitch_jobs

__all__ = [
    "ClaimedJob",
    "claim_job",
    "enqueue_stitch",
    "finish_job",
    "release_job",
    "renew_lease",
    "stitch_wanted",
]


@dataclass(frozen=True)
class ClaimedJob:
    call_id: str
    generation: int
    attempts: int


async def enqueue_stitch(connection: AsyncConnection, call_id: str, due: datetime) -> None:
    """Ask for the call to be (re)stitched no later than ``due``."""
    insert = dialect_insert(connection, stitch_jobs).values(
        call_id=call_id, due_at=due, generation=0, attempts=0
    )
    await connection.execute(stitch_wanted(insert))


def stitch_wanted(insert: Any) -> Any:
    """``insert`` (of ``stitch_jobs`` rows, from values or a select) as an enqueue: a call
    that has a job already gets its generation bumped and the earlier of the two dues."""
    return insert.on_conflict_do_update(
        index_elements=["call_id"],
        set_={
            "generation": stitch_jobs.c.generation + 1,
            "due_at": case(
                (stitch_jobs.c.due_at <= insert.excluded.due_at, stitch_jobs.c.due_at),
                else_=insert.excluded.due_at,
            ),
        },
    )


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(
        stitch_jobs.c.due_at <= now,
        or_(stitch_jobs.c.lease_until.is_(None), stitch_jobs.c.lease_until < now),
    )


async def claim_job(
    connection: AsyncConnection, owner: str, lease_seconds: float
) -> ClaimedJob | None:
    """Take the most overdue job nobody holds, for ``lease_seconds``."""
    now = utcnow()
    call_id = await connection.scalar(
        select(stitch_jobs.c.call_id)
        .where(_claimable(now))
        .order_by(stitch_jobs.c.due_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if call_id is None:
        return None
    row = (
        await connection.execute(
            update(stitch_jobs)
            .where(stitch_jobs.c.call_id == call_id, _claimable(now))
            .values(
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease_seconds),
                attempts=stitch_jobs.c.attempts + 1,
            )
            .returning(stitch_jobs.c.generation, stitch_jobs.c.attempts)
        )
    ).first()
    if row is None:
        return None
    return ClaimedJob(str(call_id), int(row.generation), int(row.attempts))


async def renew_lease(
    connection: AsyncConnection, job: ClaimedJob, owner: str, lease_seconds: float
) -> bool:
    """Extend a held lease; False when another replica has taken the job."""
    result = await connection.execute(
        update(stitch_jobs)
        .where(stitch_jobs.c.call_id == job.call_id, stitch_jobs.c.lease_owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
    )
    return bool(result.rowcount)


async def finish_job(connection: AsyncConnection, job: ClaimedJob, owner: str) -> None:
    """Drop the job, unless a newer request bumped it meanwhile (then free it to run again)."""
    result = await connection.execute(
        delete(stitch_jobs).where(
            stitch_jobs.c.call_id == job.call_id,
            stitch_jobs.c.lease_owner == owner,
            stitch_jobs.c.generation == job.generation,
        )
    )
    if not result.rowcount:
        await release_job(connection, job, owner, due=utcnow(), reset_attempts=True)


async def release_job(
    connection: AsyncConnection,
    job: ClaimedJob,
    owner: str,
    *,
    due: datetime,
    reset_attempts: bool = False,
) -> None:
    """Give the job back to the queue, due at ``due`` (now, if a request bumped it meanwhile)."""
    values: dict[str, object] = {
        "lease_owner": None,
        "lease_until": None,
        "due_at": case((stitch_jobs.c.generation == job.generation, due), else_=utcnow()),
    }
    if reset_attempts:
        values["attempts"] = 0
    await connection.execute(
        update(stitch_jobs)
        .where(stitch_jobs.c.call_id == job.call_id, stitch_jobs.c.lease_owner == owner)
        .values(**values)
    )
