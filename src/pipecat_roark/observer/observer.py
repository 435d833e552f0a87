"""RoarkObserver: one observer in a Pipecat pipeline ships the whole call.

The observer classifies frames and hands them to a ``CallRecorder``; the recording comes
from an ``AudioBufferProcessor`` placed after ``transport.output()``; requests go to a
background sender. Pipecat runs every observer hook from the observer's own task and an
exception there would silently end the observer for the rest of the call, so every hook
is wrapped, and none of them waits for anything.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    MetricsFrame,
    OutputAudioRawFrame,
    StartFrame,
    StopFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport

from ..delivery.sender import DEFAULT_FLUSH_TIMEOUT, CallLane, DeliveryStats, Sender
from ..delivery.spool import Spool, default_spool_dir
from ..wire import CALL_ENDED, CALL_STARTED, DEFAULT_BASE_URL
from . import _pipecat_compat as compat
from .call_id import resolve_call_id
from .metrics import Interruption, call_metrics, service_metric
from .recording import CallAudioRecorder
from .speech import SpeechActivity, Timeline, snap_to_speech
from .transcript import CallRecorder, Moment, Resolved, iso_utc

__all__ = ["RoarkObserver"]

_Handler = Callable[[FramePushed], None]
_UPSTREAM = FrameDirection.UPSTREAM
_SEEN_CAPACITY = 4096
_MAX_SERVICE_METRICS = 20_000
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
        audio_buffer_processor: Your own ``AudioBufferProcessor``, used as given (never
            re-armed if it is already recording). Without it the observer makes one:
            stereo, ~256 KiB chunks, at the pipeline's output sample rate.
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
        **kwargs: Any,
    ) -> None:
        if audio_buffer_processor is None:
            audio_buffer_processor = CallAudioRecorder(on_start=self._on_recorder_started)
        own = (
            audio_buffer_processor
            if isinstance(audio_buffer_processor, CallAudioRecorder)
            else None
        )
        # With its own recorder placing every edge and telling which words played, the
        # observer needs each frame once: on Pipecat 1.x that spares it (and Pipecat) a
        # queued hop per processor per frame. 0.0.x ignores the argument and sends all.
        super().__init__(observe_every_push=own is None, **kwargs)
        self._api_key = _resolve_api_key(api_key)
        self._base_url = _resolve_base_url(base_url)
        if not isinstance(agent_id, str) or not agent_id.strip():
            raise ValueError("agent_id must be a non-empty string")
        if flush_timeout < 0:
            raise ValueError("flush_timeout must be >= 0 seconds")
        self._agent_id = agent_id
        self._agent_name = agent_name
        self._agent_prompt = agent_prompt
        self._call_id = resolve_call_id(pipecat_call_id, runner_args)
        self._flush_timeout = flush_timeout
        self._spool = Spool(Path(spool_dir) if spool_dir is not None else default_spool_dir())

        self.audio_processor: AudioBufferProcessor = audio_buffer_processor
        self._own_recorder = own
        audio_buffer_processor.add_event_handler("on_audio_data", self._on_audio_data)

        self._recorder = CallRecorder()
        self._speech = SpeechActivity()
        self._metrics_on = metrics
        self._service_metrics: list[tuple[dict[str, Any], Moment]] = []
        self._handlers: dict[type, _Handler | None] = {}
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._played_ids: set[int] = set()
        self._played_order: deque[int] = deque()
        self._lane: CallLane | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._queue_looked_up = False
        self._pipeline_started = False
        self._call_started_at: str | None = None
        self._end_reason: str | None = None
        self._anchor_clock_ns: int | None = None
        self._anchor_wall: float | None = None
        self._chunks = 0
        self._recorded_bytes = 0
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
    def delivery_stats(self) -> dict[str, int]:
        """Requests of this call sent, retried, spooled, replayed (from earlier calls),
        dropped and failed so far."""
        return (self._lane.stats if self._lane else DeliveryStats()).as_dict()

    async def aflush(self, *, reason: str = "client-disconnected") -> None:
        """End the call now and send call-ended (once; later calls and an EndFrame add nothing).

        Call it where a transport can go away without an EndFrame reaching the pipeline,
        e.g. from SmallWebRTC's ``on_client_disconnected``. Safe to call concurrently;
        returns when call-ended is delivered or the flush timeout has passed.
        """
        await self._finish(reason)

    # -- Pipecat hooks --------------------------------------------------------------------

    async def on_pipeline_started(self) -> None:
        try:
            if self._own_recorder is None and compat.is_recording(self.audio_processor) is False:
                await self.audio_processor.start_recording()
            self._send_call_started()
        except Exception as exc:
            self._log_failure("pipeline-started", exc)

    async def on_push_frame(self, data: FramePushed) -> None:
        try:
            self._handle(data)
        except Exception as exc:
            self._log_failure(type(data.frame).__name__, exc)

    async def cleanup(self) -> None:
        """Pipecat always awaits this at the end of a pipeline: the call is finished here."""
        try:
            await super().cleanup()
        except Exception as exc:
            self._log_failure("cleanup", exc)
        try:
            await self._finish(self._end_reason or "unknown")
        except asyncio.CancelledError:
            # The host cancelled the pipeline while the call was being finished. The
            # finishing goes on in its own task; a later aflush() waits for it. Pipecat
            # 0.0.x never returns from run() if an observer's cleanup re-raises this.
            logger.debug(f"pipecat-roark: call {self._call_id} finishes in the background")

    # -- frames ---------------------------------------------------------------------------

    def _handle(self, data: FramePushed) -> None:
        frame_class = data.frame.__class__
        try:
            handler = self._handlers[frame_class]
        except KeyError:
            handler = self._handlers[frame_class] = self._handler_for(frame_class)
        if handler is not None:
            handler(data)

    def _handler_for(self, frame_class: type) -> _Handler | None:
        """Which method handles a frame class; looked up once per class, then cached."""
        table: tuple[tuple[type | tuple[type, ...], _Handler], ...] = (
            (
                (InputAudioRawFrame, OutputAudioRawFrame),
                self._on_audio if self._own_recorder is None else self._ignore,
            ),
            (StartFrame, self._on_start),
            (TTSTextFrame, self._on_tts_text),
            (TranscriptionFrame, self._on_transcription),
            (UserStartedSpeakingFrame, self._edge(self._recorder.user_started)),
            (UserStoppedSpeakingFrame, self._edge(self._recorder.user_stopped)),
            (BotStartedSpeakingFrame, self._edge(self._recorder.bot_started)),
            (BotStoppedSpeakingFrame, self._edge(self._recorder.bot_stopped)),
            (InterruptionFrame, self._edge(self._recorder.interrupted)),
            (VADUserStartedSpeakingFrame, self._vad_edge(self._recorder.vad_started, "start_secs")),
            (VADUserStoppedSpeakingFrame, self._vad_edge(self._recorder.vad_stopped, "stop_secs")),
            (FunctionCallInProgressFrame, self._on_tool_call),
            (FunctionCallResultFrame, self._on_tool_result),
            ((EndFrame, StopFrame, CancelFrame), self._on_end_frame),
            (MetricsFrame, self._on_metrics if self._metrics_on else self._ignore),
        )
        for classes, handler in table:
            if issubclass(frame_class, classes):
                return None if handler == self._ignore else handler
        return None

    def _ignore(self, data: FramePushed) -> None:
        pass

    def _first_sight(self, frame: Frame) -> bool:
        """True the first time a frame (or its broadcast sibling) is seen, across all hops.

        Edges and tool calls are taken from their downstream copy (handlers skip the
        upstream one): only that copy passes the recorder, which places it on the
        recording, and Pipecat does not always link the two copies of a broadcast."""
        seen = self._seen
        if frame.id in seen:
            return False
        _remember(seen, self._seen_order, frame.id)
        sibling = getattr(frame, "broadcast_sibling_id", None)
        return sibling is None or sibling not in seen

    def _moment(self, data: FramePushed) -> Moment:
        frame = data.frame
        return Moment(
            data.timestamp, time.time(), frame.id, getattr(frame, "broadcast_sibling_id", None)
        )

    def _edge(self, record: Callable[[Moment], None]) -> _Handler:
        def handle(data: FramePushed) -> None:
            if data.direction is not _UPSTREAM and self._first_sight(data.frame):
                record(self._moment(data))

        return handle

    def _vad_edge(self, record: Callable[[Moment], None], lag_field: str) -> _Handler:
        """A VAD reports speech start_secs after it began and stop_secs after it ended."""

        def handle(data: FramePushed) -> None:
            frame = data.frame
            if data.direction is not _UPSTREAM and self._first_sight(frame):
                lag = getattr(frame, lag_field, 0.0)
                lead = int(lag * 1000) if isinstance(lag, (int, float)) and lag > 0 else 0
                record(replace(self._moment(data), lead_ms=lead))

        return handle

    def _on_audio(self, data: FramePushed) -> None:
        # Sample 0 of the recording is the first audio frame that reaches the recorder.
        if data.destination is self.audio_processor and self._anchor_clock_ns is None:
            self._anchor_clock_ns = data.timestamp
            self._anchor_wall = time.time()
            for frame_class in list(self._handlers):
                if issubclass(frame_class, (InputAudioRawFrame, OutputAudioRawFrame)):
                    self._handlers[frame_class] = None

    def _on_start(self, data: FramePushed) -> None:
        if not self._queue_looked_up:
            self._queue_looked_up = True
            self._queue = compat.observer_queue(self, data.source)
            if self._queue is not None:
                self._keep_unwanted_events_out(self._queue)
        self._pipeline_started = True
        # Words are recorded as the output transport releases them, once their audio plays.
        if isinstance(data.source, BaseOutputTransport):
            self._recorder.words_are_played = True

    def _keep_unwanted_events_out(self, queue: asyncio.Queue[Any]) -> None:
        """Queue only what this observer handles: never a ``FrameProcessed``, and no push of
        a frame class without a handler (with its own recorder, which places the call on the
        recording, that includes audio: most of a call's frames). The handler table decides,
        once per class, for the queue as for ``_handle``."""
        compat.keep_out_of_queue(
            queue,
            events=(FrameProcessed,),
            pushes=FramePushed,
            wanted=self._handlers,
            judge=self._handler_for,
        )

    def _on_tts_text(self, data: FramePushed) -> None:
        frame: Any = data.frame  # the handler table picked it by class
        if isinstance(data.source, BaseOutputTransport):
            self._recorder.words_are_played = True
            if frame.id in self._played_ids:
                return
            _remember(self._played_ids, self._played_order, frame.id)
            played = True
        elif self._first_sight(frame):
            played = False
        else:
            return
        spaced = bool(getattr(frame, "includes_inter_frame_spaces", False))
        self._recorder.assistant_text(
            frame.text or "", spaced, self._moment(data), played=played, frame_id=frame.id
        )

    def _on_transcription(self, data: FramePushed) -> None:
        frame: Any = data.frame  # the handler table picked it by class
        if not self._first_sight(frame):
            return
        language = getattr(frame, "language", None)
        self._recorder.user_text(
            frame.text or "",
            bool(getattr(frame, "includes_inter_frame_spaces", False)),
            self._moment(data),
            user_id=getattr(frame, "user_id", None) or None,
            language=str(language) if language else None,
        )

    def _on_tool_call(self, data: FramePushed) -> None:
        frame: Any = data.frame  # the handler table picked it by class
        if data.direction is not _UPSTREAM and self._first_sight(frame):
            self._recorder.tool_call(
                str(frame.tool_call_id or ""),
                str(frame.function_name or ""),
                _arguments_json(frame.arguments),
                self._moment(data),
            )

    def _on_tool_result(self, data: FramePushed) -> None:
        frame: Any = data.frame  # the handler table picked it by class
        if data.direction is not _UPSTREAM and self._first_sight(frame):
            self._recorder.tool_result(
                str(frame.tool_call_id or ""), _result_text(frame.result), self._moment(data)
            )

    def _on_metrics(self, data: FramePushed) -> None:
        frame: Any = data.frame
        if not self._first_sight(frame) or len(self._service_metrics) >= _MAX_SERVICE_METRICS:
            return
        moment = self._moment(data)
        for item in frame.data or ():
            entry = service_metric(item)
            if entry is not None:
                self._service_metrics.append((entry, moment))

    def _on_end_frame(self, data: FramePushed) -> None:
        if self._end_reason is not None:
            return
        frame = data.frame
        if isinstance(frame, StopFrame):
            self._end_reason = "unknown"
        else:
            reason = getattr(frame, "reason", None)
            self._end_reason = str(reason) if reason else "agent-ended"

    # -- recording ------------------------------------------------------------------------

    def _on_recorder_started(self, recorder: CallAudioRecorder) -> None:
        observers = compat.task_observers(recorder)
        if observers is not None and self not in observers:
            logger.error(
                "pipecat-roark: the pipeline started but RoarkObserver is not attached to its "
                "task, so this call will not be recorded. Pass it to the task: "
                "PipelineTask(pipeline, observers=[observer]) (Pipecat 1.x ignores "
                "PipelineParams(observers=...))."
            )

    async def _on_audio_data(
        self, processor: object, audio: bytes, sample_rate: int, num_channels: int
    ) -> None:
        try:
            if self._recording_closed or not audio:
                return
            index = self._chunks
            self._chunks += 1
            self._recording_format = (sample_rate, num_channels)
            self._recorded_bytes += len(audio)
            self._ensure_lane().chunk(index, bytes(audio))
            if num_channels == 2:
                self._speech.feed(audio, sample_rate, num_channels)
        except Exception as exc:
            self._log_failure("audio", exc)

    async def _close_recording(self) -> None:
        """Take the recording's last chunk, however the call ended."""
        processor = self.audio_processor
        try:
            await processor.stop_recording()
        except Exception as exc:
            self._log_failure("stop-recording", exc)
        pending = compat.handler_tasks(processor, "on_audio_data")
        if pending:
            wait = min(_TAIL_CHUNK_WAIT_SECS, max(self._flush_timeout, 1.0))
            # asyncio.wait leaves a hung handler running; wait_for would cancel it.
            _, hung = await asyncio.wait(pending, timeout=wait)
            if hung:
                logger.warning(
                    f"pipecat-roark: an on_audio_data handler is still running after {wait:.0f}s; "
                    f"call {self._call_id} ends without waiting for it"
                )
        self._recording_closed = True

    # -- the call's requests --------------------------------------------------------------

    def _ensure_lane(self) -> CallLane:
        if self._lane is None:
            self._lane = Sender.for_running_loop().open_lane(
                self._call_id, base_url=self._base_url, api_key=self._api_key, spool=self._spool
            )
        return self._lane

    def _send_call_started(self) -> None:
        if self._call_started_at is not None or self._finish_task is not None:
            return
        self._call_started_at = iso_utc(time.time())
        body: dict[str, Any] = {
            "event": CALL_STARTED,
            "pipecatCallId": self._call_id,
            "eventTimestamp": self._call_started_at,
            "agentId": self._agent_id,
        }
        if self._agent_name:
            body["agentName"] = self._agent_name
        if self._agent_prompt:
            body["agentPrompt"] = self._agent_prompt
        self._ensure_lane().call_started(body)

    async def _finish(self, reason: str) -> None:
        try:
            if self._finish_task is None:
                self._drain_queue()
                if self._drained_hops:
                    logger.debug(
                        f"pipecat-roark: handled {self._drained_hops} hops Pipecat left queued"
                    )
                if self._pipeline_started:
                    self._send_call_started()
                self._finish_task = asyncio.ensure_future(self._finish_call(reason))
            await asyncio.shield(self._finish_task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log_failure("finish", exc)

    def _drain_queue(self) -> None:
        """Handle the hops Pipecat queued for this observer but will never deliver."""
        queue = self._queue
        while queue is not None and not queue.empty():
            item = queue.get_nowait()
            self._drained_hops += 1
            if isinstance(item, FramePushed):
                try:
                    self._handle(item)
                except Exception as exc:
                    self._log_failure(type(item.frame).__name__, exc)
            elif type(item).__name__ == "_PipelineStartedSignal":
                self._pipeline_started = True

    async def _finish_call(self, reason: str) -> None:
        now = Moment(None, time.time(), at_end=True)
        self._recorder.close(now)
        await self._close_recording()
        body = self._call_ended_body(reason, now.wall)
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

    def _call_ended_body(self, reason: str, ended: float) -> dict[str, Any]:
        ended_at = iso_utc(ended)
        body: dict[str, Any] = {
            "event": CALL_ENDED,
            "pipecatCallId": self._call_id,
            "eventTimestamp": ended_at,
            "callStartedAt": self._call_started_at,
            "callEndedAt": ended_at,
            "callEndedReason": reason,
        }
        turns = self._snapped(self._recorder.transcript_with_releases(self._resolve, self._placed))
        transcript = [entry for entry, _ in turns]
        tools = self._recorder.tool_records(self._resolve)
        if transcript:
            body["agentSpokeFirst"] = transcript[0]["role"] == "assistant"
        if self._recording_format is not None:
            body["recordingSampleRate"], body["recordingNumChannels"] = self._recording_format
        elif self._own_recorder and not self._own_recorder.started and self._pipeline_started:
            logger.warning(
                "pipecat-roark: no recording: observer.audio_processor is not in the "
                "pipeline; place it right after transport.output()"
            )
        if transcript:
            body["transcript"] = transcript
        if tools:
            body["toolCalls"] = tools
        if self._metrics_on:
            body["metrics"] = self._metrics(transcript, [release for _, release in turns])
        if self._own_recorder is not None:
            self._own_recorder.forget_positions()
        return body

    def _snapped(
        self, turns: list[tuple[dict[str, Any], int | None]]
    ) -> list[tuple[dict[str, Any], int | None]]:
        """User turns placed on the caller's speech as the recording shows it.

        Their edges come from the VAD and the turn detector, which hear speech a little
        after it begins; the recording's own left channel says where it is. Bot turns are
        already exact: the recorder placed their edges on its samples."""
        if self._recording_format is None:
            return turns
        caller = Timeline(self._speech.stretches(0))
        for entry, _ in turns:
            if entry["role"] == "user" and "endAudioOffsetMs" in entry:
                start, end = snap_to_speech(
                    entry["audioOffsetMs"], entry["endAudioOffsetMs"], caller
                )
                entry.update(
                    audioOffsetMs=start,
                    endAudioOffsetMs=end,
                    timestamp=self._iso_at(start),
                    endTimestamp=self._iso_at(end),
                )
        return (
            sorted(turns, key=lambda turn: turn[0]["audioOffsetMs"])
            if all("audioOffsetMs" in entry for entry, _ in turns)
            else turns
        )

    def _metrics(
        self, transcript: list[dict[str, Any]], releases: list[int | None]
    ) -> list[dict[str, Any]]:
        measured: list[dict[str, Any]] = []
        for entry, moment in self._service_metrics:
            when = self._resolve(moment)
            placed = {**entry, "timestamp": iso_utc(when.wall)}
            if when.offset_ms is not None:
                placed["audioOffsetMs"] = when.offset_ms
            measured.append(placed)
        cuts = [
            Interruption(
                self._resolve(cut.moment).offset_ms or 0,
                self._resolve(cut.bot_turn_start).offset_ms if cut.bot_turn_start else None,
                *self._recorder.cut_words(cut, self._resolve, self._placed),
            )
            for cut in self._recorder.cuts
        ]
        speech = self._speech if self._recording_format is not None else None
        return measured + call_metrics(transcript, releases, speech, cuts, self._iso_at)

    def _iso_at(self, offset_ms: int) -> str:
        own = self._own_recorder
        anchor = (own.first_audio_wall if own else None) or self._anchor_wall
        return iso_utc((anchor if anchor is not None else time.time()) + offset_ms / 1000)

    @property
    def _placed(self) -> Callable[[int], int | None] | None:
        """Where each played word was played: words reach the recorder (placed after the
        output transport) as their audio plays; None when the recorder is not in the
        pipeline, and the words are then taken from the frames' hops."""
        own = self._own_recorder
        return own.position_ms if own is not None and own.started else None

    def _resolve(self, moment: Moment) -> Resolved:
        """Place a moment on the recording's timeline: its sample position when the recorder
        saw the frame, else the pipeline clock relative to the recording's first frame."""
        own = self._own_recorder
        offset = own.position_ms(moment.frame_id, moment.sibling_id) if own else None
        if moment.at_end and self._recording_format is not None:
            rate, channels = self._recording_format
            offset = self._recorded_bytes // (2 * channels) * 1000 // rate
        anchor_clock = (own.first_audio_clock_ns if own else None) or self._anchor_clock_ns
        if offset is None and anchor_clock is not None and moment.clock_ns is not None:
            offset = (moment.clock_ns - anchor_clock) // 1_000_000
        if offset is not None:
            offset = max(0, offset - moment.lead_ms)
        anchor_wall = (own.first_audio_wall if own else None) or self._anchor_wall
        if offset is not None and anchor_wall is not None:
            return Resolved(anchor_wall + offset / 1000, offset)
        return Resolved(moment.wall - moment.lead_ms / 1000, offset)

    def _log_failure(self, where: str, exc: BaseException) -> None:
        key = f"{where}:{type(exc).__name__}"
        if key in self._failures_logged:
            return
        self._failures_logged.add(key)
        logger.opt(exception=exc).warning(
            f"pipecat-roark: observer failed on {where} in call {self._call_id}; "
            "the call goes on and this is logged once"
        )


def _remember(seen: set[int], order: deque[int], frame_id: int) -> None:
    seen.add(frame_id)
    order.append(frame_id)
    if len(order) > _SEEN_CAPACITY:
        seen.discard(order.popleft())


def _arguments_json(arguments: object) -> str:
    """Tool arguments as the JSON string the protocol wants; strings pass through verbatim."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, separators=(",", ":"), default=str)


def _result_text(result: object) -> str:
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    if isinstance(result, (dict, list, tuple)):
        return json.dumps(result, separators=(",", ":"), default=str)
    return str(result)


def _resolve_api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get("ROARK_API_KEY", "")
    if not isinstance(key, str) or not key.strip():
        raise ValueError(
            "RoarkObserver needs an API key: pass api_key=... or set the ROARK_API_KEY "
            "environment variable"
        )
    return key.strip()


def _resolve_base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get("ROARK_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url (or ROARK_BASE_URL) must be an http(s) URL such as {DEFAULT_BASE_URL}, "
            f"not {url!r}"
        )
    return url.rstrip("/")
