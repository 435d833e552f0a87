"""How a request is tried: exponential backoff with full jitter, capped, within a deadline.

Thirty lines of our own rather than a retry library (stamina, tenacity): the policy has
to honour the server's ``Retry-After``, stop at a per-request deadline, tell a refused
key from a bad request, and hand what is left to the spool instead of raising; that is
most of what a library would need configuring for, and this way the observer adds no
dependency.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loguru import logger

from .client import DeliveryError

__all__ = ["Backoff", "DeliveryOptions", "DeliveryStats", "FailureLog", "Outcome", "attempt"]


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before try ``attempt + 1``; the server's ``Retry-After`` wins."""
        if retry_after is not None:
            return min(retry_after, self.cap * 4)
        ceiling = min(self.cap, self.initial * (2 ** min(attempt, 30)))
        return random.uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    request_timeout: float = 15.0
    """One try of one request."""
    deadline: float = 60.0
    """All tries of one request, before it goes to the spool."""
    max_parallel_uploads: int = 4
    queue_size: int = 1024
    max_buffered_bytes: int = 64 << 20
    """Audio held in memory waiting to be sent; beyond it, chunks go to the spool."""
    max_pending_requests: int = 4096
    """Requests of all calls held in memory waiting to be sent (each one at most one task);
    beyond it, requests go to the spool."""
    replay_interval: float = 60.0
    """Least time between two background passes over the spool."""
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


Outcome = str  # "sent" | "spool" | "rejected"


class FailureLog:
    """Logs each kind of failure once per call (or per pass), not once per try."""

    def __init__(self, call_id: str) -> None:
        self._call_id = call_id
        self._seen: set[str] = set()

    def __call__(self, exc: DeliveryError, what: str, outcome: str) -> None:
        key = f"{exc.failure_class}:{outcome}"
        if key in self._seen:
            return
        self._seen.add(key)
        message = f"pipecat-roark: {what} of call {self._call_id}: {exc}"
        if exc.is_auth and exc.endpoint != "upload":
            logger.warning(
                f"{message}. The backend refused the API key: set ROARK_API_KEY (or pass "
                "api_key=) to a valid key, then run `pipecat-roark replay`; the call waits "
                "in the spool until then."
            )
        elif outcome == "retry":
            logger.info(f"{message}; retrying")
        elif outcome == "spool":
            logger.warning(f"{message}; kept in the spool to be sent later")
        else:
            logger.warning(f"{message}; not retried (the backend rejected the request)")


async def attempt(
    send: Callable[[], Awaitable[None]],
    options: DeliveryOptions,
    stats: DeliveryStats,
    log: Callable[[DeliveryError, str], None],
    *,
    deadline: float | None = None,
) -> tuple[Outcome, DeliveryError | None]:
    """Send until 2xx, a failure retrying cannot fix, or the deadline."""
    stop = time.monotonic() + (options.deadline if deadline is None else deadline)
    tries = 0
    while True:
        try:
            await send()
        except DeliveryError as exc:
            if exc.is_auth and exc.endpoint != "upload":
                return "spool", exc
            if not exc.retryable:
                return "rejected", exc
            delay = options.backoff.delay(tries, exc.retry_after)
            if time.monotonic() + delay > stop:
                return "spool", exc
            log(exc, "retry")
            stats.retried += 1
            tries += 1
            await asyncio.sleep(delay)
        else:
            stats.sent += 1
            return "sent", None
