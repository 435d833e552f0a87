"""Helpers for observer tests: an observer aimed at the test backend, protocol checks, PCM."""

from __future__ import annotations

import struct
from typing import Any

from pipecat_roark import RoarkObserver
from pipecat_roark.wire import CallEnded, CallStarted, ChunkUploadUrlRequest
from tests.support.backend import RecordingBackend

RATE = 16000


def observer_for(backend: RecordingBackend, **kwargs: Any) -> RoarkObserver:
    kwargs.setdefault("api_key", "rk_test_key")
    kwargs.setdefault("agent_id", "agent-under-test")
    kwargs.setdefault("flush_timeout", 5.0)
    return RoarkObserver(base_url=backend.url, **kwargs)


def assert_protocol(backend: RecordingBackend) -> None:
    """Every request the observer sent matches the shared protocol types, strictly."""
    models = {
        "call-started": CallStarted,
        "call-ended": CallEnded,
        "presign": ChunkUploadUrlRequest,
    }
    for request in backend.requests:
        model = models.get(request.kind)
        if model is not None:
            model.model_validate(request.body)
        if request.kind == "upload":
            assert "authorization" not in {k.lower() for k in request.headers}
            assert "x-roark-api-key" not in {k.lower() for k in request.headers}
            assert request.headers.get("Content-Type") == "audio/pcm"
        else:
            assert request.headers.get("x-roark-api-key") == request.headers[
                "Authorization"
            ].removeprefix("Bearer ")


def roles_and_texts(call_ended: dict[str, Any]) -> list[tuple[str, str]]:
    return [(turn["role"], turn["content"]) for turn in call_ended.get("transcript", [])]


def channel(pcm: bytes, index: int, channels: int = 2) -> list[int]:
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    return list(samples[index::channels])


def speech_spans(
    samples: list[int], *, rate: int = RATE, window_ms: int = 10, gap_ms: int = 100
) -> list[tuple[int, int]]:
    """Where a channel has sound, as (start_ms, end_ms), pauses shorter than gap_ms bridged."""
    window = rate * window_ms // 1000
    spans: list[list[int]] = []
    for start in range(0, len(samples), window):
        if max((abs(s) for s in samples[start : start + window]), default=0) > 500:
            at = start * 1000 // rate
            if spans and at - spans[-1][1] <= gap_ms:
                spans[-1][1] = at + window_ms
            else:
                spans.append([at, at + window_ms])
    return [(a, b) for a, b in spans]
