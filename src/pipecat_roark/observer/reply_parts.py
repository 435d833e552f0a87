"""A reply's latency, part by part, worked out from the moments the observer saw.

Pipecat 1.x names the parts of each reply itself (``LatencyBreakdown.contributions``), and
the observer keeps those. Pipecat 0.0.x measures the services' TTFBs but names no parts, so
for that line the same parts are derived here, with Pipecat's keys where the meaning is
the same. Consecutive moments name the stretch between them; a stretch whose two ends are
not adjacent stages (a moment that was never observed) is ``unattributed``, and hops too
short to name are ``pipeline``, so the parts always sum to the whole reply.

Plain Python, no Pipecat: the tests feed it numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise

__all__ = ["Mark", "Part", "Stage", "derive_parts"]

# As in Pipecat 1.x: shorter than this is a frame hop, rolled into the pipeline part, unless
# it is a core stage, which is listed whenever it would not print as zero.
MIN_PART_SECS = 0.005
PRINTS_AS_ZERO_SECS = 0.0005


class Stage(Enum):
    SILENCE = "silence"
    VAD_STOP = "vad stop"
    TRANSCRIPT = "transcript"
    LLM_REQUEST = "llm request"
    LLM_CHUNK = "llm chunk"
    HANDLERS_START = "handlers start"
    HANDLERS_END = "handlers end"
    FIRST_TEXT = "first text"
    FIRST_AUDIO = "first audio"
    BOT_SPEAKING = "bot speaking"


@dataclass(frozen=True, slots=True)
class Mark:
    """One moment of a reply: wall-clock seconds, and who produced it."""

    at: float
    stage: Stage
    source: str = ""
    derived: bool = False


@dataclass(slots=True)
class Part:
    """One named stretch of a reply, in Pipecat's terms."""

    key: str
    label: str
    owner: str
    owner_kind: str
    start: float
    duration: float
    reported: float | None = None
    """What the measure itself said, where the recording corrected it."""


@dataclass(frozen=True, slots=True)
class _Span:
    key: str
    label: str
    owner: str
    """A literal owner (a setting), or "opener"/"closer": the end whose source owns it."""
    core: bool


_SPANS: dict[tuple[Stage, Stage], _Span] = {
    (Stage.SILENCE, Stage.VAD_STOP): _Span(
        "endpointing_wait", "endpointing wait", "config: VAD stop_secs", True
    ),
    (Stage.VAD_STOP, Stage.TRANSCRIPT): _Span("transcription", "transcription", "closer", True),
    (Stage.TRANSCRIPT, Stage.LLM_REQUEST): _Span(
        "turn_detection", "turn detection", "config: user turn strategies", True
    ),
    (Stage.LLM_REQUEST, Stage.LLM_CHUNK): _Span("llm_inference", "LLM inference", "opener", True),
    (Stage.LLM_CHUNK, Stage.FIRST_TEXT): _Span("llm_inference", "LLM inference", "opener", True),
    (Stage.LLM_CHUNK, Stage.HANDLERS_START): _Span(
        "llm_tool_call", "LLM tool call", "opener", False
    ),
    (Stage.HANDLERS_START, Stage.HANDLERS_END): _Span(
        "function_handler", "function handler", "closer", False
    ),
    (Stage.FIRST_TEXT, Stage.FIRST_AUDIO): _Span(
        "speech_synthesis", "speech synthesis", "closer", True
    ),
    (Stage.FIRST_AUDIO, Stage.BOT_SPEAKING): _Span(
        "output_transport", "output transport", "closer", False
    ),
}


def derive_parts(start: float, marks: Sequence[Mark]) -> list[Part]:
    """The parts of a reply from ``start`` (the user's last word) to its last mark."""
    ordered = sorted(
        [Mark(start, Stage.SILENCE), *(m for m in marks if m.at >= start)],
        key=lambda m: (m.at, not m.derived),
    )
    if len(ordered) < 2:
        return []
    parts: list[Part] = []
    for opener, closer in pairwise(ordered):
        duration = closer.at - opener.at
        if duration <= 0:
            continue
        span = _SPANS.get((opener.stage, closer.stage))
        if span is None:
            if duration >= MIN_PART_SECS:
                parts.append(
                    Part("unattributed", "unattributed", "unknown", "pipeline", opener.at, duration)
                )
            continue
        if span.owner == "opener":
            owner, kind = opener.source, "service"
        elif span.owner == "closer":
            owner, kind = closer.source, "service"
        else:
            owner, kind = span.owner, "setting"
        floor = PRINTS_AS_ZERO_SECS if span.core else MIN_PART_SECS
        if duration >= floor:
            parts.append(Part(span.key, span.label, owner, kind, opener.at, duration))
    parts = _merged(parts)
    rest = (ordered[-1].at - start) - sum(part.duration for part in parts)
    if rest >= PRINTS_AS_ZERO_SECS:
        parts.append(Part("pipeline", "pipeline", "pipecat", "pipeline", start, rest))
    return parts


def _merged(parts: list[Part]) -> list[Part]:
    """Touching parts that say the same thing are one part (an LLM's wait and its stream)."""
    merged: list[Part] = []
    for part in parts:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and (previous.key, previous.owner) == (part.key, part.owner)
            and part.start - (previous.start + previous.duration) < PRINTS_AS_ZERO_SECS
        ):
            previous.duration = part.start + part.duration - previous.start
        else:
            merged.append(part)
    return merged
