"""ReplyLatency: where each reply's time went, kept for call-ended and placed on the recording.

It composes Pipecat's own ``UserBotLatencyObserver``, as Pipecat's tracing composes one,
and feeds it the frames the observer gets. On Pipecat 1.9+ that observer names every part
of each reply (``LatencyBreakdown.contributions``) and those parts are kept as they are.
On 0.0.x its breakdown has the services' TTFBs, text aggregation and function calls but no
parts, so the parts are derived from the same frames (``reply_parts``). Each reply ends on
a ``BotStartedSpeakingFrame`` that passed the recorder, which is where its waterfall ends
on the recording; every part is placed back from there.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from loguru import logger
from pipecat.frames import frames as pipecat_frames
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection

from . import _pipecat_compat as compat
from .reply_parts import Mark, Part, Stage, derive_parts
from .timeline import CallTimeline, Moment, iso_utc

_LATENCY_OBSERVER: type[Any] | None
try:
    from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver

    _LATENCY_OBSERVER = UserBotLatencyObserver
except ImportError:  # pragma: no cover - Pipecat 0.0.x before the observer existed
    _LATENCY_OBSERVER = None

__all__ = ["LATENCY_BREAKDOWN", "ReplyLatency"]

LATENCY_BREAKDOWN = "latency_breakdown"
_MAX_REPLIES = 2000
_SEEN_CAPACITY = 4096
_BREAKDOWN_WAIT_SECS = 2.0
# A bot onset measured on the recording belongs to the reply whose onset is this close.
_ONSET_MATCH_MS = 500


def _frame_classes(*names: str) -> tuple[type, ...]:
    """The frame classes of this Pipecat line (a few exist only on 1.x)."""
    return tuple(getattr(pipecat_frames, name) for name in names if hasattr(pipecat_frames, name))


WANTED_FRAMES = _frame_classes(
    "ClientConnectedFrame",
    "VADUserStartedSpeakingFrame",
    "VADUserStoppedSpeakingFrame",
    "UserStoppedSpeakingFrame",
    "TranscriptionFrame",
    "LLMFullResponseStartFrame",
    "LLMMarkerFrame",
    "LLMTextFrame",
    "TTSAudioRawFrame",
    "InterruptionFrame",
    "FunctionCallInProgressFrame",
    "FunctionCallResultFrame",
    "MetricsFrame",
    "BotStartedSpeakingFrame",
)


# A reply's text and audio stream in many frames, and the measure needs only the first of
# each: the rest never wake the observer. The frames that start a reply open the gates.
_FIRST_ONLY = _frame_classes("LLMTextFrame", "TTSAudioRawFrame")
_OPENERS = _frame_classes(
    "ClientConnectedFrame",
    "VADUserStartedSpeakingFrame",
    "VADUserStoppedSpeakingFrame",
    "InterruptionFrame",
    "LLMFullResponseStartFrame",
)


class _FirstOfReply:
    """True for the first push after it was opened, then False until opened again.

    Asked by the observer's queue filter as each frame is pushed, so it follows the order
    of the pushes, not the (later) order in which the observer handles them."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True

    def __bool__(self) -> bool:
        passed, self.open = self.open, False
        return passed


class _Opener:
    """Always wanted; each push of it opens the gates."""

    __slots__ = ("_gates",)

    def __init__(self, gates: tuple[_FirstOfReply, ...]) -> None:
        self._gates = gates

    def __bool__(self) -> bool:
        for gate in self._gates:
            gate.open = True
        return True


@dataclass(slots=True)
class _Reply:
    ended: float
    """Wall-clock seconds when the bot's start of speech was observed."""
    moment: Moment
    parts: list[Part] | None = None
    """Derived on Pipecat 0.0.x; Pipecat 1.x names them in ``breakdown``."""
    breakdown: Any = None


