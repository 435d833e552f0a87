"""The acceptance of ``pipecat-roark demo``: the call lands in a backend, complete.

The demo runs as the command runs it (embedded server, RoarkObserver, --speed max,
--no-serve), then the server is started again on the same data folder and read through
its REST API, the way a person or the official SDK would see the call.
"""

from __future__ import annotations

import asyncio
import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

pytest.importorskip("hibari", reason="needs the [demo] extra")
pytest.importorskip("pocketsphinx", reason="needs the [demo] extra")
pytest.importorskip(
    "pipecat_roark.observer", reason="RoarkObserver (pipecat_roark.observer) is not there yet"
)
pytest.importorskip(
    "pipecat_roark.server.embed",
    reason="the embedded server (pipecat_roark.server) is not there yet",
)

import aiohttp
from rich.console import Console

from pipecat_roark.cli import main as cli_main
from pipecat_roark.demo.backend import embedded_backend
from pipecat_roark.demo.runner import DemoOptions, DemoOutcome, run_demo
from pipecat_roark.demo.scenarios import SCENARIOS
from pipecat_roark.demo.scoring import word_error_rate

from .test_call import speech_spans

TOLERANCE_SECS = 0.1


@dataclass
class StoredCall:
    outcome: DemoOutcome
    calls: list[dict[str, Any]]
    call: dict[str, Any]
    dashboard_page: str
    entries: list[dict[str, Any]]
    details: dict[str, Any]
    stereo: np.ndarray
    sample_rate: int
    printed: str = ""


async def _fetch(data_dir: Path, outcome: DemoOutcome) -> StoredCall:
    async with embedded_backend(data_dir) as backend:
        headers = {"Authorization": f"Bearer {backend.api_key}"}
        async with aiohttp.ClientSession(base_url=backend.base_url, headers=headers) as http:
            calls = (await (await http.get("/v1/call")).json())["data"]
            call_id = calls[0]["id"]
            for _ in range(100):  # the recording is stitched in the background
                call = (await (await http.get(f"/v1/call/{call_id}")).json())["data"]
                if call.get("recordingUrl"):
                    break
                await asyncio.sleep(0.2)
            transcript = await (await http.get(f"/v1/call/{call_id}/transcript")).json()
            details = await (await http.get(f"/v1/call/{call_id}/pipecat")).json()
            wav_bytes = await (await http.get(call["recordingUrl"])).read()
        # The demo's link, opened on this (restarted) server, logs in and shows the call.
        link = urlsplit(outcome.call_link or "")
        jar = aiohttp.CookieJar(unsafe=True)  # it is served on an IP address
        async with aiohttp.ClientSession(base_url=backend.base_url, cookie_jar=jar) as browser:
            page = await browser.get(f"{link.path}?{link.query}")
            dashboard_page = await page.text() if page.status == 200 else ""
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        channels, rate = wav.getnchannels(), wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return StoredCall(
        outcome=outcome,
        calls=calls,
        call=call,
        dashboard_page=dashboard_page,
        entries=transcript["data"]["entries"],
        details=details["data"],
        stereo=pcm.reshape(-1, channels),
        sample_rate=rate,
    )


def _play(scenario: str, data_dir: Path) -> StoredCall:
    async def play_then_fetch() -> StoredCall:
        options = DemoOptions(scenario=scenario, speed=None, serve=False, data_dir=data_dir)
        console = Console(record=True, width=120)
        outcome = await run_demo(options, console)
        stored = await _fetch(data_dir, outcome)
        stored.printed = console.export_text()
        return stored

    return asyncio.run(play_then_fetch())


@pytest.fixture(scope="module")
def booking(tmp_path_factory: pytest.TempPathFactory) -> StoredCall:
    return _play("booking", tmp_path_factory.mktemp("booking"))


@pytest.fixture(scope="module")
def interruption(tmp_path_factory: pytest.TempPathFactory) -> StoredCall:
    return _play("interruption", tmp_path_factory.mktemp("interruption"))


def _spans(stored: StoredCall, role: str) -> list[tuple[float, float]]:
    return [
        (entry["startOffsetMs"] / 1000, entry["endOffsetMs"] / 1000)
        for entry in stored.entries
        if entry["role"] == role
    ]


def test_the_demo_call_is_complete_and_quick(booking: StoredCall) -> None:
    result = booking.outcome.result
    assert result.bot_hung_up
    assert booking.outcome.delivered
    assert result.wall_secs < 60


