"""The two voices produce real speech of a plausible length, and the bot's words add up."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hibari", reason="needs the [demo] extra")
pytest.importorskip("espeakng_loader", reason="needs the [demo] extra")

from pipecat_roark.demo.voices import (
    BotVoice,
    CallerVoice,
    float_to_pcm16,
    trim_silence,
)

SENTENCE = "Good evening, I would like to book a table for two tomorrow at seven."


@pytest.fixture(scope="module")
def caller() -> CallerVoice:
    return CallerVoice(sample_rate=16000)


def _samples(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2").astype(np.float64)


def test_caller_voice_speaks_a_sentence_at_a_natural_pace(caller: CallerVoice) -> None:
    speech = caller.speak(SENTENCE)
    words = len(SENTENCE.split())
    assert speech.sample_rate == 16000
    assert len(speech.audio) % 2 == 0
    # People speak between one and a half and five words a second.
    assert words / 5 < speech.duration_secs < words / 1.5
    assert np.sqrt(np.mean(_samples(speech.audio) ** 2)) > 1000


def test_caller_voice_is_the_same_every_time(caller: CallerVoice) -> None:
    assert (
        caller.speak("My name is Alex Morgan.").audio
        == caller.speak("My name is Alex Morgan.").audio
    )


def test_caller_voice_starts_and_ends_with_speech(caller: CallerVoice) -> None:
    samples = np.abs(_samples(caller.speak("My name is Alex Morgan.").audio))
    twenty_ms = 320
    assert samples[:twenty_ms].max() > 300
    assert samples[-twenty_ms:].max() > 300


def test_bot_voice_speaks_every_word_of_the_text_in_order() -> None:
    text = "Good news, we have a table for 2 at 7:30 - shall I book it?"
    speech = BotVoice(sample_rate=16000).speak(text)
    assert [word.text for word in speech.words] == text.split()
    starts = [word.start_secs for word in speech.words]
    assert starts == sorted(starts)
    assert starts[-1] < speech.duration_secs
    assert len(text.split()) / 5 < speech.duration_secs < len(text.split()) / 1.5


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_bot_voice_is_resampled_to_the_pipeline_rate(rate: int) -> None:
    at_16k = BotVoice(sample_rate=16000).speak("Thank you for calling.")
    speech = BotVoice(sample_rate=rate).speak("Thank you for calling.")
    assert speech.sample_rate == rate
    assert speech.duration_secs == pytest.approx(at_16k.duration_secs, abs=0.01)


def test_bot_voice_rejects_an_unknown_espeak_voice() -> None:
    with pytest.raises(ValueError, match="no voice"):
        BotVoice(voice="xx-nope").speak("Hello.")


def test_float_audio_is_clipped_to_int16() -> None:
    pcm = float_to_pcm16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], dtype=np.float32))
    assert list(np.frombuffer(pcm, dtype="<i2")) == [-32767, -32767, 0, 16383, 32767, 32767]


def test_trimming_keeps_only_the_loud_middle() -> None:
    samples = np.array([0.0, 0.001, 0.5, 0.0, -0.4, 0.002, 0.0])
    assert list(trim_silence(samples)) == [0.5, 0.0, -0.4]
    assert len(trim_silence(np.zeros(10))) == 0
