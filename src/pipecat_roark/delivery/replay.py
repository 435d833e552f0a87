"""Sending what waits in the spool: in the background of any observer, or from the CLI.

Records are taken call by call (leased by rename, see ``spool.py``) and sent in protocol
order. A record leaves the spool only after a 2xx (or a rejection no retry can fix); a
call whose records cannot be sent now is given back whole, and a refused API key stops
the pass, so nothing is lost and nothing is sent twice at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from loguru import logger

from .client import BackendClient, DeliveryError
from .retry import DeliveryOptions, DeliveryStats, FailureLog, attempt
from .spool import Lease, Spool, SpoolRecord

if TYPE_CHECKING:
    from .sender import Sender

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


async def replay_spool(
    spool: Spool,
    client_for: Callable[[str], BackendClient],
    options: DeliveryOptions,
    *,
    base_url: str | None = None,
    deadline: float | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """One pass over the spool: every call this process can lease, in order.

    ``client_for(record_base_url)`` gives the client to send a call's records with (the
    CLI can point every record at another backend); ``base_url`` limits the pass to
    records meant for that backend.
    """
    summary = ReplaySummary()
    leases = await asyncio.to_thread(lambda: list(spool.lease_calls(base_url)))
    for lease in leases:
        if summary.auth_refused:
            await asyncio.to_thread(_release_all, spool, lease, 0)
            summary.still_failing += len(lease.records)
            continue
        summary.calls += 1
        await _send_call(spool, lease, client_for(lease.base_url), options, deadline, summary)
        if progress is not None:
            progress(len(lease.records))
    return summary


async def _send_call(
    spool: Spool,
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
            await asyncio.to_thread(spool.done, path)
            continue
        assert error is not None
        if outcome == "rejected":
            summary.dropped += 1
            summary.errors.append(f"{record.kind} of call {record.call_id}: {error}")
            log(error, what, "rejected")
            await asyncio.to_thread(spool.done, path)
            continue
        # Keep the call's order: give back this record and every later one.
        summary.still_failing += len(lease.records) - index
        await asyncio.to_thread(_release_all, spool, lease, index)
        if error.is_auth:
            summary.auth_refused = True
            logger.warning(
                f"pipecat-roark: {lease.base_url} refused the API key while replaying the "
                "spool: set ROARK_API_KEY to a valid key and run `pipecat-roark replay`; "
                "nothing was dropped"
            )
        return


async def replay_in_background(
    sender: Sender, spool: Spool, base_url: str, api_key: str, stats: DeliveryStats
) -> None:
    """An observer's pass over what earlier calls left in the spool for its backend."""
    try:
        if not await asyncio.to_thread(spool.pending, base_url):
            return
        # Its own session: the sender's closes as soon as its last call is delivered.
        async with aiohttp.ClientSession() as session:
            client = BackendClient(
                session, base_url=base_url, api_key=api_key, timeout=sender.options.request_timeout
            )
            summary = await replay_spool(
                spool,
                lambda _: client,
                sender.options,
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


def _release_all(spool: Spool, lease: Lease, start: int) -> None:
    for path in lease.paths[start:]:
        spool.release(path)
