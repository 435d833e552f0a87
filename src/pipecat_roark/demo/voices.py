"""The demo call's two voices, both shipped inside packages so nothing is fetched at run time.

The caller's speech is recognised, so it needs a natural voice: hibari's bundled neural
voice (pocketsphinx hears espeak-ng's robotic English badly). The bot is only listened to,
so espeak-ng's library from ``espeakng-loader`` is enough, and it reports where each word
starts, which the bot's TTS service turns into word frames.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

__all__ = ["BotVoice", "CallerVoice", "Speech", "SpokenWord", "float_to_pcm16", "trim_silence"]

PCM_SAMPLE_WIDTH = 2


@dataclass(frozen=True)
class SpokenWord:
    """A word of synthesised speech and where its audio starts."""

    text: str
    start_secs: float


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: 16-bit mono PCM, and its words when the voice reports them."""

    audio: bytes
    sample_rate: int
    words: tuple[SpokenWord, ...] = field(default=())

    @property
    def num_samples(self) -> int:
        return len(self.audio) // PCM_SAMPLE_WIDTH

    @property
    def duration_secs(self) -> float:
        return self.num_samples / self.sample_rate


def float_to_pcm16(samples: np.ndarray[Any, Any]) -> bytes:
    """Float samples in [-1, 1] to 16-bit little-endian PCM (clipped, as models overshoot)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return bytes((clipped * 32767.0).astype("<i2").tobytes())


def trim_silence(samples: np.ndarray[Any, Any], threshold: float = 0.01) -> np.ndarray[Any, Any]:
    """Float samples without their leading and trailing near-silence."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if not len(loud):
        return samples[:0]
    return samples[loud[0] : loud[-1] + 1]


class CallerVoice:
    """The caller: hibari's bundled US English voice, seeded so every run sounds the same."""

    def __init__(self, *, sample_rate: int = 16000, seed: int = 7) -> None:
        from hibari import SAMPLE_RATE, Hibari
        from hibari.voices import voice_path

        # Only the bundled voice: any other hibari voice is downloaded on first use.
        model = voice_path("heart", download_missing=False)
        self._tts = Hibari(voice="heart", model=model)
        self._native_rate = int(SAMPLE_RATE)
        self._seed = seed
        self.sample_rate = sample_rate

    def speak(self, text: str) -> Speech:
        """The line's speech, without the silence the model puts around it.

        Trimmed so that where the caller's transport places a line is where its speech is.
        """
        samples = trim_silence(self._tts(text, seed=self._seed))
        if self.sample_rate != self._native_rate:
            samples = soxr.resample(samples, self._native_rate, self.sample_rate)
        return Speech(float_to_pcm16(samples), self.sample_rate)


class BotVoice:
    """The bot: espeak-ng driven through ctypes, resampled to the pipeline's rate."""

    def __init__(self, *, sample_rate: int = 16000, voice: str = "en-us+m3") -> None:
        self.sample_rate = sample_rate
        self.voice = voice

    def speak(self, text: str) -> Speech:
        pcm, native_rate, word_samples = _espeak().synthesize(text, self.voice)
        audio = np.frombuffer(pcm, dtype="<i2")
        if native_rate != self.sample_rate and len(audio):
            audio = soxr.resample(audio, native_rate, self.sample_rate)
        words = tuple(
            SpokenWord(word, sample / native_rate) for word, sample in word_samples if word
        )
        return Speech(audio.astype("<i2").tobytes(), self.sample_rate, words)


# --- espeak-ng through ctypes -------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


class _Espeak:
    """The espeak-ng library: one per process (its state is global), used under a lock."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise")
        self._lib = lib
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._word_offsets: list[tuple[int, int]] = []  # (byte offset in text, sample)
        # Kept on the instance: ctypes must not collect a callback the library still holds.
        self._callback = _SynthCallback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: Any, num_samples: int, events: Any) -> int:
        if num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, num_samples * PCM_SAMPLE_WIDTH))
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                self._word_offsets.append((event.text_position - 1, event.sample))
            index += 1
        return 0

    def synthesize(self, text: str, voice: str) -> tuple[bytes, int, list[tuple[str, int]]]:
        """PCM at the library's rate, and each whitespace-separated word with its first sample."""
        encoded = text.encode("utf-8")
        with self._lock:
            self._chunks, self._word_offsets = [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self._lib.espeak_Synth(
                encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            self._lib.espeak_Synchronize()
            pcm, offsets = b"".join(self._chunks), list(self._word_offsets)
        return pcm, self.sample_rate, _place_words(encoded, offsets)


def _place_words(encoded: bytes, offsets: list[tuple[int, int]]) -> list[tuple[str, int]]:
    """Every word of the text, timed by the first espeak word event inside it.

    espeak may split a token ("7:30") or skip one ("-"); keeping the text's own words means
    the words the bot says add up to exactly the text it was given.
    """
    words: list[tuple[str, int]] = []
    starts: list[int] = []
    position = 0
    for token in encoded.split():
        start = encoded.index(token, position)
        position = start + len(token)
        words.append((token.decode("utf-8", "replace"), -1))
        starts.append(start)
    timed = [-1] * len(words)
    for byte_offset, sample in offsets:
        for index in range(len(words) - 1, -1, -1):
            if starts[index] <= byte_offset:
                if timed[index] < 0:
                    timed[index] = sample
                break
    last = 0
    placed: list[tuple[str, int]] = []
    for (word, _), sample in zip(words, timed, strict=True):
        last = max(last, sample)
        placed.append((word, last))
    return placed


_library: _Espeak | None = None
_library_lock = threading.Lock()


def _espeak() -> _Espeak:
    global _library
    with _library_lock:
        if _library is None:
            _library = _Espeak()
        return _library
