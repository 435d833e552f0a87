"""One bad value never loses a call: it is made storable, reported, and every read answers.

Each class of value that a database cannot hold (NUL, lone surrogates, NaN and Infinity,
timestamps outside years 1-9999, JSON nested thousands deep) is sent at every field of
call-started, call-ended and tool calls that can carry it, to SQLite and to PostgreSQL at
once; both must store the call, answer every read of it with 200, and hold the same values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from pipecat_roark.delivery.client import BackendClient
from pipecat_roark.server.embed import ensure_project_key, serve_in_background
from pipecat_roark.server.sanitise import MAX_DEPTH, REPLACEMENT
from pipecat_roark.server.settings import ServerSettings

from .conftest import base_settings, open_harness
from .harness import EVENTS, Harness, ended, started
from .services import PostgresCluster

Body = dict[str, Any]
Mutation = Callable[[Body, Body], None]


def tool_records() -> list[Body]:
    return [
        {
            "kind": "tool_call",
            "toolCallId": "call-1",
            "name": "lookup_order",
            "arguments": '{"order": 42}',
            "timestamp": "2026-01-01T12:00:05+00:00",
            "audioOffsetMs": 5000,
        },
        {
            "kind": "tool_result",
            "toolCallId": "call-1",
            "content": '{"status": "shipped"}',
            "timestamp": "2026-01-01T12:00:06+00:00",
        },
    ]


def metric_records() -> list[Body]:
    return [
        {
            "kind": "ttfb",
            "processor": "OpenAILLMService#0",
            "model": "gpt-4o",
            "value": 0.25,
            "timestamp": "2026-01-01T12:00:07+00:00",
            "note": "first",
        }
    ]


def full_call(call_id: str) -> tuple[Body, Body]:
    start = started(call_id, agentPrompt="You are a helpful agent.")
    start["agentId"] = f"agent-{call_id}"
    end = ended(call_id, toolCalls=tool_records(), metrics=metric_records())
    end["transcript"][0]["userId"] = "user-7"
    end["transcript"][0]["language"] = "en-US"
    return start, end


def setter(*path: str | int) -> Callable[[Any], Mutation]:
    """A mutation that puts a value at ``path``; the first step picks the body."""

    def with_value(value: Any) -> Mutation:
        def mutate(start: Body, end: Body) -> None:
            target: Any = start if path[0] == "start" else end
            for step in path[1:-1]:
                target = target[step]
            target[path[-1]] = value

        return mutate

    return with_value


TEXT_FIELDS = {
    "start.agentId": setter("start", "agentId"),
    "start.agentName": setter("start", "agentName"),
    "start.agentPrompt": setter("start", "agentPrompt"),
    "end.callEndedReason": setter("end", "callEndedReason"),
    "end.transcript.content": setter("end", "transcript", 0, "content"),
    "end.transcript.userId": setter("end", "transcript", 0, "userId"),
    "end.transcript.language": setter("end", "transcript", 0, "language"),
    "end.transcript.timestamp": setter("end", "transcript", 0, "timestamp"),
    "end.toolCalls.toolCallId": setter("end", "toolCalls", 0, "toolCallId"),
    "end.toolCalls.name": setter("end", "toolCalls", 0, "name"),
    "end.toolCalls.arguments": setter("end", "toolCalls", 0, "arguments"),
    "end.toolResult.toolCallId": setter("end", "toolCalls", 1, "toolCallId"),
    "end.toolResult.content": setter("end", "toolCalls", 1, "content"),
    "end.toolResult.timestamp": setter("end", "toolCalls", 1, "timestamp"),
    "end.metrics.kind": setter("end", "metrics", 0, "kind"),
    "end.metrics.processor": setter("end", "metrics", 0, "processor"),
    "end.metrics.model": setter("end", "metrics", 0, "model"),
    "end.metrics.extra": setter("end", "metrics", 0, "note"),
}


def raw_json(body: Body) -> bytes:
    """The body as Python's ``json`` writes it: lone surrogates escaped, NaN as ``NaN``."""
    return json.dumps(body).encode()


@pytest.fixture
async def both(tmp_path: Path, postgres: PostgresCluster) -> AsyncIterator[list[Harness]]:
    """The same app on SQLite and on PostgreSQL, side by side."""
    sqlite = base_settings(tmp_path / "sqlite")
    pg = base_settings(tmp_path / "pg").replace(database_url=postgres.create_database())
    async for first in open_harness(sqlite):
        async for second in open_harness(pg):
            yield [first, second]