class ReplyLatency:
    """The latency breakdown of every reply of one call."""

    def __init__(self) -> None:
        self.pipecat_names_parts = _pipecat_names_parts()
        self.latency_observer: Any = _LATENCY_OBSERVER() if _LATENCY_OBSERVER else None
        """Pipecat's ``UserBotLatencyObserver`` that measures this call; add your own
        ``on_latency_breakdown`` handler to it to see each breakdown as it comes."""
        if self.latency_observer is not None:
            self.latency_observer.add_event_handler("on_latency_breakdown", self._on_breakdown)
        self._replies: deque[_Reply] = deque(maxlen=_MAX_REPLIES)
        self._gates = (_FirstOfReply(), _FirstOfReply())
        self._opener = _Opener(self._gates)
        self._marks = _Marks()
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()

    def wants(self, frame_class: type) -> object:
        """Whether the observer should be handed pushes of ``frame_class``: a truth value,
        or for a streamed frame a gate that lets the first of each reply through."""
        if issubclass(frame_class, _FIRST_ONLY):
            return self._gates[1] if issubclass(frame_class, _FIRST_ONLY[1]) else self._gates[0]
        if issubclass(frame_class, _OPENERS):
            return self._opener
        return issubclass(frame_class, WANTED_FRAMES)

    async def on_pipeline_started(self) -> None:
        if self.latency_observer is not None:
            await self.latency_observer.on_pipeline_started()

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if not isinstance(frame, WANTED_FRAMES):
            return
        downstream = data.direction == FrameDirection.DOWNSTREAM
        first = downstream and self._first_sight(frame.id)
        wall = time.time()
        if first and isinstance(frame, pipecat_frames.BotStartedSpeakingFrame):
            # The downstream copy passes the recorder: the reply ends where it landed.
            sibling = getattr(frame, "broadcast_sibling_id", None)
            moment = Moment(data.timestamp, wall, frame.id, sibling)
            parts = None if self.pipecat_names_parts else self._marks.reply(wall, data)
            self._replies.append(_Reply(wall, moment, parts))
        elif first and not self.pipecat_names_parts:
            self._marks.see(data, wall)
        if self.latency_observer is not None:
            await self.latency_observer.on_push_frame(data)

    async def settle(self) -> None:
        """Wait (briefly) for the breakdowns Pipecat is still handing over."""
        if self.latency_observer is None:
            return
        pending = compat.handler_tasks(self.latency_observer, "on_latency_breakdown")
        if pending:
            await asyncio.wait(pending, timeout=_BREAKDOWN_WAIT_SECS)

    def metrics(
        self, timeline: CallTimeline, turn_latencies: Sequence[dict[str, Any]], fallback_wall: float
    ) -> list[dict[str, Any]]:
        """One ``latency_breakdown`` metric per measured reply, placed on the recording."""
        out: list[dict[str, Any]] = []
        for reply in self._replies:
            parts = self._parts(reply)
            if not parts:
                continue
            onset = timeline.resolve(reply.moment).offset_ms
            heard = _heard(turn_latencies, onset)
            if heard is not None:
                onset = heard["audioOffsetMs"]
                _anchor(parts, heard["value"])
            entry = _metric(reply, parts, onset, timeline, fallback_wall)
            if heard is not None:
                entry["turnIndex"] = heard["turnIndex"]
            out.append(entry)
        return out

    # -- private --------------------------------------------------------------------------

    def _first_sight(self, frame_id: int) -> bool:
        if frame_id in self._seen:
            return False
        self._seen.add(frame_id)
        self._seen_order.append(frame_id)
        if len(self._seen_order) > _SEEN_CAPACITY:
            self._seen.discard(self._seen_order.popleft())
        return True

    async def _on_breakdown(self, observer: object, breakdown: Any) -> None:
        try:
            end = _breakdown_end(breakdown)
            # The reply whose start of speech triggered it: the latest seen by then.
            candidates = [r for r in self._replies if r.breakdown is None]
            if end is not None:
                earlier = [r for r in candidates if r.ended <= end + 0.05]
                candidates = earlier or candidates
            if candidates:
                candidates[-1].breakdown = breakdown
        except Exception as exc:  # never raise into Pipecat's handler task
            logger.opt(exception=exc).debug("pipecat-roark: latency breakdown not kept")

    @staticmethod
    def _parts(reply: _Reply) -> list[Part]:
        if reply.parts is not None:
            return [replace(part) for part in reply.parts]
        return _pipecat_parts(reply.breakdown)


