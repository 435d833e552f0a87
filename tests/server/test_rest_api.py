"""The Roark REST read subset and the extensions, as a client of the API sees them."""

from __future__ import annotations

from typing import Any

import httpx

from pipecat_roark.server.embed import ensure_project_key

from .harness import EVENTS, Harness, ended, pcm, started
from .plans import query_plan, sorts_every_row, statements_run


async def make_calls(server: Harness, count: int) -> list[str]:
    """Ended calls whose start times, durations and transcripts differ; their server ids."""
    for number in range(count):
        minute = f"{number:02d}"
        await server.start(f"list-{number}")
        await server.end(
            f"list-{number}",
            callStartedAt=f"2026-01-01T10:{minute}:00+00:00",
            callEndedAt=f"2026-01-01T10:{minute}:{10 + number:02d}+00:00",
            transcript=[
                {
                    "role": "user",
                    "content": f"question number {number}",
                    "timestamp": f"2026-01-01T10:{minute}:01+00:00",
                    "endTimestamp": f"2026-01-01T10:{minute}:02+00:00",
                },
            ],
        )
    return [await server.call_id(f"list-{number}") for number in range(count)]


async def test_listing_pages_through_every_call_once(server: Harness) -> None:
    ids = await make_calls(server, 7)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params = {"limit": 3, **({"after": after} if after else {})}
        body = (await server.get("/v1/call", **params)).json()
        assert body["pagination"]["total"] == 7
        seen += [call["id"] for call in body["data"]]
        pages += 1
        if not body["pagination"]["hasMore"]:
            assert body["pagination"]["nextCursor"] is None
            break
        after = body["pagination"]["nextCursor"]
    assert pages == 3
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))


async def test_sorting_holds_across_pages(server: Harness) -> None:
    ids = await make_calls(server, 5)
    await server.start("still-running")  # no end, no duration: sorts as the lowest
    for sort in ("startedAt", "endedAt", "duration", "createdAt", "status", "title"):
        for direction in ("asc", "desc"):
            seen: list[dict[str, Any]] = []
            after = None
            while True:
                params = {"limit": 2, "sortBy": sort, "sortDirection": direction}
                body = (
                    await server.get("/v1/call", **params, **({"after": after} if after else {}))
                ).json()
                seen += body["data"]
                if not body["pagination"]["hasMore"]:
                    break
                after = body["pagination"]["nextCursor"]
            assert len({c["id"] for c in seen}) == len(seen) == 6, (sort, direction)
            if sort in ("startedAt", "duration"):
                ended_order = [c["id"] for c in seen if c["id"] in ids]
                assert ended_order == (ids if direction == "asc" else ids[::-1]), (sort, direction)


async def test_status_and_search_filter_the_list(server: Harness) -> None:
    await make_calls(server, 3)
    await server.start("live-one")
    in_progress = (await server.get("/v1/call", status="IN_PROGRESS")).json()
    assert [c["externalId"] for c in in_progress["data"]] == ["live-one"]
    # Each status's total (ENDED is counted as every call less the others), and another
    # project's calls in neither.
    other = await ensure_project_key(server.settings, "other")
    for name in ("theirs-ended", "theirs-live"):
        await server.post(EVENTS, started(name), key=other)
    await server.post(EVENTS, ended("theirs-ended"), key=other)
    await server.end("list-0")  # a repeated call-ended: still one ended call
    totals = {None: 4, "ENDED": 3, "IN_PROGRESS": 1, "RINGING": 0}
    for status, total in totals.items():
        params = {"status": status} if status else {}
        body = (await server.get("/v1/call", limit=1, **params)).json()
        assert body["pagination"]["total"] == total, status
    found = (await server.get("/v1/call", searchText="NUMBER 2")).json()
    assert [c["externalId"] for c in found["data"]] == ["list-2"]
    assert (await server.get("/v1/call", searchText="100%_")).json()["data"] == []