async def send(server: Harness, start: Body, end: Body) -> list[dict[str, Any]]:
    """Both lifecycle events as raw JSON; the warnings they were answered with."""
    warnings: list[dict[str, Any]] = []
    for body in (start, end):
        answer = await server.client.post(
            EVENTS,
            content=raw_json(body),
            headers={**server.headers, "content-type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        warnings.extend(answer.json()["warnings"])
    return warnings


def comparable(value: Any) -> Any:
    """A read with the server-made ids and clock times left out."""
    volatile = {"id", "callId", "projectId", "createdAt", "updatedAt", "agentId", "recordingUrl"}
    volatile |= {"promptRevisionId", "participantId", "stitchedAt"}
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


async def every_read(server: Harness, pipecat_call_id: str) -> dict[str, Any]:
    """Every read of the call, each asserted 200; the JSON ones, for comparison."""
    call_uuid = await server.call_id(pipecat_call_id)
    reads: dict[str, Any] = {}
    for path in (
        f"/v1/call/{call_uuid}",
        f"/v1/call/{call_uuid}/transcript",
        f"/v1/call/{call_uuid}/pipecat",
        f"/calls/{call_uuid}.json",
        f"/calls/{call_uuid}",
        "/v1/call",
        "/calls",
        "/calls.json",
    ):
        answer = await server.get(path)
        assert answer.status_code == 200, (path, answer.text[:2000])
        if path.startswith("/v1/call/"):
            reads[path.replace(call_uuid, "{id}")] = answer.json()
    agent = (await server.details(call_uuid))["agentId"]
    listing = await server.get("/v1/agent", limit=100)
    assert listing.status_code == 200, listing.text
    for found in listing.json()["data"]:
        if found["customId"] == agent:
            for path in (f"/v1/agent/{found['id']}", f"/v1/agent/{found['id']}/prompt-revisions"):
                answer = await server.get(path)
                assert answer.status_code == 200, answer.text
                reads[path.replace(found["id"], "{agent}")] = answer.json()
            for path in (f"/agents/{found['id']}", f"/agents/{found['id']}.json"):
                assert (await server.get(path)).status_code == 200, path
    return reads


async def stored_alike(
    both: list[Harness], mutation: Mutation, call_id: str | None = None
) -> list[list[dict[str, Any]]]:
    """Send one call with ``mutation`` applied to both servers; the warnings of each.

    Asserts that both stored it, answer every read with 200 and hold the same values.
    """
    call_id = call_id or f"bad-{uuid.uuid4().hex[:8]}"
    warnings, reads = [], []
    for server in both:
        start, end = full_call(call_id)
        mutation(start, end)
        warnings.append(await send(server, start, end))
        reads.append(comparable(await every_read(server, call_id)))
    assert reads[0] == reads[1]
    assert warnings[0] == warnings[1]
    return warnings


def texts_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in texts_of(item)]
    if isinstance(value, list):
        return [text for item in value for text in texts_of(item)]
    return []


@pytest.mark.parametrize("bad", ["\x00", chr(0xD800), chr(0xDFFF)], ids=["nul", "high", "low"])
async def test_unstorable_characters_in_any_text_field_become_replacement_characters(
    both: list[Harness], bad: str
) -> None:
    for name, put in TEXT_FIELDS.items():
        warnings = await stored_alike(both, put(f"before{bad}after"))
        assert any(item["code"] == "text_replaced" for item in warnings[0]), (name, warnings)
    # Arguments are JSON text: the character may also come escaped inside it, which is
    # storable text, but reads that parse it must still answer.
    escaped = json.dumps({"note": f"x{bad}y"})
    await stored_alike(both, TEXT_FIELDS["end.toolCalls.arguments"](escaped))


async def test_replaced_text_reads_back_with_u_fffd(both: list[Harness]) -> None:
    call_id = "nul-in-transcript"
    for server in both:
        start, end = full_call(call_id)
        end["transcript"][0]["content"] = "one\x00two\ud800three"
        end["toolCalls"][0]["name"] = "look\ud800up"
        await send(server, start, end)
        call_uuid = await server.call_id(call_id)
        transcript = (await server.get(f"/v1/call/{call_uuid}/transcript")).json()["data"]
        texts = [entry["text"] for entry in transcript["entries"]]
        assert f"one{REPLACEMENT}two{REPLACEMENT}three" in texts
        details = await server.details(call_uuid)
        assert details["toolInvocations"][0]["name"] == f"look{REPLACEMENT}up"
        assert {item["field"] for item in details["ingestWarnings"]} == {
            "transcript.0.content",
            "toolCalls.0.name",
        }


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_numbers_are_stored_as_null(both: list[Harness], number: float) -> None:
    places: list[Mutation] = [
        setter("end", "metrics", 0, "value")(number),
        setter("end", "metrics", 0, "extra")(number),
        setter("end", "metrics", 0, "nested")({"deep": [number]}),
        setter("end", "transcript", 0, "audioOffsetMs")(number),
        setter("end", "toolCalls", 0, "audioOffsetMs")(number),
    ]
    for mutation in places:
        warnings = await stored_alike(both, mutation)
        codes = {item["code"] for item in warnings[0]}
        assert codes == {"non_finite_number"}, warnings
        assert warnings[0][0]["original"] in ("NaN", "Infinity", "-Infinity", "nan", "inf", "-inf")


async def test_a_non_finite_metric_reads_back_as_null(both: list[Harness]) -> None:
    for server in both:
        start, end = full_call("nan-metric")
        end["metrics"][0]["value"] = float("nan")
        await send(server, start, end)
        details = await server.details(await server.call_id("nan-metric"))
        assert details["metrics"][0].get("value") is None
        assert details["ingestWarnings"][0]["field"] == "metrics.0.value"


@pytest.mark.parametrize(
    "moment",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"],
    ids=["after-9999", "before-year-1"],
)
async def test_timestamps_outside_years_1_to_9999_are_clamped_and_kept_as_text(
    both: list[Harness], moment: str
) -> None:
    for put in (
        setter("start", "eventTimestamp"),
        setter("end", "eventTimestamp"),
        setter("end", "callStartedAt"),
        setter("end", "callEndedAt"),
        setter("end", "transcript", 0, "timestamp"),
        setter("end", "transcript", 0, "endTimestamp"),
        setter("end", "toolCalls", 0, "timestamp"),
        setter("end", "metrics", 0, "timestamp"),
    ):
        warnings = await stored_alike(both, put(moment))
        for item in warnings[0]:
            assert item["code"] == "timestamp_out_of_range"
            assert item["original"] == moment


async def test_tool_arguments_nested_thousands_deep_are_kept_as_their_text(
    both: list[Harness],
) -> None:
    deep = "[" * 3000 + "]" * 3000
    put = setter("end", "toolCalls", 0, "arguments")(deep)
    warnings = await stored_alike(both, put, "deep-arguments")
    assert [item["code"] for item in warnings[0]] == ["nested_too_deep"]
    for server in both:
        invocation = (await server.details(await server.call_id("deep-arguments")))[
            "toolInvocations"
        ][0]
        assert invocation["parameters"] == deep
        assert invocation["arguments"] == deep


async def test_metric_fields_nested_past_the_limit_are_kept_as_json_text(
    both: list[Harness],
) -> None:
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH + 20):
        nested = {"n": nested}
    warnings = await stored_alike(both, setter("end", "metrics", 0, "nested")(nested))
    assert [item["code"] for item in warnings[0]] == ["nested_too_deep"]


