"""The ingestion protocol end to end, on SQLite + folder and on PostgreSQL + S3."""

from __future__ import annotations

import asyncio

from .harness import EVENTS, Harness, pcm, started, wav_frames

CHUNK = 4096  # bytes; whole stereo 16-bit frames


async def test_a_call_is_stored_and_its_chunks_stitched_in_order(server: Harness) -> None:
    chunks = [pcm(CHUNK, seed=i) for i in range(3)] + [pcm(1000, seed=9)]
    assert (await server.start("call-1", agentPrompt="You are helpful.")).status_code == 200
    for index, data in enumerate(chunks):
        await server.upload("call-1", index, data)
    assert (await server.end("call-1")).status_code == 200

    call_uuid = await server.call_id("call-1")
    details = await server.wait_stitched(call_uuid)
    assert details["recording"]["missingChunks"] == []
    rate, channels, frames = wav_frames(await server.recording(call_uuid))
    assert (rate, channels) == (16000, 2)
    assert frames == b"".join(chunks)


async def test_requests_in_any_order_build_one_call(server: Harness) -> None:
    chunks = [pcm(CHUNK, seed=i) for i in range(3)]
    # call-ended and chunk 2 first, call-started last.
    await server.upload("late-start", 2, chunks[2])
    assert (await server.end("late-start")).status_code == 200
    await server.upload("late-start", 0, chunks[0])
    await server.upload("late-start", 1, chunks[1])
    assert (await server.start("late-start")).status_code == 200

    call_uuid = await server.call_id("late-start")
    call = (await server.get(f"/v1/call/{call_uuid}")).json()["data"]
    assert call["status"] == "ENDED"
    assert call["agents"], "call-started after call-ended still links the agent"
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        details = await server.details(call_uuid)
        if details["recording"]["missingChunks"] == [] and details["recording"]["stitchCount"]:
            break
        assert asyncio.get_running_loop().time() < deadline, details
        await asyncio.sleep(0.05)
    assert wav_frames(await server.recording(call_uuid))[2] == b"".join(chunks)


async def test_replayed_requests_do_not_duplicate_anything(server: Harness) -> None:
    data = pcm(CHUNK)
    starts = [await server.start("replayed") for _ in range(3)]
    assert [answer.json()["changed"] for answer in starts] == [True, False, False]
    for _ in range(3):
        await server.upload("replayed", 0, data)
    first = await server.end("replayed")
    second = await server.end("replayed")
    assert first.status_code == second.status_code == 200
    assert first.json()["changed"] is True
    assert second.json()["changed"] is False

    listing = (await server.get("/v1/call")).json()
    assert listing["pagination"]["total"] == 1
    call_uuid = listing["data"][0]["id"]
    await server.wait_stitched(call_uuid)
    assert wav_frames(await server.recording(call_uuid))[2] == data
    agents = (await server.get("/v1/agent")).json()
    assert agents["pagination"]["total"] == 1


async def test_a_missing_chunk_becomes_silence_and_is_recorded(server: Harness) -> None:
    chunks = [pcm(CHUNK, seed=i) for i in range(4)]
    await server.start("gappy")
    for index in (0, 1, 3):
        await server.upload("gappy", index, chunks[index])
    await server.presign("gappy", 2)  # asked for, never uploaded
    await server.end("gappy")

    call_uuid = await server.call_id("gappy")
    details = await server.wait_stitched(call_uuid)
    assert details["recording"]["missingChunks"] == [2]
    assert details["recording"]["gaps"] == [{"chunkIndex": 2, "silenceMs": 64}]
    frames = wav_frames(await server.recording(call_uuid))[2]
    assert frames == chunks[0] + chunks[1] + bytes(CHUNK) + chunks[3]