async def test_a_cursor_is_checked(server: Harness) -> None:
    await make_calls(server, 3)
    cursor = (await server.get("/v1/call", limit=1)).json()["pagination"]["nextCursor"]
    for params in (
        {"after": cursor, "sortBy": "duration"},
        {"after": "garbage!"},
        {"after": "W10"},
    ):
        answer = await server.get("/v1/call", **params)
        assert answer.status_code == 422, params
        assert answer.json()["error"]["field"] == "after"
    assert (await server.get("/v1/call", limit=0)).json()["error"]["field"] == "limit"
    assert (await server.get("/v1/call", sortBy="colour")).json()["error"]["field"] == "sortBy"


async def test_a_call_reads_as_the_roark_call_object(server: Harness) -> None:
    await server.start("shape")
    await server.upload("shape", 0, pcm(3200))
    await server.end("shape")
    call_uuid = await server.call_id("shape")
    await server.wait_stitched(call_uuid)
    call = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]
    assert call["id"] == call_uuid
    assert call["externalId"] == call["properties"]["pipecat_call_id"] == "shape"
    assert (call["status"], call["endedStatus"], call["callDirection"]) == (
        "ENDED",
        "CUSTOMER_ENDED_CALL",
        "INBOUND",
    )
    assert (call["startedAt"], call["endedAt"], call["durationMs"]) == (
        "2026-01-01T12:00:00.000Z",
        "2026-01-01T12:01:00.000Z",
        60000,
    )
    assert call["recordingUrlAccess"] == "AVAILABLE"
    agent = (await server.get(f"/v1/agent/{call['agents'][0]['id']}")).json()["data"]
    assert (agent["customId"], agent["name"]) == ("agent-1", "Support bot")


async def test_the_transcript_is_sorted_with_roark_roles(server: Harness) -> None:
    turns = [
        {
            "role": "user",
            "content": "second",
            "timestamp": "2026-01-01T12:00:05+00:00",
            "endTimestamp": "2026-01-01T12:00:06+00:00",
            "audioOffsetMs": 5000,
            "endAudioOffsetMs": 6000,
        },
        {
            "role": "system",
            "content": "hidden",
            "timestamp": "2026-01-01T12:00:00+00:00",
            "endTimestamp": "2026-01-01T12:00:00+00:00",
        },
        {
            "role": "assistant",
            "content": "first",
            "timestamp": "2026-01-01T12:00:01.250000+00:00",
            "endTimestamp": "2026-01-01T12:00:02+00:00",
        },
    ]
    await server.start("talk")
    await server.end("talk", transcript=turns)
    transcript = (await server.get(f"/v1/call/{await server.call_id('talk')}/transcript")).json()[
        "data"
    ]
    assert [
        (e["role"], e["text"], e["startOffsetMs"], e["endOffsetMs"]) for e in transcript["entries"]
    ] == [
        ("AGENT", "first", 1250, 2000),
        ("CUSTOMER", "second", 5000, 6000),
    ]
    assert transcript["transcriptionSource"] == "CUSTOMER_AGENT_REALTIME"
    assert {p["type"] for p in transcript["participants"]} == {"AGENT", "CUSTOMER"}


async def test_unknown_ids_are_404(server: Harness) -> None:
    for path in (
        "/v1/call/nope",
        "/v1/call/nope/transcript",
        "/v1/call/nope/pipecat",
        "/v1/agent/nope",
        "/v1/call/nope/recording",
    ):
        answer = await server.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found"
    assert (await server.client.delete("/v1/call/nope", headers=server.headers)).status_code == 404


async def test_delete_removes_the_rows_and_the_audio(server: Harness) -> None:
    await server.start("doomed")
    await server.upload("doomed", 0, pcm(3200))
    await server.end("doomed")
    call_uuid = await server.call_id("doomed")
    await server.wait_stitched(call_uuid)
    state = server.state
    assert await state.blobs.sizes(f"calls/{call_uuid}/")

    answer = await server.client.delete(f"/v1/call/{call_uuid}", headers=server.headers)
    assert answer.json() == {"data": {"id": call_uuid, "deleted": True}}
    assert await state.blobs.sizes(f"calls/{call_uuid}/") == {}
    assert (await server.get(f"/v1/call/{call_uuid}")).status_code == 404
    assert (await server.get("/v1/call")).json()["pagination"]["total"] == 0


