"""Waveform peaks: computed once when a recording is stitched, served to the call page."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

from pipecat_roark.server.peaks import peaks_key
from tests.server.harness import Harness

RATE = 16000


def _stereo(seconds: float, *, user: int, bot: int) -> bytes:
    """Constant samples: ``user`` on the left channel, ``bot`` on the right."""
    return struct.pack("<hh", user, bot) * int(RATE * seconds)


async def test_peaks_are_stored_with_the_recording_and_keep_the_lanes_apart(
    server: Harness,
) -> None:
    await server.start("peaky")
    await server.upload("peaky", 0, _stereo(1.0, user=16000, bot=0))
    await server.upload("peaky", 1, _stereo(0.5, user=0, bot=8000))
    await server.end("peaky")
    call = await server.call_id("peaky")
    await server.wait_stitched(call)
    stored = [key async for key in _keys(server, call)]
    assert peaks_key(call) in stored

    answer = await server.get(f"/calls/{call}/peaks.json")
    assert answer.status_code == 200, answer.text
    peaks = answer.json()
    user, bot = (lane["peaks"] for lane in peaks["lanes"])
    assert peaks["durationMs"] == 1500
    assert len(user) == 150
    assert set(user[:100]) == {16000 * 255 // 32767}
    assert set(user[100:]) == {0}
    assert set(bot[:100]) == {0}
    assert set(bot[100:]) == {8000 * 255 // 32767}


async def _keys(server: Harness, call: str) -> AsyncIterator[str]:
    for key in await server.state.blobs.sizes(f"calls/{call}/"):
        yield key


async def test_a_recording_stitched_without_peaks_gets_them_on_first_request(
    sqlite_server: Harness,
) -> None:
    server = sqlite_server
    await server.start("older")
    await server.upload("older", 0, _stereo(0.2, user=3000, bot=6000))
    await server.end("older")
    call = await server.call_id("older")
    await server.wait_stitched(call)
    path = server.state.blobs.local_path(peaks_key(call))
    path.unlink()

    answer = await server.get(f"/calls/{call}/peaks.json")
    assert answer.status_code == 200
    assert [lane["label"] for lane in answer.json()["lanes"]] == ["user", "bot"]
    assert path.exists()  # kept, so the next request reads it


async def test_no_recording_no_peaks(sqlite_server: Harness) -> None:
    await sqlite_server.end("silent")
    call = await sqlite_server.call_id("silent")
    assert (await sqlite_server.get(f"/calls/{call}/peaks.json")).status_code == 404
    assert (await sqlite_server.get(f"/calls/{call}/recording")).status_code == 404
