"""The bot's voice as a Pipecat TTS service: espeak-ng, with word timestamps.

Each word's text is handed to Pipecat just before that word's audio, so the word frames
travel with the audio and only the words that were actually played reach the context
(and the observer) when the caller barges in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.transcriptions.language import Language
from pipecat.utils.tracing.service_decorators import traced_tts

from ._compat import fill_unset_settings
from .voices import PCM_SAMPLE_WIDTH, BotVoice, Speech, SpokenWord

__all__ = ["EspeakTTSService"]

MODEL_NAME = "espeak-ng"


class EspeakTTSService(TTSService):
    """Speaks the bot's replies with espeak-ng (from ``espeakng-loader``), fully offline."""

    def __init__(self, *, voice: str = "en-us+m3", **kwargs: Any) -> None:
        super().__init__(
            push_text_frames=False,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=MODEL_NAME, voice=voice, language=Language.EN_US),
            **kwargs,
        )
        fill_unset_settings(self._settings)
        self._voice_name = voice
        self._voice: BotVoice | None = None

    def can_generate_metrics(self) -> bool:
        return True

    @traced_tts  # a "tts" span per utterance when the task has enable_tracing=True
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        logger.debug(f"{self}: speaking [{text}]")
        try:
            await self.start_tts_usage_metrics(text)
            speech = await asyncio.to_thread(self._bot_voice().speak, text)
        except Exception as exc:
            logger.error(f"{self}: espeak-ng failed: {exc}")
            yield ErrorFrame(error=f"espeak-ng failed: {exc}")
            return
        await self.stop_ttfb_metrics()
        for word, audio in _word_slices(speech):
            if word is not None:
                await self.add_word_timestamps([(word.text, word.start_secs)], context_id)
            if audio:
                yield TTSAudioRawFrame(audio, speech.sample_rate, 1, context_id=context_id)

    def _bot_voice(self) -> BotVoice:
        if self._voice is None or self._voice.sample_rate != self.sample_rate:
            self._voice = BotVoice(sample_rate=self.sample_rate, voice=self._voice_name)
        return self._voice


def _word_slices(speech: Speech) -> list[tuple[SpokenWord | None, bytes]]:
    """Each word with the audio from its start to the next word's (the first from 0)."""
    if not speech.words:
        return [(None, speech.audio)]
    bounds = [round(word.start_secs * speech.sample_rate) for word in speech.words]
    bounds[0] = 0
    bounds.append(speech.num_samples)
    slices: list[tuple[SpokenWord | None, bytes]] = []
    for index, word in enumerate(speech.words):
        start, end = bounds[index], max(bounds[index], bounds[index + 1])
        slices.append((word, speech.audio[start * PCM_SAMPLE_WIDTH : end * PCM_SAMPLE_WIDTH]))
    return slices
