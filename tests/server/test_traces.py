"""The OTLP/HTTP trace receiver: Pipecat's spans joined to their call by conversation id.

Bodies are built with the official ``opentelemetry-proto`` messages, as an exporter
builds them: a trace's turn and service spans first, its conversation span last.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
from datetime import datetime
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipecat_roark.server.settings import ServerSettings
from tests.server.conftest import open_harness
from tests.server.harness import Harness

T0_NS = int(datetime.fromisoformat("2026-01-01T12:00:00+00:00").timestamp() * 1e9)
PROTOBUF = {"content-type": "application/x-protobuf"}


def span(
    trace: bytes,
    span_id: bytes,
    name: str,
    start_ms: int,
    end_ms: int,
    parent: bytes = b"",
    **attrs: Any,
) -> dict[str, Any]:
    return {
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "start_time_unix_nano": T0_NS + start_ms * 1_000_000,
        "end_time_unix_nano": T0_NS + end_ms * 1_000_000,
        "attributes": [{"key": k, "value": {"string_value": str(v)}} for k, v in attrs.items()],
    }


def export(*spans: dict[str, Any]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for item in spans:
        scope.spans.add(**item)
    return request


def a_trace(call_id: str) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest]:
    """(turn, stt, llm, tts spans; then the conversation span), as Pipecat exports them."""
    trace = os.urandom(16)
    conversation, turn = os.urandom(8), os.urandom(8)
    early = export(
        span(trace, turn, "turn", 3000, 5000, conversation, **{"turn.number": 1}),
        span(trace, os.urandom(8), "stt", 3900, 4100, turn, model="sphinx"),
        span(trace, os.urandom(8), "llm", 4100, 4400, turn, **{"gen_ai.request.model": "scripted"}),
        span(trace, os.urandom(8), "tts", 4400, 4700, turn),
    )
    last = export(
        span(trace, conversation, "conversation", 0, 60000, **{"conversation.id": call_id})
    )
    return early, last


async def post(server: Harness, body: bytes, headers: dict[str, str]) -> Any:
    return await server.client.post("/v1/traces", content=body, headers=server.headers | headers)


async def spans_of(server: Harness, call_id: str) -> list[dict[str, Any]]:
    answer = await server.get(f"/v1/call/{await server.call_id(call_id)}/spans")
    assert answer.status_code == 200, answer.text
    spans: list[dict[str, Any]] = answer.json()["data"]["spans"]
    return spans


async def test_spans_before_call_started_and_after_call_ended_are_joined(server: Harness) -> None:
    before, before_last = a_trace("call-traced")
    after, after_last = a_trace("call-traced")
    # Before the call exists: protobuf, the conversation span in a later batch.
    assert (await post(server, before.SerializeToString(), PROTOBUF)).status_code == 200
    answer = await post(server, before_last.SerializeToString(), PROTOBUF)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    assert (await server.start("call-traced")).status_code == 200
    assert (await server.end("call-traced")).status_code == 200
    # After call-ended: OTLP/JSON (hex ids), gzipped.
    for request in (after, after_last):
        body = json.dumps(_otlp_json(request)).encode()
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        answer = await post(server, gzip.compress(body), headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {}
    spans = await spans_of(server, "call-traced")
    assert sorted(s["name"] for s in spans) == sorted(
        ["conversation", "turn", "stt", "llm", "tts"] * 2
    )
    turns = {s["spanId"] for s in spans if s["name"] == "turn"}
    for service in (s for s in spans if s["name"] in ("stt", "llm", "tts")):
        assert service["parentSpanId"] in turns
    llm = next(s for s in spans if s["name"] == "llm")
    assert llm["attributes"]["gen_ai.request.model"] == "scripted"
    # On the recording's axis: the transcript's first turn is at 500 ms, 12:00:00.5.
    assert (llm["audioOffsetMs"], llm["endAudioOffsetMs"]) == (4100, 4400)
    # A retried batch is kept once.
    assert (await post(server, before.SerializeToString(), PROTOBUF)).status_code == 200
    assert len(await spans_of(server, "call-traced")) == 10


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"\xff\xff\xff not protobuf", PROTOBUF),
        (b"{not json", {"content-type": "application/json"}),
        (b'{"resourceSpans": 7}', {"content-type": "application/json"}),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            {"content-type": "application/json"},
        ),
        (b"plain", {"content-type": "text/plain"}),
        (b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}),
        (gzip.compress(b"\x0a\x05short", mtime=0), {**PROTOBUF, "content-encoding": "gzip"}),
        (
            export({"trace_id": b"\x01", "span_id": b"\x02", "name": "x"}).SerializeToString(),
            PROTOBUF,
        ),
    ],
    ids=[
        "not-protobuf",
        "not-json",
        "json-not-a-list",
        "json-bad-trace-id",
        "text-plain",
        "not-gzip",
        "gzip-of-short-protobuf",
        "ids-of-wrong-length",
    ],
)
async def test_malformed_otlp_is_a_400(
    sqlite_server: Harness, body: bytes, headers: dict[str, str]
) -> None:
    answer = await post(sqlite_server, body, headers)
    assert answer.status_code == 400, answer.text
    assert "invalid_otlp" in answer.text


async def test_a_bomb_is_refused(sqlite_server: Harness) -> None:
    bomb = gzip.compress(b"\x00" * (17 * 1024 * 1024))
    answer = await post(sqlite_server, bomb, {**PROTOBUF, "content-encoding": "gzip"})
    assert answer.status_code in (400, 413)


async def test_no_key_no_spans(sqlite_server: Harness) -> None:
    early, _ = a_trace("x")
    answer = await sqlite_server.client.post(
        "/v1/traces", content=early.SerializeToString(), headers=PROTOBUF
    )
    assert answer.status_code == 401


async def test_unknown_conversations_are_kept_a_while_then_dropped_and_counted(
    sqlite_settings: ServerSettings,
) -> None:
    settings = sqlite_settings.replace(trace_orphan_ttl=1.0)
    async for server in open_harness(settings):
        ghost_early, ghost_last = a_trace("no-such-call")
        waiting, waiting_last = a_trace("call-late")
        for request in (ghost_early, ghost_last, waiting):
            assert (await post(server, request.SerializeToString(), PROTOBUF)).status_code == 200
        await asyncio.sleep(0.5)
        # Within the TTL, the call and the conversation span arrive: the trace is claimed.
        assert (await server.start("call-late")).status_code == 200
        await post(server, waiting_last.SerializeToString(), PROTOBUF)
        await asyncio.sleep(1.1)
        await post(server, export().SerializeToString(), PROTOBUF)  # the sweep runs
        stats = (await server.get("/v1/traces/stats")).json()["data"]
        assert stats["droppedSpans"] == 5  # the ghost's turn, stt, llm, tts, conversation
        assert len(await spans_of(server, "call-late")) == 5


def _otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON: protobuf's JSON mapping with hex trace and span ids."""
    data = json_format.MessageToDict(request)
    for resource in data.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for item in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = base64.b64decode(item[key]).hex()
    return data
