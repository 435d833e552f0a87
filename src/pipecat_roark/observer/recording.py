"""The observer's own AudioBufferProcessor: arms itself inline and knows its timeline.

Two things an observer cannot do from its lagging queue, done here, inline, as frames
pass the recorder (which sits right after ``transport.output()``):

- Arm the recording when the StartFrame passes, so a bot that speaks first is recorded
  from sample 0 (arming from the observer's queue loses the greeting).
- Note where each speech edge and tool call falls on the recording's own sample timeline. Offsets
  computed from wall-clock time drift from the recording wherever the recorder skips or
  pads time (Pipecat 0.0.x collapses pauses without a continuous microphone stream; a
  demo clock can run faster than real time); sample positions cannot.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection

from ._pipecat_compat import track_buffer_lengths

__all__ = ["DEFAULT_CHUNK_BYTES", "CallAudioRecorder"]

# A stereo chunk of about 256 KiB: the processor fills each 16-bit track to half that.
DEFAULT_CHUNK_BYTES = 256 * 1024

# Frames whose place on the timeline the transcript needs: speech edges, tool calls, and
# the words the output transport released (a word that reaches the recorder was played).
_PLACED_FRAMES = (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    InterruptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    TTSTextFrame,
)
_AUDIO_FRAMES = (InputAudioRawFrame, OutputAudioRawFrame)
_MAX_CARRY_SECS = 0.5
# Positions of speech edges and tool calls until the call ends: a few per turn, so this
# bound is only reached by a call of many hours, whose earliest edges then fall back to
# the pipeline clock.
_MAX_POSITIONS = 1 << 16


class CallAudioRecorder(AudioBufferProcessor):
    """A stereo recorder (left = user, right = bot) that records from the StartFrame on.

    The sample rate is the pipeline's output rate unless ``sample_rate`` is given.
    """

    def __init__(
        self,
        *,
        num_channels: int = 2,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        on_start: Callable[[CallAudioRecorder], None] | None = None,
        **kwargs: Any,
    ) -> None:
        # Direct mode (Pipecat's own, as its Pipeline uses): frames are recorded in the task
        # that pushes them, without a queue and a task switch per frame, and an interruption
        # cannot drop audio that already played but still waited in the recorder's queue.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(
            num_channels=num_channels, buffer_size=max(2, chunk_bytes // num_channels), **kwargs
        )
        self._on_start = on_start
        self._final_flush = False
        self._carry: tuple[bytearray, bytearray] | None = None
        self._emitted_samples = 0
        self._positions: OrderedDict[int, int] = OrderedDict()
        self.started = False
        self.first_audio_wall: float | None = None
        """Wall-clock time of sample 0: when the first audio frame was recorded."""
        self.first_audio_clock_ns: int | None = None
        """The pipeline clock at sample 0, to place what never passes the recorder."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, _PLACED_FRAMES):
            self._remember_position(frame.id)
        await super().process_frame(frame, direction)
        if self.first_audio_wall is None:
            if isinstance(frame, _AUDIO_FRAMES) and self._head_samples() > 0:
                self.first_audio_wall = time.time()
                try:
                    self.first_audio_clock_ns = self.get_clock().get_time()
                except Exception:
                    self.first_audio_clock_ns = None
            elif isinstance(frame, StartFrame) and not self.started:
                self.started = True
                await self.start_recording()
                if self._on_start is not None:
                    self._on_start(self)

    async def stop_recording(self) -> None:
        self._final_flush = True
        try:
            await super().stop_recording()
        finally:
            self._final_flush = False

    def _fill_buffer_silence_gap(self, *args: Any, **kwargs: Any) -> None:
        # Pipecat 1.x pads a track with silence for any wall-clock gap over 200 ms. With a
        # continuous microphone stream there is no real gap, only a stalled event loop whose
        # audio arrives late, and the padding would move every later sample away from where
        # the speech edges were placed. The timeline is the audio that flowed.
        return None

    def _align_track_buffers(self) -> None:
        # At a chunk boundary the tracks usually differ by less than one output chunk; padding
        # the shorter one would put silence into speech that spans the boundary. What only
        # one track holds is carried into the next chunk instead (see merge_audio_buffers),
        # unless this is the last chunk or the tracks have drifted far apart.
        user, bot = track_buffer_lengths(self)
        if self._final_flush or abs(user - bot) > self.sample_rate * 2 * _MAX_CARRY_SECS:
            super()._align_track_buffers()

    def merge_audio_buffers(self) -> bytes:
        user, bot = self._user_audio_buffer, self._bot_audio_buffer
        common = min(len(user), len(bot))
        if common < max(len(user), len(bot)):
            self._carry = (user[common:], bot[common:])
            self._user_audio_buffer, self._bot_audio_buffer = user[:common], bot[:common]
        merged = super().merge_audio_buffers()
        self._emitted_samples += len(merged) // (2 * max(1, self.num_channels))
        return merged

    def _reset_primary_audio_buffers(self) -> None:
        super()._reset_primary_audio_buffers()
        if self._carry is not None:
            self._user_audio_buffer, self._bot_audio_buffer = self._carry
            self._carry = None

    def position_ms(self, *frame_ids: int | None) -> int | None:
        """Where the first of ``frame_ids`` that passed the recorder fell, in ms."""
        rate = self.sample_rate
        for frame_id in frame_ids:
            if frame_id is not None and rate:
                samples = self._positions.get(frame_id)
                if samples is not None:
                    return samples * 1000 // rate
        return None

    def forget_positions(self) -> None:
        self._positions.clear()

    def _head_samples(self) -> int:
        user, bot = track_buffer_lengths(self)
        return self._emitted_samples + max(user, bot) // 2

    def _remember_position(self, frame_id: int) -> None:
        self._positions[frame_id] = self._head_samples()
        if len(self._positions) > _MAX_POSITIONS:
            self._positions.popitem(last=False)
