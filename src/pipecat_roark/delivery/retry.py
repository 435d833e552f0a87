"""When to try a failed request again: exponential backoff with full jitter, capped.

Thirty lines of our own rather than a retry library: the policy has to honour the
server's ``Retry-After``, stop at a per-request deadline and hand the request to the
spool instead of raising, which is most of what a library would need configuring for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


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
