"""Sending what waits in the spool: in the background of any observer, or from the CLI.

A pass takes the spool call by call, each under its call lock (``call_lock.py``), and sends
its records in protocol order. A record leaves the spool only after a 2xx (or a rejection
no retry can fix); a call whose records cannot be sent now keeps the rest in place, and a
refused API key stops the pass, so nothing is lost and no two processes send one call.
Calls another process holds are reported with their owner's age, and can be waited for:
if their owner dies, its lock goes with it and the pass takes them over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from loguru import logger

from .client import BackendClient, DeliveryError
from .retry import DeliveryOptions, DeliveryStats, FailureLog, attempt
from .spool import BusyCall, Lease, Spool, SpoolRecord

__all__ = ["ReplaySummary", "replay_in_background", "replay_spool"]

_BACKGROUND_DEADLINE = 10.0

Progress = Callable[[int], None]


@dataclass(slots=True)
class ReplaySummary:
    sent: int = 0
    still_failing: int = 0
    dropped: int = 0
    calls: int = 0
    auth_refused: bool = False
    errors: list[str] = field(default_factory=list)
    busy: list[BusyCall] = field(default_factory=list)
    """Calls another live owner still held when the pass ended."""
    orphans: dict[str, int] = field(default_factory=dict)
    """Records kept, not sent, per call: chunks of calls that never started."""

    @property
    def orphan_records(self) -> int:
        return sum(self.orphans.values())

    @property
    def busy_records(self) -> int:
        return sum(call.records for call in self.busy)

    @property
    def waiting(self) -> int:
        """Records still in the spool after the pass, for whatever reason."""
        return self.still_failing + self.busy_records + self.orphan_records


async def replay_spool(
    spool: Spool,
    client_for: Callable[[str], BackendClient],
    options: DeliveryOptions,
    *,
    base_url: str | None = None,
    deadline: float | None = None,
    progress: Progress | None = None,
    wait_for_busy: float = 0.0,
    send_orphans: bool = False,
) -> ReplaySummary:
    """One pass over the spool: every call this process can take, oldest first.

    ``client_for(record_base_url)`` gives the client to send a call's records with (the
    CLI can point every record at another backend); ``base_url`` limits the pass to
    records meant for that backend. Calls held by another owner are tried again at the end,
    waiting up to ``wait_for_busy`` seconds in all for their owners to let go. Chunks of a
    call that never started are kept and counted, not sent, unless ``send_orphans``.
    """
    summary = ReplaySummary()
    names = await asyncio.to_thread(spool.call_names)
    busy: list[str] = []
    for name in names:
        if summary.auth_refused:
            summary.still_failing += await asyncio.to_thread(spool.count_records, name)
            continue
        taken = await asyncio.to_thread(spool.lease, name, base_url=base_url)
        if isinstance(taken, BusyCall):
            busy.append(name)
        elif taken is not None:
            await _send_call(taken, client_for, options, deadline, summary, progress, send_orphans)
    until = time.monotonic() + wait_for_busy
    for name in busy:
        wait = max(0.0, until - time.monotonic())
        taken = await asyncio.to_thread(spool.lease, name, base_url=base_url, wait=wait)
        if isinstance(taken, BusyCall):
            summary.busy.append(taken)
        elif taken is not None and summary.auth_refused:
            summary.still_failing += len(taken.records)
            await asyncio.to_thread(taken.close)
        elif taken is not None:
            await _send_call(taken, client_for, options, deadline, summary, progress, send_orphans)
    return summary


async def _send_call(
    lease: Lease,
    client_for: Callable[[str], BackendClient],
    options: DeliveryOptions,
    deadline: float | None,
    summary: ReplaySummary,
    progress: Progress | None,
    send_orphans: bool = False,
) -> None:
    if lease.orphan and not send_orphans:
        summary.orphans[lease.call_id] = len(lease.records)
        await asyncio.to_thread(lease.close)
        return
    summary.calls += 1
    try:
        await _send_records(lease, client_for(lease.base_url), options, deadline, summary)
    finally:
        await asyncio.to_thread(lease.close)
    if progress is not None:
        progress(len(lease.records))


async def _send_records(
    lease: Lease,
    client: BackendClient,
    options: DeliveryOptions,
    deadline: float | None,
    summary: ReplaySummary,
) -> None:
    log = FailureLog(lease.call_id)
    stats = DeliveryStats()
    for index, (path, record) in enumerate(zip(lease.paths, lease.records, strict=True)):
        what = f"{record.kind} (from the spool)"
        outcome, error = await attempt(
            _sender_of(client, record), options, stats, _bind(log, what), deadline=deadline
        )
        if outcome == "sent":
            summary.sent += 1
            await asyncio.to_thread(lease.done, path)
            continue
        assert error is not None
        if outcome == "rejected":
            summary.dropped += 1
            summary.errors.append(f"{record.kind} of call {record.call_id}: {error}")
            log(error, what, "rejected")
            await asyncio.to_thread(lease.done, path)
            continue
        # Keep the call's order: this record and every later one stay for a later pass.
        summary.still_failing += len(lease.records) - index
        if error.is_auth:
            summary.auth_refused = True
            logger.warning(
                f"pipecat-roark: {lease.base_url} refused the API key while replaying the "
                "spool: set ROARK_API_KEY to a valid key and run `pipecat-roark replay`; "
                "nothing was dropped"
            )
        return


async def replay_in_background(
    spool: Spool,
    base_url: str,
    api_key: str,
    options: DeliveryOptions,
    stats: DeliveryStats,
    *,
    refusing_extensions: set[str] | None = None,
) -> None:
    """An observer's pass over what earlier calls left in the spool for its backend."""
    try:
        if not await asyncio.to_thread(spool.call_names):
            return
        # Its own session: the delivery's closes as soon as its last call is delivered.
        async with aiohttp.ClientSession() as session:
            client = BackendClient(
                session,
                base_url=base_url,
                api_key=api_key,
                timeout=options.request_timeout,
                refusing_extensions=refusing_extensions,
            )
            summary = await replay_spool(
                spool,
                lambda _: client,
                options,
                base_url=base_url,
                deadline=_BACKGROUND_DEADLINE,
            )
        if summary.sent or summary.still_failing:
            logger.info(
                f"pipecat-roark: replayed {summary.sent} spooled request(s) of "
                f"{summary.calls} call(s) to {base_url}; {summary.still_failing} still waiting"
            )
        stats.replayed += summary.sent
    except Exception:
        logger.exception("pipecat-roark: replaying the spool failed; the records stay there")


def _sender_of(client: BackendClient, record: SpoolRecord) -> Callable[[], Awaitable[None]]:
    if record.kind == "chunk":
        index = record.chunk_index
        assert index is not None
        return lambda: client.upload_chunk(record.call_id, index, record.body)
    body = record.json_body()
    if record.kind == "call-ended":
        return lambda: client.post_call_ended(body)
    return lambda: client.post_event(body)


def _bind(log: FailureLog, what: str) -> Callable[[DeliveryError, str], None]:
    return lambda exc, how: log(exc, what, how)
