"""The recording side of a call: the observer's own recorder, and the tap on any recorder.

``RecorderTap`` sits on whichever ``AudioBufferProcessor`` records the call (the
observer's own or one the user passed) and, inline, as each frame passes it:

- arms it when the StartFrame passes, so a bot that speaks first is recorded from sample
  0 (arming from the observer's lagging queue loses the greeting);
- tells the call's timeline how many samples the recording holds, silence the recorder
  padded by its own rules included, and which frames passed at which sample. Read from
  the recorder's buffers rather than re-derived: Pipecat 1.x pads wall-clock gaps by the
  time the recorder itself reads, which no observer sees;
- tells the observer when the call starts and ends at the recorder, so that a recorder
  whose observer was never attached still delivers a whole call.

``CallAudioRecorder`` is the observer's default recorder: stereo, ~256 KiB chunks, and two
audio rules of its own (no wall-clock padding, no padding at chunk boundaries).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

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
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.audio_buffer_processor import AudioBufferProcessor
from pipecat.processors.frame_processor import FrameDirection

from . import _pipecat_compat as compat
from .timeline import CallTimeline

__all__ = ["DEFAULT_CHUNK_BYTES", "CallAudioRecorder", "RecorderTap", "close_recording"]

# A stereo chunk of about 256 KiB: the processor fills each 16-bit track to half that.
DEFAULT_CHUNK_BYTES = 256 * 1024

# Frames whose place on the recording the call needs, each on the track it belongs to:
# speech edges, tool calls, service metrics, and the words the output transport released
# (a word that reaches the recorder was played). Where the tracks differ (the user's
# audio arrived faster than the bot's played, and the recorder pads neither while its
# speaker speaks), a bot edge is where the bot's audio is, a user edge where the user's is.
# A tool call is the bot's: on its track it comes before the reply it fed.
_USER_EDGES = (
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
_BOT_EDGES = (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    TTSTextFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
)
_PLACED_FRAMES = (*_USER_EDGES, *_BOT_EDGES, MetricsFrame)
_AUDIO_FRAMES = (InputAudioRawFrame, OutputAudioRawFrame)
_MAX_CARRY_SECS = 0.5


class RecorderTap:
    """Feeds a call's timeline from the recorder it is installed on."""

    def __init__(
        self,
        recorder: AudioBufferProcessor,
        timeline: CallTimeline,
        *,
        on_start: Callable[[AudioBufferProcessor], None],
        on_end_frame: Callable[[Frame], None],
        on_cleanup: Callable[[], Awaitable[None]],
    ) -> None:
        self._recorder = recorder
        self._timeline = timeline
        self._on_start = on_start
        self._on_end_frame = on_end_frame
        self._on_cleanup = on_cleanup
        self._emitted = 0
        self._channels = 1
        self._onsets: list[int] = []
        self.started = False
        compat.tap_recorder(
            recorder, process=self._process, merged=self._merged, cleanup=self._cleanup
        )

    async def _process(
        self,
        frame: Frame,
        direction: FrameDirection,
        process: Callable[[Frame, FrameDirection], Awaitable[None]],
    ) -> None:
        if isinstance(frame, _PLACED_FRAMES):
            self._place(frame)
        elif isinstance(frame, (EndFrame, CancelFrame)):
            self._on_end_frame(frame)
        await process(frame, direction)
        if isinstance(frame, _AUDIO_FRAMES):
            if self.started:
                self._recorded(frame)
        elif isinstance(frame, StartFrame) and not self.started:
            await self._start()

    def _place(self, frame: Frame) -> None:
        user, bot = compat.track_buffer_lengths(self._recorder)
        if isinstance(frame, _BOT_EDGES):
            at = bot
            if isinstance(frame, BotStartedSpeakingFrame):
                self._onsets.append(frame.id)
        elif isinstance(frame, _USER_EDGES):
            at = user
        else:
            at = max(user, bot)
        self._timeline.crossed(frame.id, self._emitted + at // 2, self._clock())

    def _recorded(self, frame: Frame) -> None:
        user, bot = compat.track_buffer_lengths(self._recorder)
        timeline = self._timeline
        if timeline.first_audio_wall is None:  # sample 0: its wall and pipeline time, once
            timeline.recorded(self._emitted + max(user, bot) // 2, time.time(), self._clock())
        else:  # every later audio frame: only its length (the per-frame path)
            timeline.recorded(self._emitted + max(user, bot) // 2)
        if self._onsets and isinstance(frame, OutputAudioRawFrame):
            # The bot starts where its first audio landed, after whatever silence the
            # recorder padded before it.
            rate = frame.sample_rate or self._recorder.sample_rate
            played = len(frame.audio) // (2 * max(1, frame.num_channels))
            samples = played * self._recorder.sample_rate // rate if rate else 0
            onset = self._emitted + max(0, bot // 2 - samples)
            for frame_id in self._onsets:
                self._timeline.crossed(frame_id, onset, None)
            self._onsets.clear()

    async def _start(self) -> None:
        recorder = self._recorder
        self.started = True
        if not compat.is_recording(recorder):
            await recorder.start_recording()
        self._channels = max(1, recorder.num_channels)
        self._emitted = 0
        self._timeline.started(recorder.sample_rate)
        self._on_start(recorder)

    def _merged(self, merged: bytes) -> None:
        self._emitted += len(merged) // (2 * self._channels)

    async def _cleanup(self) -> None:
        await self._on_cleanup()

    def _clock(self) -> int | None:
        try:
            return int(self._recorder.get_clock().get_time())
        except Exception:
            return None


async def close_recording(recorder: AudioBufferProcessor, wait_secs: float) -> None:
    """Take the recording's last chunk, however the call ended.

    Pipecat hands chunks to ``on_audio_data`` handlers as tasks that only the recorder's own
    cleanup awaits, after the observers' cleanup: the last chunk is in one of them. One
    that hangs is abandoned, not cancelled, after ``wait_secs``.
    """
    try:
        await recorder.stop_recording()
    except Exception as exc:
        logger.warning(f"pipecat-roark: stopping the recording failed: {exc!r}")
    pending = compat.handler_tasks(recorder, "on_audio_data")
    if pending:
        _, hung = await asyncio.wait(pending, timeout=wait_secs)
        if hung:
            logger.warning(
                f"pipecat-roark: an on_audio_data handler is still running after "
                f"{wait_secs:.0f}s; the call ends without waiting for it"
            )


class CallAudioRecorder(AudioBufferProcessor):
    """A stereo recorder (left = user, right = bot) that records the audio that flowed.

    The sample rate is the pipeline's output rate unless ``sample_rate`` is given.
    """

    def __init__(
        self, *, num_channels: int = 2, chunk_bytes: int = DEFAULT_CHUNK_BYTES, **kwargs: Any
    ) -> None:
        # Direct mode (Pipecat's own, as its Pipeline uses): frames are recorded in the task
        # that pushes them, without a queue and a task switch per frame, and an interruption
        # cannot drop audio that already played but still waited in the recorder's queue.
        kwargs.setdefault("enable_direct_mode", True)
        super().__init__(
            num_channels=num_channels, buffer_size=max(2, chunk_bytes // num_channels), **kwargs
        )
        self._final_flush = False
        self._carry: tuple[bytearray, bytearray] | None = None

    async def stop_recording(self) -> None:
        self._final_flush = True
        try:
            await super().stop_recording()
        finally:
            self._final_flush = False

    def _fill_buffer_silence_gap(self, *args: Any, **kwargs: Any) -> None:
        # Pipecat 1.x pads a track with silence for any wall-clock gap over 200 ms. With a
        # continuous microphone stream there is no real gap, only a stalled event loop whose
        # audio arrives late, and the padding would put silence into the call that nobody
        # heard. The recording is the audio that flowed.
        return None

    def _align_track_buffers(self) -> None:
        # At a chunk boundary the tracks usually differ by less than one output chunk; padding
        # the shorter one would put silence into speech that spans the boundary. What only
        # one track holds is carried into the next chunk instead (see merge_audio_buffers),
        # unless this is the last chunk or the tracks have drifted far apart.
        user, bot = compat.track_buffer_lengths(self)
        if self._final_flush or abs(user - bot) > self.sample_rate * 2 * _MAX_CARRY_SECS:
            super()._align_track_buffers()

    def merge_audio_buffers(self) -> bytes:
        user, bot = self._user_audio_buffer, self._bot_audio_buffer
        common = min(len(user), len(bot))
        if common < max(len(user), len(bot)):
            self._carry = (user[common:], bot[common:])
            self._user_audio_buffer, self._bot_audio_buffer = user[:common], bot[:common]
        return super().merge_audio_buffers()

    def _reset_primary_audio_buffers(self) -> None:
        super()._reset_primary_audio_buffers()
        if self._carry is not None:
            self._user_audio_buffer, self._bot_audio_buffer = self._carry
            self._carry = None