def test_the_backend_holds_exactly_the_one_call(booking: StoredCall) -> None:
    assert len(booking.calls) == 1
    assert booking.details["pipecatCallId"] == booking.outcome.pipecat_call_id
    assert booking.call["status"] == "ENDED"


def test_the_summary_links_to_the_call_in_the_dashboard(booking: StoredCall) -> None:
    assert booking.outcome.call_link is not None
    assert booking.outcome.call_link.startswith(booking.outcome.backend.base_url)
    assert "Alex Morgan" in booking.dashboard_page


def test_after_no_serve_it_says_how_to_serve_the_call_again_not_a_dead_link(
    booking: StoredCall,
) -> None:
    printed = booking.printed
    data_dir = booking.outcome.backend.data_dir
    assert data_dir is not None
    assert data_dir.is_absolute()
    assert f"pipecat-roark serve --data-dir {data_dir}" in printed
    assert f"http://127.0.0.1:8787/calls/{booking.calls[0]['id']}" in printed
    assert str(data_dir / "demo-api-key") in printed
    # The run's own server (and its port) is gone once the demo returns.
    assert booking.outcome.backend.base_url + "/" not in printed.split("Call summary")[1]
    assert "login/link" not in printed


def test_six_turns_or_more_in_onset_order_starting_with_the_greeting(booking: StoredCall) -> None:
    entries = booking.entries
    assert len(entries) >= 6
    assert entries[0]["role"] == "AGENT"
    assert entries[0]["text"] == SCENARIOS["booking"].agent.greeting
    onsets = [entry["startOffsetMs"] for entry in entries]
    assert onsets == sorted(onsets)


def test_the_callers_turns_are_what_was_recognised(booking: StoredCall) -> None:
    heard = [entry["text"] for entry in booking.entries if entry["role"] == "CUSTOMER"]
    assert word_error_rate(SCENARIOS["booking"].caller_script, heard) <= 0.15


def test_the_two_tool_calls_are_stored_with_their_results(booking: StoredCall) -> None:
    tools = booking.details["toolInvocations"]
    assert [tool["name"] for tool in tools] == ["check_availability", "book_table"]
    assert '"available":true' in tools[0]["result"].replace(" ", "")
    assert tools[1]["parameters"]["name"] == "Alex Morgan"
    assert '"booked":true' in tools[1]["result"].replace(" ", "")


def test_the_recording_is_stereo_with_the_caller_left_and_the_bot_right(
    booking: StoredCall,
) -> None:
    timeline = booking.outcome.result.timeline
    assert booking.stereo.shape[1] == 2
    assert booking.sample_rate == timeline.sample_rate
    # Where each stretch falls is checked against the stored turns below; here, that each
    # caller line is on the left and each stretch of the bot's speech on the right.
    assert len(speech_spans(booking.stereo[:, 0])) == len(timeline.caller_lines)
    assert len(speech_spans(booking.stereo[:, 1])) == len(timeline.bot_speech)


def test_the_bots_stored_turns_sit_on_its_speech(booking: StoredCall) -> None:
    right = speech_spans(booking.stereo[:, 1])
    assert right == [pytest.approx(span, abs=TOLERANCE_SECS) for span in _spans(booking, "AGENT")]


def test_the_callers_stored_turns_sit_on_its_speech(booking: StoredCall) -> None:
    left = speech_spans(booking.stereo[:, 0])
    assert left == [pytest.approx(span, abs=TOLERANCE_SECS) for span in _spans(booking, "CUSTOMER")]


def test_the_cut_answer_is_stored_with_only_the_words_that_played(
    interruption: StoredCall,
) -> None:
    (cut,) = [s for s in interruption.outcome.result.timeline.bot_speech if s.interrupted]
    full_answer = next(r.say for r in SCENARIOS["interruption"].rules if r.name == "hours")
    stored = [entry["text"] for entry in interruption.entries if entry["role"] == "AGENT"]
    assert cut.text in stored
    assert full_answer not in stored
    assert full_answer.startswith(cut.text)
    assert len(cut.text) < len(full_answer)


def test_the_command_line_plays_the_demo_and_exits_zero(tmp_path: Path) -> None:
    argv = ["demo", "--speed", "max", "--no-serve", "--scenario", "silence"]
    assert cli_main([*argv, "--data-dir", str(tmp_path)]) == 0
