"""Believable calls sent over the protocol: two agents, prompt revisions, tool calls, metrics
and speech-like stereo audio, spread over the last days. The list, agent and trend tests
and the README's screenshots use them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from .live import Protocol

RATE = 16000
CHUNK_BYTES = 256 * 1024

BOOKING_PROMPTS = (
    "You book tables at Bella's bistro.\nBe brief.\nConfirm the time.",
    "You book tables at Bella's bistro.\nBe brief and warm.\nConfirm the time and the name.\n"
    "Offer the terrace when it is free.",
)
SUPPORT_PROMPT = "You help customers track their orders.\nAsk for the order number first."

SCRIPTS: tuple[tuple[str, list[tuple[str, str]]], ...] = (
    (
        "booking",
        [
            ("assistant", "Hello, this is Bella's bistro. How can I help?"),
            ("user", "Hi, I'd like a table for four tonight, around eight."),
            ("assistant", "Let me check... Yes, eight o'clock works. Which name?"),
            ("user", "Moreau, M O R E A U."),
            ("assistant", "Booked for four at eight under Moreau. Anything else?"),
            ("user", "No, that's all, thanks."),
            ("assistant", "See you tonight!"),
        ],
    ),
    (
        "support",
        [
            ("assistant", "Hi! I can help with your order. What's the order number?"),
            ("user", "It's 4 4 1 9 0."),
            ("assistant", "Thanks. Order 44190 left our warehouse yesterday and arrives Friday."),
            ("user", "Can it come on Thursday instead?"),
            ("assistant", "Unfortunately the courier"),
            ("user", "Actually, never mind, Friday is fine."),
            ("assistant", "Great. Anything else I can do?"),
        ],
    ),
)


@dataclass(frozen=True)
class Shown:
    call_id: str
    pipecat_call_id: str
    agent: str
    started: datetime


def _speech(seconds: float, seed: int) -> np.ndarray:
    """Noise shaped like syllables: a few beats a second, fading at the edges."""
    rng = np.random.default_rng(seed)
    count = int(RATE * seconds)
    t = np.arange(count) / RATE
    syllables = np.abs(np.sin(2 * np.pi * rng.uniform(3.0, 4.5) * t)) ** 1.5
    phrase = 0.6 + 0.4 * np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6))
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.08)
    voice = np.sin(2 * np.pi * rng.uniform(110, 220) * t) + 0.4 * rng.standard_normal(count)
    return 9000 * syllables * phrase * fade * voice / 1.6


def _stereo(turns: list[dict[str, Any]], total_ms: int, seed: int) -> bytes:
    frames = np.zeros((RATE * total_ms // 1000, 2), dtype=np.float64)
    for number, turn in enumerate(turns):
        channel = 0 if turn["role"] == "user" else 1
        start = turn["audioOffsetMs"] * RATE // 1000
        voice = _speech((turn["endAudioOffsetMs"] - turn["audioOffsetMs"]) / 1000, seed + number)
        end = min(start + len(voice), len(frames))
        frames[start:end, channel] += voice[: end - start]
    return np.clip(frames, -32767, 32767).astype("<i2").tobytes()


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def send_call(
    client: Protocol,
    pipecat_id: str,
    *,
    agent_id: str,
    agent_name: str,
    prompt: str,
    lines: list[tuple[str, str]],
    started: datetime,
    latencies: list[float],
    interrupt_at: int | None = None,
    reason: str = "client-disconnected",
    seed: int = 0,
    lost_chunk: int | None = None,
) -> Shown:
    """One call as the observer would send it, with audio, tool calls and metrics."""
    turns: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    at = 400
    for index, (role, text) in enumerate(lines):
        if role == "assistant" and turns:
            delay = latencies[len([m for m in metrics if m["kind"] == "turn_latency"])]
            at = turns[-1]["endAudioOffsetMs"] + int(delay * 1000)
            metrics.append(
                {
                    "kind": "turn_latency",
                    "value": delay,
                    "audioOffsetMs": at,
                    "userSpeechEndMs": turns[-1]["endAudioOffsetMs"],
                    "turnIndex": index,
                }
            )
        length = 280 + 55 * len(text.split())
        if interrupt_at == index:
            length //= 2
        turns.append(
            {
                "role": role,
                "content": text,
                "timestamp": _iso(started + timedelta(milliseconds=at)),
                "endTimestamp": _iso(started + timedelta(milliseconds=at + length)),
                "audioOffsetMs": at,
                "endAudioOffsetMs": at + length,
            }
        )
        if interrupt_at == index:
            metrics.append(
                {
                    "kind": "interruption",
                    "value": length / 1000,
                    "audioOffsetMs": at + length,
                    "botTurnOffsetMs": at,
                    "playedWords": 3,
                    "generatedWords": 9,
                    "playedFraction": 0.3333,
                }
            )
            at += length
        else:
            at += length + 500
    total_ms = at + 600
    lat = [m["value"] for m in metrics if m["kind"] == "turn_latency"]
    metrics.append(
        {
            "kind": "call_summary",
            "value": total_ms / 1000,
            "durationSeconds": total_ms / 1000,
            "responses": len(lat),
            "interruptions": int(interrupt_at is not None),
            "userTalkSeconds": sum(
                t["endAudioOffsetMs"] - t["audioOffsetMs"] for t in turns if t["role"] == "user"
            )
            / 1000,
            "botTalkSeconds": sum(
                t["endAudioOffsetMs"] - t["audioOffsetMs"]
                for t in turns
                if t["role"] == "assistant"
            )
            / 1000,
            "overlapSeconds": 0.0,
            "silenceSeconds": 3.1,
            "longestSilenceSeconds": 0.9,
            "botTalkRatio": 0.55,
        }
    )
    metrics += [
        {"kind": "ttfb", "value": 0.21, "processor": "OpenAILLMService#0", "model": "gpt-4o"},
        {"kind": "ttfb", "value": 0.12, "processor": "CartesiaTTSService#0"},
        {
            "kind": "llm_usage",
            "value": 612,
            "promptTokens": 540,
            "completionTokens": 72,
            "processor": "OpenAILLMService#0",
            "model": "gpt-4o",
        },
        {"kind": "tts_usage", "value": 188, "processor": "CartesiaTTSService#0"},
    ]
    tool_at = turns[2]["audioOffsetMs"] - 200
    tool_name = "check_availability" if "Bella" in prompt else "track_order"
    arguments = {"party_size": 4, "time": "20:00"} if "Bella" in prompt else {"order": "44190"}
    result = {"available": True, "table": 7} if "Bella" in prompt else {"eta": "Friday"}
    tools = [
        {
            "kind": "tool_call",
            "toolCallId": f"{pipecat_id}-t1",
            "name": tool_name,
            "arguments": json.dumps(arguments),
            "timestamp": _iso(started + timedelta(milliseconds=tool_at)),
            "audioOffsetMs": tool_at,
        },
        {
            "kind": "tool_result",
            "toolCallId": f"{pipecat_id}-t1",
            "content": json.dumps(result),
            "timestamp": _iso(started + timedelta(milliseconds=tool_at + 150)),
            "audioOffsetMs": tool_at + 150,
        },
    ]
    client.start(
        pipecat_id,
        eventTimestamp=_iso(started),
        agentId=agent_id,
        agentName=agent_name,
        agentPrompt=prompt,
    )
    pcm = _stereo(turns, total_ms, seed)
    for index, offset in enumerate(range(0, len(pcm), CHUNK_BYTES)):
        if index != lost_chunk:
            client.upload(pipecat_id, index, pcm[offset : offset + CHUNK_BYTES])
    call_id = client.end(
        pipecat_id,
        eventTimestamp=_iso(started + timedelta(milliseconds=total_ms)),
        callStartedAt=_iso(started),
        callEndedAt=_iso(started + timedelta(milliseconds=total_ms)),
        callEndedReason=reason,
        agentSpokeFirst=True,
        transcript=turns,
        toolCalls=tools,
        metrics=metrics,
    )
    return Shown(call_id, pipecat_id, agent_id, started)


def showcase(client: Protocol, *, days: int = 6) -> list[Shown]:
    """Two agents' calls over the last ``days`` days (two a day for the booking bot)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    shown: list[Shown] = []
    for day in range(days, -1, -1):
        for slot in range(2 if day % 3 else 1):
            started = now - timedelta(days=day, hours=3 * slot + 1)
            kind, lines = SCRIPTS[(day + slot) % 2]
            seed = day * 10 + slot
            base = 0.45 + 0.05 * (day % 4) + 0.03 * slot
            latencies = [round(base + 0.11 * i + 0.02 * (seed % 3), 3) for i in range(4)]
            if kind == "booking":
                prompt = BOOKING_PROMPTS[0 if day > 3 else 1]
                agent = ("booking-bot", "Booking bot")
            else:
                prompt = SUPPORT_PROMPT
                agent = ("support-bot", "Support bot")
            shown.append(
                send_call(
                    client,
                    f"show-{kind}-{day}-{slot}",
                    agent_id=agent[0],
                    agent_name=agent[1],
                    prompt=prompt,
                    lines=lines,
                    started=started,
                    latencies=latencies,
                    interrupt_at=4 if kind == "support" else None,
                    reason="client-disconnected" if slot == 0 else "agent-ended",
                    seed=seed,
                    lost_chunk=1 if (day, slot) == (2, 0) else None,
                )
            )
    # A call still under way: started, some audio, no call-ended yet.
    client.start(
        "show-live-call",
        eventTimestamp=_iso(now - timedelta(minutes=2)),
        agentId="booking-bot",
        agentName="Booking bot",
        agentPrompt=BOOKING_PROMPTS[1],
    )
    client.upload("show-live-call", 0, _stereo([], 2000, 99))
    return shown