async def test_recordings_download_with_range_requests(server: Harness) -> None:
    data = pcm(8000)
    await server.start("ranged")
    await server.upload("ranged", 0, data)
    await server.end("ranged")
    call_uuid = await server.call_id("ranged")
    await server.wait_stitched(call_uuid)
    url = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]["recordingUrl"]
    headers = {"range": "bytes=44-143"}  # the first 100 PCM bytes after the WAV header
    if url.startswith(str(server.client.base_url)):
        answer = await server.client.get(url, headers=headers)
    else:
        async with httpx.AsyncClient() as direct:
            answer = await direct.get(url, headers=headers)
    assert answer.status_code == 206
    assert answer.content == data[:100]

    authenticated = await server.client.get(
        f"/v1/call/{call_uuid}/recording", headers={**server.headers, "range": "bytes=0-3"}
    )
    if authenticated.status_code == 307:  # S3: a presigned GET on the bucket
        async with httpx.AsyncClient() as direct:
            authenticated = await direct.get(
                authenticated.headers["location"], headers={"range": "bytes=0-3"}
            )
    assert authenticated.status_code == 206
    assert authenticated.content == b"RIFF"


async def test_a_tampered_recording_url_is_403(sqlite_server: Harness) -> None:
    server = sqlite_server
    await server.start("signed-rec")
    await server.upload("signed-rec", 0, pcm(400))
    await server.end("signed-rec")
    call_uuid = await server.call_id("signed-rec")
    await server.wait_stitched(call_uuid)
    url = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]["recordingUrl"]
    assert (await server.client.get(url)).status_code == 200
    assert (await server.client.get(url[:-4] + "0000")).status_code == 403
    other = url.replace(call_uuid, "00000000-0000-4000-8000-000000000000")
    assert (await server.client.get(other)).status_code == 403


async def test_the_openapi_schema_is_served(sqlite_server: Harness) -> None:
    schema = (await sqlite_server.client.get("/openapi.json")).json()
    for path in (
        "/v1/call",
        "/v1/call/{callId}",
        "/v1/call/{callId}/transcript",
        "/v1/agent",
        "/v1/agent/{agentId}",
        "/v1/integrations/pipecat",
        "/v1/integrations/pipecat/chunk-upload-url",
    ):
        assert path in schema["paths"], path


async def test_a_chunk_for_a_deleted_call_is_not_kept(sqlite_server: Harness) -> None:
    server = sqlite_server
    url = (await server.presign("gone", 0)).json()["uploadUrl"]
    call_uuid = await server.call_id("gone")
    await server.client.delete(f"/v1/call/{call_uuid}", headers=server.headers)
    answer = await server.put(url, pcm(400))
    assert answer.status_code == 404
    assert await server.state.blobs.sizes(f"calls/{call_uuid}/") == {}


async def test_every_sort_of_the_list_reads_an_index_never_sorts_every_call(
    server: Harness,
) -> None:
    """At a million calls a page that sorts every call takes seconds: each sort and direction,
    first page and next, walks an index on (project, key, id) instead."""

    await make_calls(server, 3)
    await server.start("still-running")
    for sort in ("startedAt", "endedAt", "duration", "createdAt", "status", "title"):
        for direction in ("asc", "desc"):
            first = await server.get("/v1/call", limit=1, sortBy=sort, sortDirection=direction)
            after = first.json()["pagination"]["nextCursor"]
            for cursor in ({}, {"after": after}):
                with statements_run(server, lambda s: "AS sort_key" in s) as statements:
                    answer = await server.get(
                        "/v1/call", limit=1, sortBy=sort, sortDirection=direction, **cursor
                    )
                assert answer.status_code == 200
                assert len(statements) == 1, statements
                ((statement, parameters),) = statements
                plan = await query_plan(server, statement, parameters)
                assert not sorts_every_row(plan), (sort, direction, " | ".join(plan))
