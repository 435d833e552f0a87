"""Every class of malformed request gets a 4xx naming the field, and harms nothing stored."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from .harness import EVENTS, PRESIGN, Harness, ended, pcm, started, wav_frames


def assert_error(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    assert error["field"] == field, error
    assert field in error["message"] or field in ("body", "authorization")


async def stored_call(
    server: Harness, pipecat_call_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    call_uuid = await server.call_id(pipecat_call_id)
    call = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]
    call.pop("recordingUrl", None)
    return call, await server.details(call_uuid)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda body: body.pop("pipecatCallId"), "pipecatCallId"),
        (lambda body: body.pop("agentId"), "agentId"),
        (lambda body: body.update(agentId=42), "agentId"),
        (lambda body: body.update(eventTimestamp=None), "eventTimestamp"),
        (lambda body: body.update(eventTimestamp="yesterday"), "eventTimestamp"),
        (lambda body: body.update(agentNmae="typo"), "agentNmae"),
        (lambda body: body.update(event="call-paused"), "event"),
        (lambda body: body.pop("event"), "event"),
    ],
    ids=[
        "missing-id",
        "missing-agent",
        "wrong-type",
        "null",
        "bad-time",
        "unknown-field",
        "unknown-event",
        "no-event",
    ],
)
async def test_a_bad_call_started_names_its_field(server: Harness, mutate: Any, field: str) -> None:
    body = started("bad-start")
    mutate(body)
    assert_error(await server.post(EVENTS, body), 422, field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"recordingSampleRate": "fast"}, "recordingSampleRate"),
        ({"recordingSampleRate": -16000}, "recordingSampleRate"),
        ({"recordingNumChannels": 0}, "recordingNumChannels"),
        (
            {
                "transcript": [
                    {"role": "robot", "content": "x", "timestamp": "t", "endTimestamp": "t"}
                ]
            },
            "transcript.0.role",
        ),
        ({"toolCalls": [{"kind": "tool_call", "toolCallId": "t"}]}, "toolCalls.0.tool_call.name"),
        ({"metrics": [{"value": 1}]}, "metrics.0.kind"),
        ({"callEndedReason": None}, "callEndedReason"),
    ],
)
async def test_a_bad_call_ended_names_its_field(
    server: Harness, changes: dict[str, Any], field: str
) -> None:
    assert_error(await server.post(EVENTS, ended("bad-end", **changes)), 422, field)


@pytest.mark.parametrize(
    ("index", "field"),
    [
        (-1, "chunkIndex"),
        (10**12, "chunkIndex"),
        (1.5, "chunkIndex"),
        ("three", "chunkIndex"),
        (None, "chunkIndex"),
    ],
)
async def test_a_bad_chunk_index_is_refused(server: Harness, index: Any, field: str) -> None:
    body = {"pipecatCallId": "bad-index", "chunkIndex": index, "contentType": "audio/pcm"}
    answer = await server.post(PRESIGN, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


async def test_a_chunk_content_type_other_than_pcm_is_refused(server: Harness) -> None:
    body = {"pipecatCallId": "ct", "chunkIndex": 0, "contentType": "audio/mpeg"}
    assert_error(await server.post(PRESIGN, body), 422, "contentType")


async def test_a_body_that_is_not_json_is_refused(server: Harness) -> None:
    answer = await server.client.post(
        EVENTS,
        content=b'{"event": "call-st',
        headers={**server.headers, "content-type": "application/json"},
    )
    assert answer.status_code in (400, 422)
    assert answer.json()["error"]["field"] == "body"


async def test_a_json_body_over_2_mib_is_413(server: Harness) -> None:
    body = ended("huge", transcript=[])
    body["callEndedReason"] = "x" * (2 * 1024 * 1024)
    assert_error(await server.post(EVENTS, body), 413, "body")

    async def no_declared_length() -> AsyncIterator[bytes]:
        yield b"{"
        for _ in range(40):
            yield b" " * 64 * 1024

    streamed = await server.client.post(
        EVENTS,
        content=no_declared_length(),
        headers={**server.headers, "content-type": "application/json"},
    )
    assert_error(streamed, 413, "body")


@pytest.mark.parametrize(
    "call_id",
    ["a\x00b", "line\nbreak", "tab\tbed", "x" * 257, ""],
    ids=["nul", "newline", "tab", "too-long", "empty"],
)
async def test_call_ids_with_control_characters_or_bad_length_are_refused(
    server: Harness, call_id: str
) -> None:
    assert_error(await server.start(call_id), 422, "pipecatCallId")
    assert_error(await server.presign(call_id, 0), 422, "pipecatCallId")
    assert_error(await server.end(call_id), 422, "pipecatCallId")
    assert (await server.get("/v1/call")).json()["pagination"]["total"] == 0


@pytest.mark.parametrize(
    "call_id",
    ["../../etc/passwd", "SmallWebRTCConnection#0", "a/b/../../c", "/abs", "..", "%2e%2e%2f"],
)
async def test_call_ids_with_path_characters_are_opaque_text(
    server: Harness, call_id: str, tmp_path: Path
) -> None:
    data = pcm(400)
    await server.start(call_id)
    presigned = await server.upload(call_id, 0, data)
    await server.end(call_id)
    call_uuid = await server.call_id(call_id)
    assert presigned["s3Key"] == f"calls/{call_uuid}/chunks/0000000.pcm"
    assert call_id not in presigned["uploadUrl"]
    details = await server.wait_stitched(call_uuid)
    assert details["pipecatCallId"] == call_id
    # Nothing was written outside the store's folder.
    data_dir = server.settings.resolved_data_dir
    written = {p for p in tmp_path.rglob("*") if p.is_file() and data_dir not in p.parents}
    assert written == set()


async def put_raw(server: Harness, url: str, data: bytes) -> Any:
    return await server.put(url, data)


async def test_pcm_that_is_not_whole_samples_is_refused(sqlite_server: Harness) -> None:
    server = sqlite_server
    url = (await server.presign("odd", 0)).json()["uploadUrl"]
    assert_error(await put_raw(server, url, b"\x01\x02\x03"), 422, "body")
    assert not list((server.settings.resolved_data_dir / "blobs").rglob("*.pcm"))


async def test_pcm_that_is_not_whole_frames_is_refused_once_channels_are_known(
    sqlite_server: Harness,
) -> None:
    server = sqlite_server
    await server.end("frames", recordingNumChannels=2)
    url = (await server.presign("frames", 0)).json()["uploadUrl"]
    assert_error(await put_raw(server, url, pcm(6)), 422, "body")  # 3 samples: 1.5 frames
    assert (await put_raw(server, url, pcm(8))).status_code == 200


async def test_a_chunk_over_16_mib_is_413_and_not_stored(sqlite_server: Harness) -> None:
    server = sqlite_server
    url = (await server.presign("big", 0)).json()["uploadUrl"]
    answer = await put_raw(server, url, bytes(16 * 1024 * 1024 + 4))
    assert_error(answer, 413, "body")
    assert not list((server.settings.resolved_data_dir / "blobs").rglob("*.pcm"))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_a_tampered_or_expired_upload_url_is_403(sqlite_server: Harness) -> None:
    server = sqlite_server
    url = (await server.presign("signed", 3)).json()["uploadUrl"]
    other_chunk = url.replace("/3?", "/4?")
    forged = _with_query(url, signature="0" * 64)
    later = _with_query(url, expires=str(int(time.time()) + 10_000))
    for bad in (other_chunk, forged, later):
        assert_error(await put_raw(server, bad, pcm(8)), 403, "signature")

    expiring = server.settings.replace(upload_url_ttl=-1)
    server.state.settings = expiring
    expired = (await server.presign("signed", 5)).json()["uploadUrl"]
    assert_error(await put_raw(server, expired, pcm(8)), 403, "signature")


async def test_call_ended_with_another_sample_rate_is_a_conflict(server: Harness) -> None:
    await server.start("rate")
    await server.upload("rate", 0, pcm(400))
    assert (await server.end("rate")).status_code == 200
    await server.wait_stitched(await server.call_id("rate"))
    before = await stored_call(server, "rate")

    assert_error(await server.end("rate", recordingSampleRate=48000), 409, "recordingSampleRate")
    assert_error(await server.end("rate", recordingNumChannels=1), 409, "recordingNumChannels")
    assert await stored_call(server, "rate") == before


async def test_malformed_requests_never_alter_a_stored_call(server: Harness) -> None:
    await server.start("kept")
    await server.upload("kept", 0, pcm(400))
    await server.end("kept")
    await server.wait_stitched(await server.call_id("kept"))
    before = await stored_call(server, "kept")

    bad_requests = [
        ended("kept", transcript=[{"role": "user"}]),
        ended("kept", recordingSampleRate=0),
        ended("kept", eventTimestamp="not a time"),
        started("kept", agentId=""),
        {**started("kept"), "extra": True},
    ]
    for body in bad_requests:
        assert 400 <= (await server.post(EVENTS, body)).status_code < 500
    assert (
        await server.post(PRESIGN, {"pipecatCallId": "kept", "chunkIndex": -1})
    ).status_code == 422
    await server.client.post(EVENTS, content=json.dumps(ended("kept"))[:-5], headers=server.headers)
    assert await stored_call(server, "kept") == before


async def test_a_chunk_of_half_frames_is_trimmed_at_stitch_time_and_reported(
    sqlite_server: Harness,
) -> None:
    server = sqlite_server
    await server.start("half-frame")
    await server.upload("half-frame", 0, pcm(400))
    await server.upload("half-frame", 1, pcm(6, seed=1))  # whole samples; channels unknown yet
    await server.end("half-frame", recordingNumChannels=2)
    details = await server.wait_stitched(await server.call_id("half-frame"))
    assert details["recording"]["issues"] == [
        {"chunkIndex": 1, "problem": "partial_frame", "droppedBytes": 2}
    ]
    frames = wav_frames(await server.recording(await server.call_id("half-frame")))[2]
    assert frames == pcm(400) + pcm(6, seed=1)[:4]
