"""Where each side of the recording speaks, measured on the recorded samples themselves.

Talk time, overlap, silence and response latency are properties of the audio, so they are
measured on it: every chunk of the stereo recording (left = user, right = bot) is cut into
10 ms windows, a window whose RMS level is above -44 dBFS counts as speech, and runs of
speech closer than 200 ms are one stretch. Exact on the recording's own sample timeline,
and off the call's path: it runs on whole chunks (a few seconds at a time) with numpy.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SpeechActivity", "Stretch", "Timeline", "overlap_ms", "snap_to_speech", "union"]

WINDOW_MS = 10
_THRESHOLD_RMS = 205.0  # -44 dBFS for 16-bit audio
_BRIDGE_MS = 200
_SHORTEST_MS = 40

Stretch = tuple[int, int]
"""A stretch of speech as (start_ms, end_ms) on the recording's timeline."""


@dataclass(slots=True)
class _Channel:
    stretches: list[list[int]] = field(default_factory=list)


class SpeechActivity:
    """Accumulates, chunk by chunk, where each channel of a recording has speech."""

    def __init__(self) -> None:
        self._channels: list[_Channel] = []
        self._carry = np.zeros((0, 0), dtype=np.int16)
        self._windows_done = 0
        self._rate = 0

    def feed(self, pcm: bytes, sample_rate: int, channels: int) -> None:
        if not pcm or sample_rate <= 0 or channels <= 0:
            return
        if not self._channels or self._rate != sample_rate:
            self._channels = [_Channel() for _ in range(channels)]
            self._carry = np.zeros((0, channels), dtype=np.int16)
            self._windows_done = 0
            self._rate = sample_rate
        frames = np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")
        samples = np.concatenate([self._carry, frames.reshape(-1, channels)])
        window = max(1, sample_rate * WINDOW_MS // 1000)
        whole = len(samples) // window * window
        self._carry = samples[whole:]
        if not whole:
            return
        # One contiguous row per channel: reducing along it is ten times faster than
        # reducing the interleaved layout in place.
        rows = np.ascontiguousarray(samples[:whole].T, dtype=np.float32)
        blocks = rows.reshape(channels, -1, window)
        rms = np.sqrt(np.mean(blocks * blocks, axis=2))  # (channels, windows)
        for index, channel in enumerate(self._channels):
            self._add_runs(channel, rms[index] > _THRESHOLD_RMS)
        self._windows_done += rms.shape[1]

    def stretches(self, channel: int) -> list[Stretch]:
        """Speech on ``channel`` so far, blips shorter than 40 ms left out."""
        if channel >= len(self._channels):
            return []
        return [
            (start, end)
            for start, end in self._channels[channel].stretches
            if end - start >= _SHORTEST_MS
        ]

    @property
    def duration_ms(self) -> int:
        return self._windows_done * WINDOW_MS

    def _add_runs(self, channel: _Channel, active: np.ndarray) -> None:
        edges = np.diff(np.concatenate(([0], active.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        base = self._windows_done
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            start_ms, end_ms = (base + start) * WINDOW_MS, (base + end) * WINDOW_MS
            previous = channel.stretches[-1] if channel.stretches else None
            if previous is not None and start_ms - previous[1] <= _BRIDGE_MS:
                previous[1] = end_ms
            else:
                channel.stretches.append([start_ms, end_ms])


def union(first: list[Stretch], second: list[Stretch]) -> list[Stretch]:
    """Where either side speaks."""
    merged: list[list[int]] = []
    for start, end in sorted(first + second):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def overlap_ms(first: list[Stretch], second: list[Stretch]) -> int:
    """How long both sides speak at once."""
    total = i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        total += max(0, end - start)
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return total


# How far a turn's edge may move to meet the speech it stands for: a VAD reports speech a
# little after it began (quiet onsets do not reach its threshold) and ends it by its own
# rules; further than this, the stretch is someone else's speech or noise.
_SNAP_BEFORE_MS = 400
_SNAP_AFTER_MS = 250


class Timeline:
    """One channel's stretches, for the questions asked of every turn of a call (each in
    logarithmic time: a long call has thousands of turns and stretches)."""

    def __init__(self, stretches: list[Stretch]) -> None:
        self.stretches = stretches
        self._starts = [start for start, _ in stretches]
        self._ends = [end for _, end in stretches]

    def first_start(self, low: int, high: int) -> int | None:
        """The earliest stretch start within [low, high]."""
        index = bisect_left(self._starts, low)
        if index < len(self._starts) and self._starts[index] <= high:
            return self._starts[index]
        return None

    def last_end(self, low: int, high: int, *, started_from: int | None = None) -> int | None:
        """The latest stretch end within [low, high], of a stretch that started no earlier
        than ``started_from``."""
        index = bisect_right(self._ends, high) - 1
        if index < 0 or self._ends[index] < low:
            return None
        if started_from is not None and self._starts[index] < started_from:
            return None
        return self._ends[index]

    def last_end_of_speech_before(self, high: int, *, started_before: int) -> int | None:
        """The latest end within [.., high] of a stretch that began before ``started_before``."""
        index = bisect_right(self._ends, high) - 1
        while index >= 0 and self._starts[index] >= started_before:
            index -= 1
        return self._ends[index] if index >= 0 else None


def snap_to_speech(start_ms: int, end_ms: int, speech: Timeline) -> tuple[int, int]:
    """A turn's (start, end) moved onto the edges of the speech heard on its channel.

    The earliest stretch that begins near the turn's start gives the start; the last
    stretch that began before the turn ended and ends near its end gives the end.
    """
    new_start = speech.first_start(start_ms - _SNAP_BEFORE_MS, start_ms + _SNAP_AFTER_MS)
    if new_start is None:
        new_start = start_ms
    new_end = speech.last_end_of_speech_before(end_ms + _SNAP_BEFORE_MS, started_before=end_ms)
    if new_end is None or new_end < end_ms - _SNAP_AFTER_MS:
        new_end = end_ms
    return new_start, max(new_start, new_end)
