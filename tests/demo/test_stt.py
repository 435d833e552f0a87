"""The recogniser hears the caller's neural voice, inside a real Pipecat pipeline."""

from __future__ import annotations

import pytest

pytest.importorskip("pocketsphinx", reason="needs the [demo] extra")
pytest.importorskip("hibari", reason="needs the [demo] extra")

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.tests.utils import run_test

from pipecat_roark.demo.scenarios import SCENARIOS
from pipecat_roark.demo.scoring import word_error_rate
from pipecat_roark.demo.stt import PocketsphinxSTTService
from pipecat_roark.demo.voices import CallerVoice

RATE = 16000
FRAME_BYTES = RATE // 50 * 2


def _frames(audio: bytes) -> list[Frame]:
    return [
        InputAudioRawFrame(audio=audio[i : i + FRAME_BYTES], sample_rate=RATE, num_channels=1)
        for i in range(0, len(audio), FRAME_BYTES)
    ]


def _utterance(audio: bytes, *, vad_late_by_secs: float) -> list[Frame]:
    """Audio with the VAD's edges where a real VAD puts them: late at the start, after it."""
    late = int(vad_late_by_secs * RATE) * 2 // FRAME_BYTES
    speech = _frames(audio)
    silence = _frames(bytes(RATE))  # one second
    return [
        *silence,
        *speech[:late],
        VADUserStartedSpeakingFrame(),
        *speech[late:],
        *silence[:15],
        VADUserStoppedSpeakingFrame(),
        *silence[:5],
    ]


async def _transcripts(frames: list[Frame]) -> list[str]:
    down, _ = await run_test(PocketsphinxSTTService(), frames_to_send=frames)
    return [frame.text for frame in down if isinstance(frame, TranscriptionFrame)]


async def test_the_caller_is_heard_with_a_low_word_error_rate() -> None:
    voice = CallerVoice(sample_rate=RATE)
    script = SCENARIOS["booking"].caller_script
    heard: list[str] = []
    for line in script:
        transcripts = await _transcripts(_utterance(voice.speak(line).audio, vad_late_by_secs=0.3))
        heard.append(" ".join(transcripts))
    assert word_error_rate(script, heard) <= 0.15, heard


async def test_nothing_is_transcribed_without_speech_edges() -> None:
    audio = CallerVoice(sample_rate=RATE).speak("My name is Alex Morgan.").audio
    assert await _transcripts(_frames(audio)) == []


async def test_each_utterance_is_its_own_transcript() -> None:
    voice = CallerVoice(sample_rate=RATE)
    first = _utterance(voice.speak("My name is Alex Morgan.").audio, vad_late_by_secs=0.2)
    second = _utterance(voice.speak("Sorry to interrupt.").audio, vad_late_by_secs=0.2)
    transcripts = await _transcripts(first + second)
    assert len(transcripts) == 2
    assert word_error_rate(["My name is Alex Morgan.", "Sorry to interrupt."], transcripts) <= 0.15


async def test_transcripts_are_final_and_in_english() -> None:
    audio = CallerVoice(sample_rate=RATE).speak("My name is Alex Morgan.").audio
    down, _ = await run_test(
        PocketsphinxSTTService(), frames_to_send=_utterance(audio, vad_late_by_secs=0.2)
    )
    (frame,) = [f for f in down if isinstance(f, TranscriptionFrame)]
    assert frame.finalized
    assert str(frame.language).lower().startswith(("en", "language.en"))
