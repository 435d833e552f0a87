"""The call's sample clock, which both demo transports step on.

The caller's line is the clock: every 20 ms of caller audio (speech or silence) moves the
call on by 20 ms, and the bot's audio is played against it, chunk by chunk, only once the
caller's audio for the same stretch has gone through the pipeline. So both sides share one
sample timeline whatever the pace, and a recorder after the output transport sees them
interleaved as they would be on a real line.

``--speed`` sets how fast speech goes by. Silence while the caller waits for the bot always
passes in real time: that is the pipeline thinking (recognition, turn detection, the LLM,
Pipecat's wall-clock timers), and accelerating it would inflate every latency.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["PlayoutClock"]

# How far the caller may run ahead of what the output side has seen. One frame: any more
# and, at full speed, the caller's audio a recorder holds runs ahead of the bot's, so the
# end of each bot turn lands late on the recording's timeline.
DEFAULT_LOOKAHEAD_SECS = 0.02
# A clock that has fallen this far behind its schedule (a busy machine) starts afresh
# from now instead of sending a burst to catch up.
_MAX_LAG_SECS = 0.1


class PlayoutClock:
    """Paces the caller's audio and holds the bot's audio to the caller's timeline.

    Args:
        sample_rate: samples per second of the caller's audio (the timeline's unit).
        speed: how many times faster than real time speech goes by; ``None`` for as fast
            as the pipeline keeps up.
        lookahead_secs: how much caller audio may be in flight before the output side.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        speed: float | None = 1.0,
        lookahead_secs: float = DEFAULT_LOOKAHEAD_SECS,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None for as fast as possible)")
        self.sample_rate = sample_rate
        self.speed = speed
        self._lookahead = int(lookahead_secs * sample_rate)
        self._sent = 0
        self._heard = 0
        self._caller_closed = False
        self._due: float | None = None
        self._progress = asyncio.Event()

    @property
    def sent_samples(self) -> int:
        """Caller samples put on the line so far: the timeline's present."""
        return self._sent

    @property
    def heard_samples(self) -> int:
        """Caller samples that have reached the output side."""
        return self._heard

    @property
    def caller_closed(self) -> bool:
        return self._caller_closed

    def seconds(self, samples: int) -> float:
        return samples / self.sample_rate

    async def send(self, samples: int, *, waiting: bool) -> int:
        """Wait until the caller may send ``samples`` more; returns where they start.

        ``waiting`` is true while the line is quiet because the caller waits for the bot:
        those samples pass in real time. Everything else (either side talking, the
        caller's own pauses) passes at ``speed``.
        """
        await self._wait_for_pace(samples, fast=not waiting)
        while self._sent - self._heard > self._lookahead and not self._caller_closed:
            await self._next_progress()
        start = self._sent
        self._sent += samples
        self._notify()
        return start

    def heard(self, samples: int) -> None:
        """The output side saw ``samples`` of caller audio go by."""
        self._heard += samples
        self._notify()

    def close_caller(self) -> None:
        """The caller's line has closed: the bot's remaining audio plays on its own pace."""
        self._caller_closed = True
        self._notify()

    async def wait_sent(self, position: int) -> None:
        """Wait until the call has reached ``position`` on its timeline."""
        while self._sent < position:
            await self._next_progress()

    async def wait_heard(self, position: int) -> None:
        """Wait until the caller's audio up to ``position`` has reached the output side."""
        while self._heard < position and not self._caller_closed:
            await self._next_progress()

    async def play_alone(self, samples: int) -> None:
        """Pace bot audio once the caller's line has closed."""
        await self._wait_for_pace(samples, fast=True)

    async def _wait_for_pace(self, samples: int, *, fast: bool) -> None:
        pace = self.speed if fast else 1.0
        if pace is None:
            self._due = None
            await asyncio.sleep(0)
            return
        now = time.monotonic()
        if self._due is None or now - self._due > _MAX_LAG_SECS:
            self._due = now
        self._due += samples / self.sample_rate / pace
        delay = self._due - now
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)

    async def _next_progress(self) -> None:
        await self._progress.wait()

    def _notify(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        self._progress.set()
        self._progress = asyncio.Event()