async def test_a_body_nested_past_the_parser_is_a_400_naming_the_body(
    both: list[Harness],
) -> None:
    _, end = full_call("too-deep")
    raw = raw_json(end).replace(b'"note": "first"', b'"note": ' + b"[" * 5000 + b"]" * 5000)
    for server in both:
        answer = await server.client.post(
            EVENTS, content=raw, headers={**server.headers, "content-type": "application/json"}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["field"] == "body"


async def test_text_longer_than_its_column_is_cut_not_refused(both: list[Harness]) -> None:
    for put, limit in (
        (setter("start", "agentName"), 512),
        (setter("end", "callEndedReason"), 256),
    ):
        warnings = await stored_alike(both, put("x" * (limit + 100)))
        assert [item["code"] for item in warnings[0]] == ["text_truncated"]


async def test_the_delivery_client_sends_non_finite_numbers_as_null(
    sqlite_settings: ServerSettings,
) -> None:
    """Had it sent ``NaN``, the server would have repaired it and said so on the call."""
    key = await ensure_project_key(sqlite_settings, "acme")
    start, end = full_call("nan-from-client")
    end["metrics"][0].update(value=float("nan"), extra=float("inf"))
    async with serve_in_background(sqlite_settings) as base_url, aiohttp.ClientSession() as http:
        client = BackendClient(http, base_url=base_url, api_key=key, timeout=30)
        await client.post_event(start)
        await client.post_call_ended(end)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"authorization": f"Bearer {key}"}
        ) as reader:
            listing = (await reader.get("/v1/call")).json()["data"]
            details = (await reader.get(f"/v1/call/{listing[0]['id']}/pipecat")).json()["data"]
    assert details["ingestWarnings"] == []
    assert details["metrics"][0].get("value") is None
    assert details["metrics"][0].get("extra") is None