class _Marks:
    """The moments of the reply under way, for a Pipecat line that does not name its parts."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.marks: list[Mark] = []
        self.llm_request: Mark | None = None

    def see(self, data: FramePushed, wall: float) -> None:
        frame: Any = data.frame
        source = str(getattr(data.source, "name", "") or "")
        if isinstance(frame, pipecat_frames.VADUserStartedSpeakingFrame):
            self.start, self.marks, self.llm_request = None, [], None
        elif isinstance(frame, pipecat_frames.VADUserStoppedSpeakingFrame):
            at = getattr(frame, "timestamp", None)
            at = float(at) if isinstance(at, (int, float)) else wall
            lag = getattr(frame, "stop_secs", 0.0)
            self.start = at - (float(lag) if isinstance(lag, (int, float)) else 0.0)
            self.marks = [Mark(at, Stage.VAD_STOP)]
        elif self.start is None:
            return
        elif isinstance(frame, pipecat_frames.InterruptionFrame):
            self.marks = [m for m in self.marks if m.stage is Stage.VAD_STOP]
        elif isinstance(frame, pipecat_frames.TranscriptionFrame):
            if not self._has(Stage.LLM_REQUEST):
                self.marks = [m for m in self.marks if m.stage is not Stage.TRANSCRIPT]
                self.marks.append(Mark(wall, Stage.TRANSCRIPT, source))
        elif isinstance(frame, pipecat_frames.LLMFullResponseStartFrame):
            self.llm_request = Mark(wall, Stage.LLM_REQUEST, source)
            self.marks.append(self.llm_request)
        elif isinstance(frame, pipecat_frames.MetricsFrame):
            self._metrics(frame, wall)
        elif isinstance(frame, pipecat_frames.FunctionCallInProgressFrame):
            self._once(Mark(wall, Stage.HANDLERS_START, source))
        elif isinstance(frame, pipecat_frames.FunctionCallResultFrame):
            name = str(getattr(frame, "function_name", "") or source)
            self.marks.append(Mark(wall, Stage.HANDLERS_END, name))
        elif isinstance(frame, pipecat_frames.LLMTextFrame):
            self._once(Mark(wall, Stage.FIRST_TEXT, source))
        elif isinstance(frame, pipecat_frames.TTSAudioRawFrame):
            self._once(Mark(wall, Stage.FIRST_AUDIO, source))

    def reply(self, wall: float, data: FramePushed) -> list[Part] | None:
        """The parts of the reply that starts now; None if no user turn was measured."""
        if self.start is None:
            return None
        source = str(getattr(data.source, "name", "") or "")
        parts = derive_parts(self.start, [*self.marks, Mark(wall, Stage.BOT_SPEAKING, source)])
        self.start, self.marks, self.llm_request = None, [], None
        return parts or None

    def _has(self, stage: Stage) -> bool:
        return any(m.stage is stage for m in self.marks)

    def _once(self, mark: Mark) -> None:
        if not self._has(mark.stage):
            self.marks.append(mark)

    def _metrics(self, frame: Any, wall: float) -> None:
        request = self.llm_request
        for item in frame.data or ():
            value = getattr(item, "value", None)
            if (
                request is not None
                and type(item).__name__ == "TTFBMetricsData"
                and isinstance(value, (int, float))
                and value > 0
                and getattr(item, "processor", None) == request.source
            ):
                at = min(request.at + float(value), wall)
                self.marks.append(Mark(at, Stage.LLM_CHUNK, request.source, derived=True))


def _heard(turn_latencies: Sequence[dict[str, Any]], onset: int | None) -> dict[str, Any] | None:
    """The response latency measured on the recording for the reply that starts at ``onset``."""
    if onset is None:
        return None
    near = [
        m
        for m in turn_latencies
        if "audioOffsetMs" in m and abs(m["audioOffsetMs"] - onset) <= _ONSET_MATCH_MS
    ]
    return min(near, key=lambda m: abs(m["audioOffsetMs"] - onset)) if near else None


def _anchor(parts: list[Part], heard_secs: float) -> None:
    """Span the parts over the reply as the recording shows it: from the user's last word to
    the bot's first sample.

    The VAD's report of where the silence began is an estimate (its verdict less its
    ``stop_secs``), a few tens of ms off the speech on the recording; the endpointing wait
    is that silence, so it takes the difference, down to nothing. What it cannot take is
    pipeline time the recording does not hold (a stalled machine: the recording records no
    stall), and every part gives it back in proportion. Each measure a part had before is
    kept beside it (``reportedSecs``). With no endpointing wait to take it, time the
    recording holds before the first observed part is ``unattributed``, so the parts still
    span the reply.
    """
    if not parts:
        return
    change = heard_secs - sum(part.duration for part in parts)
    wait = next((part for part in parts if part.key == "endpointing_wait"), None)
    if wait is not None:
        taken = max(change, -wait.duration)
        if taken:
            wait.reported = wait.duration
            wait.start -= taken
            wait.duration += taken
            change -= taken
    if change < -1e-9:
        _shrink(parts, change)
    elif change > 1e-9:
        start = min(part.start for part in parts) - change
        parts.insert(0, Part("unattributed", "unattributed", "unknown", "pipeline", start, change))


def _shrink(parts: list[Part], change: float) -> None:
    total = sum(part.duration for part in parts)
    factor = max(0.0, (total + change) / total) if total > 0 else 0.0
    first = min(part.start for part in parts)
    for part in parts:
        if part.reported is None:
            part.reported = part.duration
        part.start = first + (part.start - first) * factor
        part.duration *= factor


def _metric(
    reply: _Reply,
    parts: list[Part],
    onset: int | None,
    timeline: CallTimeline,
    fallback_wall: float,
) -> dict[str, Any]:
    """The ``latency_breakdown`` metric of one reply, each part placed back from ``onset``."""
    end = parts_end(parts)

    def place(start: float) -> dict[str, Any]:
        if onset is None:
            return {"timestamp": iso_utc(start)}
        offset = max(0, onset - round((end - start) * 1000))
        return {
            "audioOffsetMs": offset,
            "timestamp": timeline.iso_at(offset, fallback_wall=fallback_wall),
        }

    entry: dict[str, Any] = {
        "kind": LATENCY_BREAKDOWN,
        "value": sum(part.duration for part in parts),
        **place(min(part.start for part in parts)),
        "source": "pipecat" if reply.parts is None else "derived",
        "endedAt": iso_utc(end),
        "contributions": [_contribution(part, place(part.start)) for part in parts],
    }
    if onset is not None:
        entry["endAudioOffsetMs"] = onset
    if reply.breakdown is not None:
        entry.update(_breakdown_extras(reply.breakdown, place))
    return entry


def _contribution(part: Part, placed: dict[str, Any]) -> dict[str, Any]:
    entry = {
        "key": part.key,
        "label": part.label,
        "owner": part.owner,
        "ownerKind": part.owner_kind,
        "durationSecs": part.duration,
        **placed,
    }
    if part.reported is not None:
        entry["reportedSecs"] = part.reported
    return entry


def parts_end(parts: Sequence[Part]) -> float:
    return min(part.start for part in parts) + sum(part.duration for part in parts)


def _pipecat_names_parts() -> bool:
    try:
        from pipecat.observers.user_bot_latency_observer import LatencyBreakdown
    except ImportError:  # pragma: no cover - Pipecat 0.0.x before the observer existed
        return False
    return "contributions" in LatencyBreakdown.model_fields


def _pipecat_parts(breakdown: Any) -> list[Part]:
    if breakdown is None:
        return []
    return [
        Part(
            str(c.key),
            str(c.label),
            str(c.owner),
            str(getattr(c.owner_kind, "value", c.owner_kind)),
            float(c.start_time),
            float(c.duration_secs),
        )
        for c in getattr(breakdown, "contributions", None) or ()
    ]


def _breakdown_end(breakdown: Any) -> float | None:
    parts = _pipecat_parts(breakdown)
    return parts_end(parts) if parts else None


def _breakdown_extras(breakdown: Any, place: Any) -> dict[str, Any]:
    """What Pipecat's breakdown says besides the parts: TTFBs, aggregation, tool calls."""
    extras: dict[str, Any] = {}
    measured_from = getattr(breakdown, "measured_from", None)
    if measured_from is not None:
        extras["measuredFrom"] = str(getattr(measured_from, "value", measured_from))
    extras["ttfb"] = [
        {
            "processor": str(t.processor),
            **({"model": str(t.model)} if t.model else {}),
            "durationSecs": float(t.duration_secs),
            **place(float(t.start_time)),
        }
        for t in breakdown.ttfb
    ]
    aggregation = breakdown.text_aggregation
    if aggregation is not None:
        extras["textAggregation"] = {
            "processor": str(aggregation.processor),
            "durationSecs": float(aggregation.duration_secs),
            **place(float(aggregation.start_time)),
        }
    extras["functionCalls"] = [
        {
            "functionName": str(call.function_name),
            "durationSecs": float(call.duration_secs),
            **place(float(call.start_time)),
        }
        for call in breakdown.function_calls
    ]
    if breakdown.user_turn_secs is not None:
        extras["userTurnSecs"] = float(breakdown.user_turn_secs)
    return extras
