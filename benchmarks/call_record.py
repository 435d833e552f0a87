"""What the observer sends about a call, for the backend benchmarks: call-ended of any length.

Shaped as this project's observer sends it for the synthetic call of the observer
benchmarks (``benchmarks.call``): an exchange every 10 s (the caller speaks 2.4 s, the bot
answers 0.8 s later for 3.5 s), the services' metrics of each turn (LLM and TTS time to
first byte, LLM processing and tokens, TTS characters), end of turn and response latency,
an interruption every five minutes, a tool call and its result every minute, and the
call's summary.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

__all__ = ["call_ended", "call_started"]

_EXCHANGE_MS = 10_000
_USER_MS = 2_400
_LATENCY_MS = 800
_BOT_MS = 3_500
_ANSWERS = (
    "Sure, I can help with that; your order ships today from our main warehouse.",
    "Thanks for waiting. The courier has it now and it should arrive by Friday.",
    "I have updated the delivery address; you will get a confirmation by email.",
)


def call_started(call_id: str, started: datetime, *, agent: str = "support-bot") -> dict[str, Any]:
    return {
        "event": "call-started",
        "pipecatCallId": call_id,
        "eventTimestamp": started.isoformat(),
        "agentId": agent,
        "agentName": "Support bot",
        "agentPrompt": "You help customers track their orders.\nAsk for the order number first.",
    }


def call_ended(
    call_id: str, started: datetime, minutes: float, *, rate: int = 16000, channels: int = 2
) -> dict[str, Any]:
    """The call-ended body of a call of ``minutes`` minutes that started at ``started``."""

    def at(offset_ms: int) -> str:
        return (started + timedelta(milliseconds=offset_ms)).isoformat()

    duration_ms = int(minutes * 60_000)
    transcript: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    latencies: list[float] = []
    exchanges = duration_ms // _EXCHANGE_MS
    for number in range(exchanges):
        user_at = number * _EXCHANGE_MS
        bot_at = user_at + _USER_MS + _LATENCY_MS
        interrupted = number % 30 == 29
        bot_ms = _BOT_MS // 2 if interrupted else _BOT_MS
        user_index = len(transcript)
        transcript.append(
            {
                "role": "user",
                "content": f"I would like to check on order {4000 + number}, please.",
                "timestamp": at(user_at),
                "endTimestamp": at(user_at + _USER_MS),
                "audioOffsetMs": user_at,
                "endAudioOffsetMs": user_at + _USER_MS,
                "userId": "caller",
            }
        )
        transcript.append(
            {
                "role": "assistant",
                "content": _ANSWERS[number % len(_ANSWERS)],
                "timestamp": at(bot_at),
                "endTimestamp": at(bot_at + bot_ms),
                "audioOffsetMs": bot_at,
                "endAudioOffsetMs": bot_at + bot_ms,
            }
        )
        released = user_at + _USER_MS + 20
        for kind, processor, model, value in (
            ("ttfb", "OpenAILLMService#0", "gpt-4o", 0.42),
            ("processing", "OpenAILLMService#0", "gpt-4o", 0.61),
            ("ttfb", "CartesiaTTSService#0", "sonic-2", 0.18),
        ):
            metrics.append(
                {
                    "kind": kind,
                    "processor": processor,
                    "model": model,
                    "value": value,
                    "timestamp": at(released),
                    "audioOffsetMs": released,
                }
            )
        metrics.append(
            {
                "kind": "llm_usage",
                "processor": "OpenAILLMService#0",
                "model": "gpt-4o",
                "promptTokens": 820 + 40 * number,
                "completionTokens": 24,
                "value": 844 + 40 * number,
                "timestamp": at(released),
                "audioOffsetMs": released,
            }
        )
        metrics.append(
            {
                "kind": "tts_usage",
                "processor": "CartesiaTTSService#0",
                "model": "sonic-2",
                "value": len(_ANSWERS[number % len(_ANSWERS)]),
                "timestamp": at(released),
                "audioOffsetMs": released,
            }
        )
        metrics.append(
            {
                "kind": "end_of_turn",
                "value": 0.02,
                "audioOffsetMs": user_at + _USER_MS,
                "timestamp": at(user_at + _USER_MS),
                "turnIndex": user_index,
            }
        )
        latencies.append(_LATENCY_MS / 1000)
        metrics.append(
            {
                "kind": "turn_latency",
                "value": _LATENCY_MS / 1000,
                "audioOffsetMs": bot_at,
                "userSpeechEndMs": user_at + _USER_MS,
                "timestamp": at(bot_at),
                "turnIndex": user_index + 1,
            }
        )
        if interrupted:
            metrics.append(
                {
                    "kind": "interruption",
                    "audioOffsetMs": bot_at + bot_ms,
                    "timestamp": at(bot_at + bot_ms),
                    "playedWords": 6,
                    "generatedWords": 13,
                    "playedFraction": 0.4615,
                    "botTurnOffsetMs": bot_at,
                    "value": bot_ms / 1000,
                }
            )
        if number % 6 == 5:
            tool_at = user_at + _USER_MS + 300
            tools += [
                {
                    "kind": "tool_call",
                    "toolCallId": f"tool-{number}",
                    "name": "lookup_order",
                    "arguments": json.dumps({"order": 4000 + number}),
                    "timestamp": at(tool_at),
                    "audioOffsetMs": tool_at,
                },
                {
                    "kind": "tool_result",
                    "toolCallId": f"tool-{number}",
                    "content": json.dumps({"status": "shipped", "order": 4000 + number}),
                    "timestamp": at(tool_at + 40),
                    "audioOffsetMs": tool_at + 40,
                },
            ]
    talk_user = exchanges * _USER_MS / 1000
    talk_bot = sum(t["endAudioOffsetMs"] - t["audioOffsetMs"] for t in transcript[1::2]) / 1000
    metrics.append(
        {
            "kind": "call_summary",
            "audioOffsetMs": 0,
            "timestamp": at(0),
            "value": duration_ms / 1000,
            "durationSeconds": duration_ms / 1000,
            "responses": len(latencies),
            "interruptions": exchanges // 30,
            "userTalkSeconds": talk_user,
            "botTalkSeconds": talk_bot,
            "overlapSeconds": 0.0,
            "silenceSeconds": duration_ms / 1000 - talk_user - talk_bot,
            "longestSilenceSeconds": 3.7,
            "botTalkRatio": round(talk_bot / max(talk_user + talk_bot, 1e-9), 4),
        }
    )
    return {
        "event": "call-ended",
        "pipecatCallId": call_id,
        "eventTimestamp": at(duration_ms),
        "callStartedAt": at(0),
        "callEndedAt": at(duration_ms),
        "callEndedReason": "client-disconnected",
        "agentSpokeFirst": False,
        "recordingSampleRate": rate,
        "recordingNumChannels": channels,
        "transcript": transcript,
        "toolCalls": tools,
        "metrics": metrics,
    }
