"""Run one claimed stitch job: list the call's chunks, plan, write the WAV, record the result.

With an S3 store the server never sees chunk uploads, so a chunk whose upload URL is still
valid but whose bytes are not there yet makes the job come back later to look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
from datetime import timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy import select, update

from . import schema
from .blobs import call_prefix, chunk_index_of, recording_key
from .database import utcnow
from .jobs import ClaimedJob, finish_job, release_job, renew_lease
from .limits import CHUNK_BODY_LIMIT
from .peaks import save_peaks
from .state import ServerState
from .stitch import SAMPLE_WIDTH, plan_stitch, write_wav

__all__ = ["run_stitch_job"]

_RECHECK_FIRST = 2.0
_RECHECK_MAX = 60.0
_FAILURE_BACKOFF_MAX = 300.0


async def run_stitch_job(state: ServerState, job: ClaimedJob) -> None:
    """Stitch the job's call; on failure give the job back with a backoff."""
    log = logger.bind(call_id=job.call_id, replica=state.replica_id)
    heartbeat = asyncio.create_task(_keep_lease(state, job))
    try:
        recheck_in = await _stitch(state, job)
    except Exception as exc:
        delay = min(float(2**job.attempts), _FAILURE_BACKOFF_MAX)
        log.warning(
            "stitch failed (attempt {}), retrying in {:.0f}s: {!r}", job.attempts, delay, exc
        )
        with contextlib.suppress(Exception):
            async with state.begin() as connection:
                await release_job(
                    connection, job, state.replica_id, due=utcnow() + timedelta(seconds=delay)
                )
        return
    finally:
        heartbeat.cancel()
        await asyncio.wait([heartbeat])
    async with state.begin() as connection:
        if recheck_in is None:
            await finish_job(connection, job, state.replica_id)
        else:
            await release_job(
                connection,
                job,
                state.replica_id,
                due=utcnow() + timedelta(seconds=recheck_in),
            )


async def _keep_lease(state: ServerState, job: ClaimedJob) -> None:
    lease = state.settings.stitch_lease
    while True:
        await asyncio.sleep(lease / 3)
        async with state.begin() as connection:
            renewed = await renew_lease(connection, job, state.replica_id, lease)
        if not renewed:
            logger.warning("stitch lease for call {} was taken over", job.call_id)
            return


async def _stitch(state: ServerState, job: ClaimedJob) -> float | None:
    """Do the work; return seconds until the job should look again, or None when done."""
    async with state.reader.connect() as connection:
        call = (
            await connection.execute(
                select(
                    schema.calls.c.sample_rate,
                    schema.calls.c.num_channels,
                    schema.calls.c.stitch_fingerprint,
                ).where(schema.calls.c.id == job.call_id)
            )
        ).first()
        requested = {
            int(row.chunk_index): row.url_expires_at
            for row in await connection.execute(
                select(schema.chunks.c.chunk_index, schema.chunks.c.url_expires_at).where(
                    schema.chunks.c.call_id == job.call_id
                )
            )
        }
    if call is None:
        return None  # deleted meanwhile

    present: dict[int, tuple[str, int]] = {}
    for key, size in (await state.blobs.sizes(call_prefix(job.call_id) + "chunks/")).items():
        index = chunk_index_of(key)
        if index is not None:
            present[index] = (key, size)
    now = utcnow()
    waiting = [i for i, expires in requested.items() if i not in present and expires > now]
    recheck = _recheck_delay(job) if waiting else None

    if not present and not requested:
        await _record(state, job.call_id, None, fingerprint=None, issues=[])
        return None
    if call.sample_rate is None:
        # Without call-ended the format is unknown; a later call-ended enqueues this again.
        await _record(
            state, job.call_id, None, fingerprint=None, issues=[{"problem": "format_unknown"}]
        )
        return recheck
    channels = call.num_channels or 2
    plan = plan_stitch(
        present,
        requested,
        frame_bytes=channels * SAMPLE_WIDTH,
        max_chunk_bytes=CHUNK_BODY_LIMIT,
    )
    fingerprint = hashlib.sha256(
        repr((call.sample_rate, channels, sorted(present.items()), sorted(requested))).encode()
    ).hexdigest()
    if fingerprint == call.stitch_fingerprint:
        return recheck
    if not plan.parts:
        await _record(state, job.call_id, None, fingerprint=fingerprint, issues=plan.issues)
        return recheck

    with tempfile.TemporaryDirectory(prefix="roark-stitch-") as folder:
        path = Path(folder) / "recording.wav"
        frames = await write_wav(
            plan, state.blobs, sample_rate=call.sample_rate, channels=channels, path=path
        )
        key = recording_key(job.call_id)
        await state.blobs.put_file(key, path, "audio/wav")
        await save_peaks(state.blobs, job.call_id, path)
        size = path.stat().st_size
    result = {
        "recording_key": key,
        "recording_bytes": size,
        "recording_duration_ms": frames * 1000 // call.sample_rate,
        "recording_gaps": [
            {
                "chunkIndex": gap.chunk_index,
                "silenceMs": None
                if gap.silence_bytes is None
                else gap.silence_bytes // (channels * SAMPLE_WIDTH) * 1000 // call.sample_rate,
            }
            for gap in plan.gaps
        ],
    }
    stored = await _record(state, job.call_id, result, fingerprint=fingerprint, issues=plan.issues)
    if not stored:
        await state.blobs.delete_prefix(call_prefix(job.call_id))
    logger.bind(call_id=job.call_id).info(
        "stitched {} chunks, {} missing, {} frames", len(present), len(plan.gaps), frames
    )
    return recheck


async def _record(
    state: ServerState,
    call_id: str,
    result: dict[str, object] | None,
    *,
    fingerprint: str | None,
    issues: list[dict[str, object]],
) -> bool:
    """Store the stitch outcome in one transaction; False when the call is gone."""
    now = utcnow()
    values: dict[str, object] = {
        "stitch_fingerprint": fingerprint,
        "recording_issues": issues or None,
        "updated_at": now,
    }
    if result is not None:
        values |= result
        values["stitch_count"] = schema.calls.c.stitch_count + 1
        values["stitched_at"] = now
    async with state.begin() as connection:
        outcome = await connection.execute(
            update(schema.calls).where(schema.calls.c.id == call_id).values(**values)
        )
    return bool(outcome.rowcount)


def _recheck_delay(job: ClaimedJob) -> float:
    return min(_RECHECK_FIRST * float(2 ** max(job.attempts - 1, 0)), _RECHECK_MAX)
