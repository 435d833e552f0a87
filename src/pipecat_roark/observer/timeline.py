"""CallTimeline: every moment of a call as a sample position of its recording.

The recording is the call's clock. Whatever recorder makes it (the observer's own or one
the user passed), its tap reports, as each frame passes it, how many samples the recording
holds at that point, silence the recorder padded included. A frame that passed the
recorder sits exactly there; pacing, load and the recorder's own padding rules cannot move
it, since they move the samples too. A moment whose frame never passed the recorder (an
STT final, which the user aggregator consumes) is placed from the pipeline clock, relative
to the nearest frame that did. The wall clock only stamps when the call happened: sample
0 is the wall time of the first recorded audio.

Plain Python, no Pipecat and no I/O: the tests feed it numbers.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

__all__ = ["CallTimeline", "Moment", "Resolved", "iso_utc"]

# Positions of the frames that passed the recorder, until the call ends: a few per turn and
# one per spoken word, so only a call of many hours reaches it; its earliest moments then
# fall back to the pipeline clock.
_MAX_POSITIONS = 1 << 16


def iso_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


@dataclass(slots=True, frozen=True)
class Moment:
    """When something happened in the call, as the observer saw it."""

    clock_ns: int | None
    """Pipeline clock when the frame that marked it was pushed."""
    wall: float
    """Wall-clock seconds when it was observed: used only when there is no recording."""
    frame_id: int | None = None
    sibling_id: int | None = None
    at_end: bool = False
    """The end of the call: placed at the end of the recording."""
    lead_ms: int = 0
    """How long before its frame the thing happened (a VAD reports speech after it began)."""


@dataclass(slots=True, frozen=True)
class Resolved:
    wall: float
    offset_ms: int | None


class CallTimeline:
    """Sample positions of the frames that passed the recorder, and what they resolve to."""

    def __init__(self) -> None:
        self.sample_rate = 0
        self._positions: OrderedDict[int, int] = OrderedDict()
        self._clocks: list[int] = []
        self._clock_samples: list[int] = []
        self._recorded = 0
        self.first_audio_wall: float | None = None
        """Wall-clock time of sample 0: when the first audio was recorded."""

    # -- fed by the recorder's tap ---------------------------------------------------------

    def started(self, sample_rate: int) -> None:
        """The recorder started at ``sample_rate``; nothing it recorded before counts."""
        self.sample_rate = sample_rate
        self._positions.clear()
        self._clocks.clear()
        self._clock_samples.clear()
        self._recorded = 0
        self.first_audio_wall = None

    def recorded(
        self, samples: int, wall: float | None = None, clock_ns: int | None = None
    ) -> None:
        """The recording now holds ``samples`` samples per channel, silence included;
        ``wall`` (and the pipeline clock) are needed until the first audio has come."""
        if samples <= self._recorded:
            return
        if self.first_audio_wall is None:
            if wall is None:
                return
            self.first_audio_wall = wall
            if clock_ns is not None:
                self._clock_at(clock_ns, 0)
        self._recorded = samples

    def crossed(self, frame_id: int, at: int, clock_ns: int | None) -> None:
        """A frame passed the recorder: it sits at sample ``at`` of the recording."""
        self._positions[frame_id] = at
        if len(self._positions) > _MAX_POSITIONS:
            self._positions.popitem(last=False)
        if clock_ns is not None and self.first_audio_wall is not None:
            self._clock_at(clock_ns, at)

    # -- read when the call ends -----------------------------------------------------------

    @property
    def recorded_samples(self) -> int:
        return self._recorded

    @property
    def recorded_ms(self) -> int:
        return self._to_ms(self._recorded) if self.sample_rate else 0

    def position_ms(self, frame_id: int | None) -> int | None:
        """Where a frame passed the recorder; None if it never did (a word never played)."""
        if frame_id is None or not self.sample_rate:
            return None
        samples = self._positions.get(frame_id)
        return None if samples is None else self._to_ms(samples)

    def resolve(self, moment: Moment) -> Resolved:
        offset = self._offset(moment)
        if offset is not None:
            offset = max(0, offset - moment.lead_ms)
            if self.first_audio_wall is not None:
                return Resolved(self.first_audio_wall + offset / 1000, offset)
        return Resolved(moment.wall - moment.lead_ms / 1000, offset)

    def iso_at(self, offset_ms: int, *, fallback_wall: float) -> str:
        anchor = self.first_audio_wall if self.first_audio_wall is not None else fallback_wall
        return iso_utc(anchor + offset_ms / 1000)

    def forget(self) -> None:
        self._positions.clear()
        self._clocks.clear()
        self._clock_samples.clear()

    # -- private ---------------------------------------------------------------------------

    def _offset(self, moment: Moment) -> int | None:
        if not self.sample_rate or self.first_audio_wall is None:
            return None
        if moment.at_end:
            return self.recorded_ms
        for frame_id in (moment.frame_id, moment.sibling_id):
            at = self.position_ms(frame_id)
            if at is not None:
                return at
        return self._from_clock(moment.clock_ns)

    def _from_clock(self, clock_ns: int | None) -> int | None:
        """A moment that no frame on the recording marks: the nearest one that did before
        it, plus the pipeline time since, but never past the next one or the end."""
        if clock_ns is None or not self._clocks:
            return None
        index = bisect.bisect_right(self._clocks, clock_ns) - 1
        if index < 0:
            return 0
        samples = self._clock_samples[index] + (
            (clock_ns - self._clocks[index]) * self.sample_rate // 1_000_000_000
        )
        limit = self._clock_samples[index + 1] if index + 1 < len(self._clocks) else self._recorded
        return self._to_ms(min(samples, limit))

    def _clock_at(self, clock_ns: int, samples: int) -> None:
        # The pipeline clock only moves forward; a frame that crossed with an earlier
        # stamp (queued before an audio frame it then overtook) adds nothing.
        if self._clocks and clock_ns <= self._clocks[-1]:
            return
        self._clocks.append(clock_ns)
        self._clock_samples.append(samples)
        if len(self._clocks) > _MAX_POSITIONS:
            del self._clocks[: _MAX_POSITIONS // 2]
            del self._clock_samples[: _MAX_POSITIONS // 2]

    def _to_ms(self, samples: int) -> int:
        return samples * 1000 // self.sample_rate
