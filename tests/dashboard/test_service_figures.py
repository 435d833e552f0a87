"""A figure a service does not report is left out, not shown as 0 (the demo's TTS service
reports no usage unless the pipeline enables usage metrics)."""

from __future__ import annotations

from typing import Any

from .live import Protocol


def _call(client: Protocol, pipecat_id: str, metrics: list[dict[str, Any]]) -> str:
    client.start(pipecat_id)
    return client.end(pipecat_id, metrics=metrics)


TIMINGS = [
    {"kind": "ttfb", "value": 0.21, "processor": "DemoTTSService#0"},
    {"kind": "processing", "value": 0.4, "processor": "DemoLLMService#0", "model": "m"},
]


def test_usage_a_service_never_reported_is_hidden(acme: Protocol) -> None:
    call_id = _call(acme, "no-usage-call", TIMINGS)
    services = {s["processor"]: s for s in acme.get(f"/calls/{call_id}.json")["services"]}
    assert services["DemoTTSService#0"]["ttsCharacters"] is None
    assert services["DemoLLMService#0"]["promptTokens"] is None
    page = acme.http.get(f"/calls/{call_id}").text
    assert "TTS characters" not in page
    assert "Tokens in / out" not in page
    assert "enable_usage_metrics=True" in page


def test_usage_a_service_reported_is_shown(acme: Protocol) -> None:
    usage = [
        {"kind": "tts_usage", "value": 42, "processor": "DemoTTSService#0"},
        {
            "kind": "llm_usage",
            "processor": "DemoLLMService#0",
            "model": "m",
            "value": 30,
            "promptTokens": 20,
            "completionTokens": 10,
        },
    ]
    call_id = _call(acme, "usage-call", TIMINGS + usage)
    services = {s["processor"]: s for s in acme.get(f"/calls/{call_id}.json")["services"]}
    assert services["DemoTTSService#0"]["ttsCharacters"] == 42
    assert services["DemoLLMService#0"]["promptTokens"] == 20
    page = acme.http.get(f"/calls/{call_id}").text
    assert "TTS characters" in page
    assert ">42<" in page
    assert ">20 / 10<" in page
