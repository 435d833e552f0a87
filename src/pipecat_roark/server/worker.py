"""Background work of every replica: stitch jobs, the inactivity finaliser, the agents'
call counts (folded in), retention, and on SQLite the query planner's statistics.

Any replica may run these at once; the database decides who does what (job leases,
conditional updates), so adding replicas adds workers rather than duplicate work.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from .agent_counts import fold as fold_counts
from .calls import finalise_inactive
from .deletion import sweep_retention
from .jobs import claim_job
from .planner_statistics import refresh as refresh_statistics
from .state import ServerState
from .stitcher import run_stitch_job

__all__ = ["run_workers"]


async def run_workers(state: ServerState) -> None:
    """Run until ``state.stopping`` is set; finish the step under way first."""
    await asyncio.gather(_stitch_loop(state), _maintenance_loop(state))


async def _sleep(state: ServerState, seconds: float, *also: asyncio.Event) -> None:
    """Sleep, waking early when the server stops or any of ``also`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (state.stopping, *also)]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _stitch_loop(state: ServerState) -> None:
    while not state.stopping.is_set():
        try:
            async with state.begin() as connection:
                job = await claim_job(connection, state.replica_id, state.settings.stitch_lease)
        except Exception as exc:
            logger.warning("cannot claim stitch jobs: {!r}", exc)
            job = None
        if job is not None:
            await run_stitch_job(state, job)
            continue
        state.stitch_wanted.clear()
        await _sleep(state, state.settings.worker_poll_interval, state.stitch_wanted)


async def _maintenance_loop(state: ServerState) -> None:
    while not state.stopping.is_set():
        try:
            async with state.begin() as connection:
                finalised = await finalise_inactive(connection, state.settings.inactivity_timeout)
            if finalised:
                logger.info("finalised {} inactive calls", len(finalised))
                state.stitch_wanted.set()
            async with state.begin() as connection:
                await connection.run_sync(fold_counts)
            await sweep_retention(state)
            await refresh_statistics(state)
        except Exception as exc:
            logger.warning("maintenance failed, will retry: {!r}", exc)
        await _sleep(state, state.settings.maintenance_interval)
