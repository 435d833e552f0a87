"""FrameRouter: which frame pushes matter to the call, and what each one tells its transcript.

The same frame reaches an observer once per processor hop, and a broadcast frame comes as
two linked copies; the router takes each once. Speech edges and tool calls are taken from
their downstream copy: only that copy passes the recorder, which places it on the
recording. The handler table is decided once per frame class, and the observer's queue
filter asks the same table, so the two never disagree about which frames matter.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pipecat.frames.frames as pipecat_frames
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    MetricsFrame,
    StartFrame,
    StopFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_output import BaseOutputTransport

from .metrics import service_metric
from .timeline import Moment
from .transcript import Transcript

__all__ = ["FrameRouter", "end_reason"]

Handler = Callable[[FramePushed], None]
_UPSTREAM = FrameDirection.UPSTREAM
_SEEN_CAPACITY = 4096
_MAX_SERVICE_METRICS = 20_000


def _end_requests() -> tuple[type, ...]:
    """The frames a processor pushes to have its task end or cancel the call.

    They are the call's first end signal when the bot ends the call behind its goodbye:
    the EndFrame they lead to comes only once the goodbye has played, and a caller who
    hangs up meanwhile must not take the call's reason. Pipecat 1.x names them
    EndWorkerFrame and CancelWorkerFrame, 0.0.x EndTaskFrame and CancelTaskFrame.
    """
    for names in (("EndWorkerFrame", "CancelWorkerFrame"), ("EndTaskFrame", "CancelTaskFrame")):
        found = tuple(
            getattr(pipecat_frames, name) for name in names if hasattr(pipecat_frames, name)
        )
        if found:
            return found
    return ()


_END_REQUESTS = _end_requests()


def end_reason(frame: Frame) -> str:
    """The reason a call ends for an End, Stop or Cancel frame, or a request for one."""
    if isinstance(frame, StopFrame):
        return "unknown"
    reason = getattr(frame, "reason", None)
    return str(reason) if reason else "agent-ended"


class FrameRouter:
    """Turns the frames an observer sees into one call's transcript and service metrics."""

    def __init__(self, *, metrics: bool, on_start: Callable[[FramePushed], None]) -> None:
        self.transcript = Transcript()
        self.service_metrics: list[tuple[dict[str, Any], Moment]] = []
        self.end_reason: str | None = None
        """The reason of the first End, Stop or Cancel frame (or request for one) seen."""
        self.handlers: dict[type, Handler | None] = {}
        self._metrics = metrics
        self._on_start = on_start
        self._seen = _Recent()
        self._played = _Recent()

    def handle(self, data: FramePushed) -> None:
        frame_class = data.frame.__class__
        try:
            handler = self.handlers[frame_class]
        except KeyError:
            handler = self.handlers[frame_class] = self.handler_for(frame_class)
        if handler is not None:
            handler(data)

    def handler_for(self, frame_class: type) -> Handler | None:
        """Which method handles a frame class; looked up once per class, then cached."""
        recorded = self.transcript
        table: tuple[tuple[type | tuple[type, ...], Handler | None], ...] = (
            (StartFrame, self._on_start_frame),
            (TTSTextFrame, self._on_tts_text),
            (TranscriptionFrame, self._on_transcription),
            (UserStartedSpeakingFrame, self._edge(recorded.user_started)),
            (UserStoppedSpeakingFrame, self._edge(recorded.user_stopped)),
            (BotStartedSpeakingFrame, self._edge(recorded.bot_started)),
            (BotStoppedSpeakingFrame, self._edge(recorded.bot_stopped)),
            (InterruptionFrame, self._edge(recorded.interrupted)),
            (VADUserStartedSpeakingFrame, self._vad_edge(recorded.vad_started, "start_secs")),
            (VADUserStoppedSpeakingFrame, self._vad_edge(recorded.vad_stopped, "stop_secs")),
            (FunctionCallInProgressFrame, self._on_tool_call),
            (FunctionCallResultFrame, self._on_tool_result),
            ((EndFrame, StopFrame, CancelFrame, *_END_REQUESTS), self.on_end_frame),
            (MetricsFrame, self._on_metrics if self._metrics else None),
        )
        for classes, handler in table:
            if issubclass(frame_class, classes):
                return handler
        return None

    def on_end_frame(self, data: FramePushed | Frame) -> None:
        if self.end_reason is None:
            self.end_reason = end_reason(data.frame if isinstance(data, FramePushed) else data)

    # -- private --------------------------------------------------------------------------

    def _on_start_frame(self, data: FramePushed) -> None:
        # Words are taken as the output transport releases them, once their audio plays.
        if isinstance(data.source, BaseOutputTransport):
            self.transcript.words_are_played = True
        self._on_start(data)

    def _first_sight(self, frame: Frame) -> bool:
        """True the first time a frame (or its broadcast sibling) is seen, across all hops.
        Pipecat does not always link the two copies of a broadcast both ways."""
        seen = self._seen
        if frame.id in seen:
            return False
        seen.add(frame.id)
        sibling = getattr(frame, "broadcast_sibling_id", None)
        return sibling is None or sibling not in seen

    def _moment(self, data: FramePushed) -> Moment:
        frame = data.frame
        return Moment(
            data.timestamp, time.time(), frame.id, getattr(frame, "broadcast_sibling_id", None)
        )

    def _edge(self, record: Callable[[Moment], None]) -> Handler:
        def handle(data: FramePushed) -> None:
            if data.direction is not _UPSTREAM and self._first_sight(data.frame):
                record(self._moment(data))

        return handle

    def _vad_edge(self, record: Callable[[Moment], None], lag_field: str) -> Handler:
        """A VAD reports speech start_secs after it began and stop_secs after it ended."""

        def handle(data: FramePushed) -> None:
            frame = data.frame
            if data.direction is not _UPSTREAM and self._first_sight(frame):
                lag = getattr(frame, lag_field, 0.0)
                lead = int(lag * 1000) if isinstance(lag, (int, float)) and lag > 0 else 0
                record(replace(self._moment(data), lead_ms=lead))

        return handle

    def _on_tts_text(self, data: FramePushed) -> None:
        frame: Any = data.frame  # the handler table picked it by class
        if isinstance(data.source, BaseOutputTransport):
            self.transcript.words_are_played = True
            if frame.id in self._played:
                return
            self._played.add(frame.id)
            played = True
        elif self._first_sight(frame):
            played = False
        else:
            return
        spaced = bool(getattr(frame, "includes_inter_frame_spaces", False))
        self.transcript.assistant_text(
            frame.text or "", spaced, self._moment(data), played=played, frame_id=frame.id
        )

    def _on_transcription(self, data: FramePushed) -> None:
        frame: Any = data.frame
        if not self._first_sight(frame):
            return
        language = getattr(frame, "language", None)
        self.transcript.user_text(
            frame.text or "",
            bool(getattr(frame, "includes_inter_frame_spaces", False)),
            self._moment(data),
            user_id=getattr(frame, "user_id", None) or None,
            language=str(language) if language else None,
        )

    def _on_tool_call(self, data: FramePushed) -> None:
        frame: Any = data.frame
        if data.direction is not _UPSTREAM and self._first_sight(frame):
            self.transcript.tool_call(
                str(frame.tool_call_id or ""),
                str(frame.function_name or ""),
                _arguments_json(frame.arguments),
                self._moment(data),
            )

    def _on_tool_result(self, data: FramePushed) -> None:
        frame: Any = data.frame
        if data.direction is not _UPSTREAM and self._first_sight(frame):
            self.transcript.tool_result(
                str(frame.tool_call_id or ""), _result_text(frame.result), self._moment(data)
            )

    def _on_metrics(self, data: FramePushed) -> None:
        frame: Any = data.frame
        if not self._first_sight(frame) or len(self.service_metrics) >= _MAX_SERVICE_METRICS:
            return
        moment = self._moment(data)
        for item in frame.data or ():
            entry = service_metric(item)
            if entry is not None:
                self.service_metrics.append((entry, moment))


class _Recent:
    """The frame ids seen lately: a set with a bounded history, never an ever-growing set."""

    __slots__ = ("_ids", "_order")

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._order: deque[int] = deque()

    def __contains__(self, frame_id: object) -> bool:
        return frame_id in self._ids

    def add(self, frame_id: int) -> None:
        self._ids.add(frame_id)
        self._order.append(frame_id)
        if len(self._order) > _SEEN_CAPACITY:
            self._ids.discard(self._order.popleft())


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
