"""What a benchmark call runs with: no observer, a recorder alone (Pipecat's or this
project's), a do-nothing observer, ours, 0.2.5.

Imported in the worker process only, with the venv the variant needs: this project's
observer and Roark's pipecat-roark 0.2.5 are both the module ``pipecat_roark``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VARIANTS", "Observed", "observed"]

VARIANTS = ("none", "recorder", "own-recorder", "floor", "ours", "roark-0.2.5")
_API_KEY = "rk_bench_key"
_AGENT = "bench-agent"
_PROMPT = "You answer questions about orders."


@dataclass
class Observed:
    """The observers to attach, the recorder to place after the output transport, the
    call's id on the wire, and how to wait for what the observer sends after the call."""

    observers: list[Any] = field(default_factory=list)
    recorder: Any = None
    call_id: str | None = None
    delivered: Callable[[], Awaitable[None]] | None = None
    stats: Callable[[], dict[str, int]] | None = None
    """The observer's own delivery counters, where it has them."""
    drained: Callable[[], bool] | None = None
    """True once the observer has sent the audio recorded so far: at real-time pace it never
    falls behind, but a call played many times faster than that can."""


def observed(
    variant: str,
    *,
    call_id: str,
    base_url: str = "",
    metrics: bool = True,
    flush_timeout: float = 10.0,
    spool_dir: str = "",
) -> Observed:
    if variant == "ours":
        return _ours(call_id, base_url, metrics, flush_timeout, spool_dir)
    if variant == "roark-0.2.5":
        return _roark_025(base_url)
    if variant == "recorder":
        return Observed(recorder=_armed_recorder())
    if variant == "own-recorder":
        return Observed(recorder=_armed_own_recorder())
    if variant == "floor":
        return Observed([_do_nothing_observer()], _armed_recorder())
    if variant == "none":
        return Observed()
    raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")


def _ours(
    call_id: str, base_url: str, metrics: bool, flush_timeout: float, spool_dir: str
) -> Observed:
    from pipecat_roark import RoarkObserver

    observer = RoarkObserver(
        api_key=_API_KEY,
        agent_id=_AGENT,
        agent_prompt=_PROMPT,
        base_url=base_url,
        pipecat_call_id=call_id,
        flush_timeout=flush_timeout,
        spool_dir=spool_dir or None,
        metrics=metrics,
    )

    def drained() -> bool:
        lane = getattr(observer, "_lane", None)  # benchmark-only look inside
        return lane is None or not getattr(lane, "buffered_bytes", 0)

    return Observed(
        [observer],
        observer.audio_processor,
        observer.pipecat_call_id,
        stats=lambda: observer.delivery_stats,
        drained=drained,
    )


def _roark_025(base_url: str) -> Observed:
    from pipecat_roark import RoarkObserver, client

    # Its endpoints are module constants, read when an observer makes its client.
    client.WEBHOOK_URL = f"{base_url}/v1/integrations/pipecat"
    client.CHUNK_UPLOAD_URL_ENDPOINT = f"{base_url}/v1/integrations/pipecat/chunk-upload-url"
    observer = RoarkObserver(
        api_key=_API_KEY, agent_id=_AGENT, agent_prompt=_PROMPT, runner_args=None
    )

    async def delivered() -> None:
        # It posts call-ended from a task that the pipeline does not wait for.
        task = getattr(observer, "_call_ended_task", None)
        if task is not None:
            await asyncio.shield(task)

    def drained() -> bool:
        return not getattr(observer, "_inflight_uploads", ())

    return Observed(
        [observer],
        observer.audio_processor,
        observer.pipecat_call_id,
        delivered,
        drained=drained,
    )


def _armed_recorder() -> Any:
    """A stereo AudioBufferProcessor with ~256 KiB chunks that records from the StartFrame,
    as both observers' own recorders do, but with nothing listening to it."""
    from pipecat.frames.frames import StartFrame
    from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor

    class _Armed(AudioBufferProcessor):
        async def process_frame(self, frame: Any, direction: Any) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, StartFrame):
                await self.start_recording()

    return _Armed(num_channels=2, buffer_size=128 * 1024)


def _armed_own_recorder() -> Any:
    """This project's recorder (``CallAudioRecorder``, the observer's default), recording
    from the StartFrame with nothing listening: what ours costs before its observer does
    anything."""
    from pipecat.frames.frames import StartFrame

    from pipecat_roark.observer.recording import CallAudioRecorder

    class _Armed(CallAudioRecorder):
        async def process_frame(self, frame: Any, direction: Any) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, StartFrame):
                await self.start_recording()

    return _Armed()


def _do_nothing_observer() -> Any:
    """What Pipecat charges any observer: every hop and every processed frame is queued to
    it and handed over by its own task, whatever the observer then does."""
    from pipecat.observers.base_observer import BaseObserver

    class _DoNothing(BaseObserver):
        async def on_push_frame(self, data: Any) -> None:
            pass

    return _DoNothing()
