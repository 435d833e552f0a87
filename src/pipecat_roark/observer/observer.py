"""RoarkObserver: one observer in a Pipecat pipeline ships the whole call.

Glue only: frames go to the ``FrameRouter`` (the transcript), the recorder's tap feeds the
``CallTimeline`` (where everything is on the recording), chunks and lifecycle requests go
to the delivery lane, and ``build_call_ended`` makes the last request. Pipecat runs every
observer hook from the observer's own task and an exception there would silently end the
observer for the rest of the call, so every hook is wrapped, and none of them waits for
anything.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor

from ..delivery.delivery import DEFAULT_FLUSH_TIMEOUT, Delivery, default_delivery
from ..delivery.lanes import CallLane
from ..delivery.retry import DeliveryOptions, DeliveryStats
from . import _pipecat_compat as compat
from .call_ended import CallEnd, build_call_ended, build_call_started
from .call_id import resolve_call_id
from .config import resolve_api_key, resolve_base_url
from .latency import ReplyLatency
from .recording import CallAudioRecorder, RecorderTap, close_recording
from .routing import FrameRouter
from .speech import SpeechActivity
from .timeline import CallTimeline, Moment, iso_utc

__all__ = ["RoarkObserver"]

# The recording's last chunk is handed over by a handler task; one that hangs is abandoned.
_TAIL_CHUNK_WAIT_SECS = 10.0


class RoarkObserver(BaseObserver):
    """Captures a Pipecat call (lifecycle, transcript, tool calls, stereo recording) for Roark.

    Pass it to the task, ``PipelineTask(pipeline, observers=[observer])``, and place
    ``observer.audio_processor`` right after ``transport.output()``. Configuration errors
    raise here, before the call starts; once the pipeline runs nothing raises.

    Args:
        api_key: Roark API key; defaults to ``ROARK_API_KEY``.
        agent_id: Your stable id for the agent; the backend registers it on first sight.
        agent_name: Display name of the agent.
        agent_prompt: System prompt; each distinct prompt is kept as a revision.
        audio_buffer_processor: Your own ``AudioBufferProcessor``, used as given (armed at
            the start if it is not recording). Without it the observer makes one: stereo,
            ~256 KiB chunks, at the pipeline's output sample rate.
        pipecat_call_id: The call's id; defaults to the runner's id, then a fresh UUID.
        base_url: Backend URL; defaults to ``ROARK_BASE_URL``, then Roark's hosted API.
        runner_args: The runner's arguments (SmallWebRTC ``pc_id``, Pipecat Cloud
            ``session_id``), used for the call id when ``pipecat_call_id`` is not given.
        flush_timeout: Seconds the end of a call waits for its delivery; what is not
            delivered by then is kept in the spool and sent later.
        spool_dir: Where undeliverable requests are kept; defaults to ``ROARK_SPOOL_DIR``,
            then ``pipecat-roark/spool`` in the user data directory.
        metrics: Send call-ended's ``metrics``: response latency, interruptions, talk time
            and the services' own metrics (README, "Metrics").
        delivery: The ``Delivery`` that sends this call; observers given the same one share
            its HTTP session, bounds and spool. Defaults to one shared delivery built from
            the documented defaults.
        delivery_options: Options for a delivery of this observer's own (retry budget,
            timeouts, memory bounds), instead of ``delivery``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        agent_id: str,
        agent_name: str | None = None,
        agent_prompt: str | None = None,
        audio_buffer_processor: AudioBufferProcessor | None = None,
        pipecat_call_id: str | None = None,
        base_url: str | None = None,
        runner_args: object | None = None,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        spool_dir: str | os.PathLike[str] | None = None,
        metrics: bool = True,
        delivery: Delivery | None = None,
        delivery_options: DeliveryOptions | None = None,
        **kwargs: Any,
    ) -> None:
        # The recorder's tap places every frame the call needs on the recording, so the
        # observer needs each frame once: on Pipecat 1.x that spares it (and Pipecat) a
        # queued hop per processor per frame. 0.0.x ignores the argument and sends all.
        super().__init__(observe_every_push=False, **kwargs)
        self._api_key = resolve_api_key(api_key)
        self._base_url = resolve_base_url(base_url)
        if not isinstance(agent_id, str) or not agent_id.strip():
            raise ValueError("agent_id must be a non-empty string")
        if flush_timeout < 0:
            raise ValueError("flush_timeout must be >= 0 seconds")
        self._agent_id = agent_id
        self._agent_name = agent_name
        self._agent_prompt = agent_prompt
        self._call_id = resolve_call_id(pipecat_call_id, runner_args)
        self._flush_timeout = flush_timeout
        if delivery is not None and delivery_options is not None:
            raise ValueError("pass delivery= or delivery_options=, not both")
        if delivery is None:
            delivery = Delivery(delivery_options) if delivery_options else default_delivery()
        self._delivery = delivery
        self._spool = delivery.spool(spool_dir)

        self.audio_processor: AudioBufferProcessor = audio_buffer_processor or CallAudioRecorder()
        self._timeline = CallTimeline()
        self._tap = RecorderTap(
            self.audio_processor,
            self._timeline,
            on_start=self._on_recorder_started,
            on_end_frame=self._on_end_at_recorder,
            on_cleanup=self._on_recorder_cleanup,
        )
        self.audio_processor.add_event_handler("on_audio_data", self._on_audio_data)
        self._router = FrameRouter(metrics=metrics, on_start=self._on_start)
        self._speech = SpeechActivity()
        self._metrics_on = metrics
        self._latency = ReplyLatency() if metrics else None
        self._latency_backlog: list[FramePushed] = []
        self._lane: CallLane | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._pipeline_started = False
        self._attached: bool | None = None
        self._started_wall: float | None = None
        self._chunks = 0
        self._recording_format: tuple[int, int] | None = None
        self._recording_closed = False
        self._finish_task: asyncio.Future[None] | None = None
        self._drained_hops = 0
        self._failures_logged: set[str] = set()

    # -- public ---------------------------------------------------------------------------

    @property
    def pipecat_call_id(self) -> str:
        """The call's id on every request; pass it as ``PipelineTask(conversation_id=...)``
        to correlate the call with Pipecat's OpenTelemetry traces."""
        return self._call_id

    @property
    def delivery(self) -> Delivery:
        """The ``Delivery`` that sends this call."""
        return self._delivery

    @property
    def latency_observer(self) -> Any:
        """The Pipecat ``UserBotLatencyObserver`` that measures this call's replies (None
        with ``metrics=False``); its ``on_latency_breakdown`` event reports each reply."""
        return self._latency.latency_observer if self._latency else None

    @property
    def delivery_stats(self) -> dict[str, int]:
        """Requests of this call sent, retried, spooled, replayed (from earlier calls),
        dropped and failed so far."""
        return (self._lane.stats if self._lane else DeliveryStats()).as_dict()

    async def aflush(self, *, reason: str = "client-disconnected") -> None:
        """End the call now and send call-ended (once; later calls and an EndFrame add nothing).

        Call it where a transport can go away without an EndFrame reaching the pipeline,
        e.g. from SmallWebRTC's ``on_client_disconnected``. An End or Cancel frame already
        on its way keeps its own reason. Safe to call concurrently; returns when call-ended
        is delivered or the flush timeout has passed.
        """
        await self._finish(reason)

    # -- Pipecat hooks --------------------------------------------------------------------

    async def on_pipeline_started(self) -> None:
        try:
            self._pipeline_started = True
            self._send_call_started()
            if self._latency is not None:
                await self._latency.on_pipeline_started()
        except Exception as exc:
            self._log_failure("pipeline-started", exc)

    async def on_push_frame(self, data: FramePushed) -> None:
        try:
            self._router.handle(data)
            if self._latency is not None:
                await self._latency.on_push_frame(data)
        except Exception as exc:
            self._log_failure(type(data.frame).__name__, exc)

    async def cleanup(self) -> None:
        """Pipecat always awaits this at the end of a pipeline: the call is finished here."""
        try:
            await super().cleanup()
        except Exception as exc:
            self._log_failure("cleanup", exc)
        await self._finish_quietly("unknown")

    # -- frames and the recorder ----------------------------------------------------------

    def _on_start(self, data: FramePushed) -> None:
        if self._queue is None:
            # Queue only what the router handles (audio, most of a call's frames, is not).
            self._queue = compat.observer_queue(self, data.source)
            if self._queue is not None:
                compat.keep_out_of_queue(
                    self._queue,
                    events=(FrameProcessed,),
                    pushes=FramePushed,
                    wanted={},
                    judge=self._wants,
                )
        self._pipeline_started = True

    def _wants(self, frame_class: type) -> object:
        verdict = self._latency.wants(frame_class) if self._latency is not None else False
        if not isinstance(verdict, bool):
            return verdict  # a gate, asked at each push (never tested here: that opens it)
        return verdict or self._router.handler_for(frame_class) is not None

    def _on_recorder_started(self, recorder: AudioBufferProcessor) -> None:
        observers = compat.task_observers(recorder)
        self._attached = observers is None or self in observers
        if not self._attached:
            logger.error(
                "pipecat-roark: the pipeline started but RoarkObserver is not attached to its "
                "task, so this call is sent with its recording and no transcript. Pass it to "
                "the task: PipelineTask(pipeline, observers=[observer]) (Pipecat 1.x ignores "
                "PipelineParams(observers=...))."
            )
            self._send_call_started()

    def _on_end_at_recorder(self, frame: Frame) -> None:
        try:
            self._router.on_end_frame(frame)
        except Exception as exc:
            self._log_failure("end-frame", exc)

    async def _on_recorder_cleanup(self) -> None:
        # Without its observer, the recorder is the only part of the call that ends it.
        if self._attached is False:
            await self._finish_quietly("unknown")

    async def _on_audio_data(
        self, processor: object, audio: bytes, sample_rate: int, num_channels: int
    ) -> None:
        try:
            if self._recording_closed or not audio:
                return
            index = self._chunks
            self._chunks += 1
            self._recording_format = (sample_rate, num_channels)
            self._ensure_lane().chunk(index, bytes(audio))
            if num_channels == 2:
                self._speech.feed(audio, sample_rate, num_channels)
        except Exception as exc:
            self._log_failure("audio", exc)

    # -- the call's requests --------------------------------------------------------------

    def _ensure_lane(self) -> CallLane:
        if self._lane is None:
            self._lane = self._delivery.open_lane(
                self._call_id, base_url=self._base_url, api_key=self._api_key, spool=self._spool
            )
        return self._lane

    def _send_call_started(self) -> None:
        if self._started_wall is not None or self._finish_task is not None:
            return
        self._started_wall = time.time()
        self._ensure_lane().call_started(
            build_call_started(
                self._call_id,
                self._started_wall,
                agent_id=self._agent_id,
                agent_name=self._agent_name,
                agent_prompt=self._agent_prompt,
            )
        )

    async def _finish_quietly(self, reason: str) -> None:
        try:
            await self._finish(reason)
        except asyncio.CancelledError:
            # The host cancelled the pipeline while the call was being finished. The
            # finishing goes on in its own task; a later aflush() waits for it. Pipecat
            # 0.0.x never returns from run() if an observer's cleanup re-raises this.
            logger.debug(f"pipecat-roark: call {self._call_id} finishes in the background")

    async def _finish(self, reason: str) -> None:
        try:
            if self._finish_task is None:
                self._drain_queue()
                if self._pipeline_started or self._attached is False:
                    self._send_call_started()
                # The first end signal decides: an End or Cancel frame already seen keeps
                # its reason however the call is then finished.
                reason = self._router.end_reason or reason
                self._finish_task = asyncio.ensure_future(self._finish_call(reason))
            await asyncio.shield(self._finish_task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log_failure("finish", exc)

    def _drain_queue(self) -> None:
        """Handle the hops Pipecat queued for this observer but will never deliver."""
        if self._queue is None:
            return
        hops, started = compat.drain_queue(self._queue, FramePushed)
        self._drained_hops += len(hops)
        self._latency_backlog.extend(hops)
        self._pipeline_started = self._pipeline_started or started
        for hop in hops:
            try:
                self._router.handle(hop)
            except Exception as exc:
                self._log_failure(type(hop.frame).__name__, exc)
        if hops:
            logger.debug(f"pipecat-roark: handled {len(hops)} hops Pipecat left queued")

    async def _finish_call(self, reason: str) -> None:
        now = time.time()
        transcript = self._router.transcript
        transcript.close(Moment(None, now, at_end=True))
        await close_recording(
            self.audio_processor, min(_TAIL_CHUNK_WAIT_SECS, max(self._flush_timeout, 1.0))
        )
        self._recording_closed = True
        await self._settle_latency()
        if self._recording_format is None and self._pipeline_started and not self._tap.started:
            logger.warning(
                "pipecat-roark: no recording: observer.audio_processor is not in the "
                "pipeline; place it right after transport.output()"
            )
        end = CallEnd(
            call_id=self._call_id,
            reason=reason,
            ended_wall=now,
            started_at=iso_utc(self._started_wall) if self._started_wall else None,
            started_wall=self._started_wall,
            recording_format=self._recording_format,
            metrics=self._metrics_on,
            attached=self._attached is not False,
        )
        body = build_call_ended(
            end, transcript, self._timeline, self._speech, self._router.service_metrics
        )
        if self._latency is not None and "metrics" in body:
            turns = [m for m in body["metrics"] if m["kind"] == "turn_latency"]
            body["metrics"] += self._latency.metrics(
                self._timeline, turns, self._started_wall or now
            )
        self._timeline.forget()
        lane = self._ensure_lane()
        lane.call_ended(body)
        delivered = await lane.flush(self._flush_timeout)
        summary = (
            f"pipecat-roark: call {self._call_id} ended ({reason}): "
            f"{len(body.get('transcript', []))} turns, {len(body.get('toolCalls', []))} tool "
            f"records, {self._chunks} chunks; delivery {lane.stats.as_dict()}"
        )
        if delivered:
            logger.info(summary)
        else:
            logger.warning(
                f"{summary}; what was not delivered is kept in the spool at "
                f"{self._spool.directory} and will be sent later"
            )

    async def _settle_latency(self) -> None:
        """Feed the latency measure the hops Pipecat left queued, and wait for its last
        breakdowns."""
        backlog, self._latency_backlog = self._latency_backlog, []
        if self._latency is None:
            return
        try:
            for item in backlog:
                await self._latency.on_push_frame(item)
            await self._latency.settle()
        except Exception as exc:
            self._log_failure("latency", exc)

    def _log_failure(self, where: str, exc: BaseException) -> None:
        key = f"{where}:{type(exc).__name__}"
        if key in self._failures_logged:
            return
        self._failures_logged.add(key)
        logger.opt(exception=exc).warning(
            f"pipecat-roark: observer failed on {where} in call {self._call_id}; "
            "the call goes on and this is logged once"
        )
