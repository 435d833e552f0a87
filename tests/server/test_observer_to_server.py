"""The observer of this repo, in a real PipelineTask, ships a call to a real ``serve``.

On both setups (SQLite + folder, PostgreSQL + S3): the stored recording is the PCM the
pipeline's recorder produced, sample for sample, and the REST API reads back the turns.
"""

from __future__ import annotations

import asyncio

import httpx

from pipecat_roark import RoarkObserver
from pipecat_roark.server.embed import ensure_project_key, serve_in_background
from pipecat_roark.server.settings import ServerSettings
from tests.server.harness import wav_frames
from tests.support.pipeline import CallScript, run_call


async def a_call(script: CallScript) -> None:
    await script.bot_says(["Thanks", "for", "calling", "the", "bakery."], 3.0)
    await script.user_says("one sourdough loaf please", 3.0)
    await script.bot_says(["It", "will", "be", "ready", "at", "noon."], 3.0)


async def test_a_call_from_the_observer_is_stored_sample_for_sample(
    settings: ServerSettings,
) -> None:
    key = await ensure_project_key(settings, "bakery")
    async with serve_in_background(settings) as base_url:
        observer = RoarkObserver(api_key=key, agent_id="bakery-bot", base_url=base_url)
        produced: list[bytes] = []

        async def keep(_: object, audio: bytes, *__: object) -> None:
            produced.append(bytes(audio))

        observer.audio_processor.add_event_handler("on_audio_data", keep)
        await run_call([observer], a_call, after_output=[observer.audio_processor], speed=10.0)
        assert len(produced) >= 2
        assert observer.delivery_stats["spooled"] == 0

        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            call = await _stitched_call(client, observer.pipecat_call_id)
            async with httpx.AsyncClient(follow_redirects=True) as plain:
                recording = await plain.get(call["recordingUrl"])
            assert recording.status_code == 200
            rate, channels, frames = wav_frames(recording.content)
            assert (rate, channels) == (16000, 2)
            assert frames == b"".join(produced)

            transcript = (await client.get(f"/v1/call/{call['id']}/transcript")).json()["data"]
            assert [(e["role"], e["text"]) for e in transcript["entries"]] == [
                ("AGENT", "Thanks for calling the bakery."),
                ("CUSTOMER", "one sourdough loaf please"),
                ("AGENT", "It will be ready at noon."),
            ]


async def _stitched_call(client: httpx.AsyncClient, pipecat_call_id: str) -> dict[str, object]:
    for _ in range(300):
        listing = (await client.get("/v1/call", params={"limit": 100})).json()["data"]
        for call in listing:
            if call.get("externalId") == pipecat_call_id and call["recordingUrlAccess"] == (
                "AVAILABLE"
            ):
                found: dict[str, object] = call
                return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {pipecat_call_id} was not stitched in time")
