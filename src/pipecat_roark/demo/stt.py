"""Offline speech recognition for the caller: a streaming Pipecat STT service on pocketsphinx.

pocketsphinx ships its US English model inside its wheel. Audio is decoded as it arrives,
between the VAD's speech edges (which the user aggregator broadcasts upstream), so the
transcript is ready a few tens of milliseconds after the caller stops.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import STTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.tracing.service_decorators import traced_stt

from ._compat import fill_unset_settings

__all__ = ["PocketsphinxSTTService"]

MODEL_NAME = "pocketsphinx-en-us"
_ENGLISH = Language("en-US")
DECODER_SAMPLE_RATE = 16000
# The VAD confirms speech some 200 ms after it starts, and its frame reaches this service
# a little later still: keep enough recent audio to give the decoder the whole utterance.
PRE_ROLL_SECS = 0.5


class PocketsphinxSTTService(STTService):
    """Recognises the caller's speech with pocketsphinx's bundled en-US model.

    Needs 16 kHz input (``PipelineParams(audio_in_sample_rate=16000)``) and a VAD in the
    pipeline (for instance the user aggregator's ``vad_analyzer``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            sample_rate=DECODER_SAMPLE_RATE,
            # Measured: the final search takes tens of milliseconds after the VAD stop.
            ttfs_p99_latency=0.3,
            settings=STTSettings(model=MODEL_NAME, language=_ENGLISH),
            **kwargs,
        )
        fill_unset_settings(self._settings)
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=DECODER_SAMPLE_RATE, loglevel="FATAL")
        self._pre_roll: deque[bytes] = deque()
        self._pre_roll_bytes = 0
        self._in_utterance = False

    def can_generate_metrics(self) -> bool:
        return True

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        if self._in_utterance:
            self._decoder.process_raw(audio)
        else:
            self._keep_recent(audio)
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            await self._start_utterance()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self._finish_utterance()
        elif isinstance(frame, (EndFrame, CancelFrame)) and self._in_utterance:
            self._decoder.end_utt()
            self._in_utterance = False

    def _keep_recent(self, audio: bytes) -> None:
        self._pre_roll.append(audio)
        self._pre_roll_bytes += len(audio)
        limit = int(PRE_ROLL_SECS * DECODER_SAMPLE_RATE) * 2
        while self._pre_roll_bytes - len(self._pre_roll[0]) >= limit:
            self._pre_roll_bytes -= len(self._pre_roll.popleft())

    async def _start_utterance(self) -> None:
        if self._in_utterance:
            return
        recent = b"".join(self._pre_roll)
        self._pre_roll.clear()
        self._pre_roll_bytes = 0
        self._in_utterance = True
        # Decoding the kept audio takes tens of milliseconds: off the event loop, so the
        # rest of the pipeline keeps moving meanwhile.
        await asyncio.to_thread(self._begin, recent)

    def _begin(self, recent: bytes) -> None:
        self._decoder.start_utt()
        self._decoder.process_raw(recent)

    async def _finish_utterance(self) -> None:
        if not self._in_utterance:
            return
        self._in_utterance = False
        text = await asyncio.to_thread(self._end_and_read)
        if not text:
            return
        logger.debug(f"{self}: heard [{text}]")
        await self._handle_transcription(text, True, _ENGLISH)
        await self.push_frame(
            TranscriptionFrame(
                text=text,
                user_id=self._user_id,
                timestamp=time_now_iso8601(),
                language=_ENGLISH,
                finalized=True,
            )
        )

    @traced_stt  # an "stt" span per transcript when the task has enable_tracing=True
    async def _handle_transcription(
        self, transcript: str, is_final: bool, language: Language | None = None
    ) -> None:
        """Where Pipecat's STT services report a transcript; its tracing hangs on it."""

    def _end_and_read(self) -> str:
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return str(hypothesis.hypstr).strip() if hypothesis is not None else ""