async def test_a_chunk_after_call_ended_is_stitched_in(server: Harness) -> None:
    chunks = [pcm(CHUNK, seed=i) for i in range(3)]
    await server.start("late-chunk")
    await server.upload("late-chunk", 0, chunks[0])
    await server.upload("late-chunk", 2, chunks[2])
    await server.end("late-chunk")
    call_uuid = await server.call_id("late-chunk")
    first = await server.wait_stitched(call_uuid)
    assert first["recording"]["missingChunks"] == [1]

    await server.upload("late-chunk", 1, chunks[1])
    second = await server.wait_stitched(call_uuid, count=2)
    assert second["recording"]["missingChunks"] == []
    assert wav_frames(await server.recording(call_uuid))[2] == b"".join(chunks)


async def test_agents_are_registered_lazily_with_each_prompt_kept_once(server: Harness) -> None:
    await server.start("p1", agentId="sales", agentPrompt="Be brief.")
    await server.start("p2", agentId="sales", agentPrompt="Be brief.")
    await server.start("p3", agentId="sales", agentPrompt="Be thorough.")
    agents = (await server.get("/v1/agent")).json()["data"]
    assert [(a["customId"], a["name"]) for a in agents] == [("sales", "Support bot")]
    revisions = (await server.get(f"/v1/agent/{agents[0]['id']}/prompt-revisions")).json()["data"]
    assert [r["prompt"] for r in revisions] == ["Be brief.", "Be thorough."]
    details = await server.details(await server.call_id("p3"))
    assert details["promptRevisionId"] == revisions[1]["id"]


async def test_the_key_is_accepted_in_either_header(server: Harness) -> None:
    attempts = {
        "x-roark-api-key": ({"x-roark-api-key": server.key}, 200),
        "bearer": ({"authorization": f"Bearer {server.key}"}, 200),
        "none": ({}, 401),
        "unknown key": ({"authorization": "Bearer rk_live_nope"}, 401),
    }
    for name, (headers, status) in attempts.items():
        answer = await server.client.post(EVENTS, json=started(f"key-{name}"), headers=headers)
        assert answer.status_code == status, name
        if status == 401:
            assert answer.json()["error"]["field"] == "authorization"


async def test_metrics_and_tool_calls_are_kept_as_sent(server: Harness) -> None:
    metrics = [
        {
            "kind": "ttfb",
            "processor": "OpenAILLMService#0",
            "value": 0.41,
            "timestamp": "2026-01-01T12:00:01+00:00",
        },
        {"kind": "llm_usage", "model": "gpt", "promptTokens": 12, "completionTokens": 7},
        {"kind": "something_new", "whatever": [1, 2]},
    ]
    tools = [
        {
            "kind": "tool_call",
            "toolCallId": "t1",
            "name": "lookup_order",
            "arguments": '{"order": 42}',
            "timestamp": "2026-01-01T12:00:05+00:00",
            "audioOffsetMs": 5000,
        },
        {
            "kind": "tool_result",
            "toolCallId": "t1",
            "content": '{"status": "shipped"}',
            "timestamp": "2026-01-01T12:00:06+00:00",
            "audioOffsetMs": 6000,
        },
        {
            "kind": "tool_call",
            "toolCallId": "t2",
            "name": "hang_up",
            "arguments": "{}",
            "timestamp": "2026-01-01T12:00:07+00:00",
        },
    ]
    await server.start("tools")
    await server.end("tools", metrics=metrics, toolCalls=tools)
    details = await server.details(await server.call_id("tools"))
    assert details["metrics"] == metrics
    assert details["toolInvocations"] == [
        {
            "toolCallId": "t1",
            "name": "lookup_order",
            "parameters": {"order": 42},
            "arguments": '{"order": 42}',
            "result": '{"status": "shipped"}',
            "startOffsetMs": 5000,
            "endOffsetMs": 6000,
            "timestamp": "2026-01-01T12:00:05+00:00",
            "resultTimestamp": "2026-01-01T12:00:06+00:00",
        },
        {
            "toolCallId": "t2",
            "name": "hang_up",
            "parameters": {},
            "arguments": "{}",
            "result": None,
            "startOffsetMs": 7000,
            "endOffsetMs": None,
            "timestamp": "2026-01-01T12:00:07+00:00",
            "resultTimestamp": None,
        },
    ]
