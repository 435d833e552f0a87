"""The call page: waveform lanes, the transcript in step with the audio, tools and metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_asyncio

from pipecat_roark.stats import percentile

from .conftest import newest_support_call, screenshot, support_call_page
from .live import Protocol
from .observed import CUT_WORDS, observed_call

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def booking(acme: Protocol) -> dict[str, Any]:
    """The observer's call, stitched, with what the REST API says about it."""
    pipecat_id = await observed_call(acme.url, acme.key)
    listing = acme.get("/v1/call", searchText=pipecat_id)["data"]
    (call,) = [c for c in listing if c["externalId"] == pipecat_id]
    acme.wait_stitched(call["id"])
    return {
        "id": call["id"],
        "pipecatCallId": pipecat_id,
        "transcript": acme.get(f"/v1/call/{call['id']}/transcript")["data"]["entries"],
        "analytics": acme.get(f"/v1/call/{call['id']}/analytics")["data"],
        "details": acme.details(call["id"]),
    }


def _expected_turn(entries: list[dict[str, Any]], ms: float) -> int:
    """The page's rule: the latest turn under way at ``ms``, else the latest started."""
    under_way = started = 0
    for number, entry in enumerate(entries, start=1):
        if entry["startOffsetMs"] <= ms:
            started = number
            if ms < max(entry["endOffsetMs"], entry["startOffsetMs"] + 1):
                under_way = number
    return under_way or started


# Where each seek landed and each time playback started, as the audio element reports them.
RECORD_SEEKS = """() => {
    const player = document.getElementById('player');
    window.seekedAt = [];
    window.playedAt = [];
    player.addEventListener('seeked', () => window.seekedAt.push(player.currentTime));
    player.addEventListener('playing', () => window.playedAt.push(player.currentTime));
}"""


async def _open(page: Any, call_id: str) -> None:
    await page.goto(f"/calls/{call_id}")
    await page.wait_for_selector("#call[data-ready='1']")


async def test_the_call_page_shows_both_lanes_the_turns_and_the_tool_call(
    page: Any, booking: dict[str, Any]
) -> None:
    await _open(page, booking["id"])
    for lane in ("user", "bot"):
        drawn = await page.get_attribute(f"canvas.wave[data-lane='{lane}']", "data-drawn")
        assert drawn is not None
        assert int(drawn) > 0
        inked = await page.evaluate(
            """(lane) => {
                const canvas = document.querySelector(`canvas.wave[data-lane='${lane}']`);
                const pixels = canvas.getContext('2d')
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                let inked = 0;
                for (let i = 3; i < pixels.length; i += 4) { if (pixels[i]) inked++; }
                return inked / (canvas.width * canvas.height);
            }""",
            lane,
        )
        assert inked > 0.01, f"the {lane} lane is blank"

    entries = booking["transcript"]
    assert len(entries) == 7
    shown = await page.eval_on_selector_all(
        "#transcript li.turn",
        "items => items.map(li => [Number(li.dataset.startMs), "
        "li.querySelector('.text').textContent])",
    )
    assert shown == [[e["startOffsetMs"], e["text"]] for e in entries]
    assert [start for start, _ in shown] == sorted(start for start, _ in shown)
    speakers = await page.eval_on_selector_all(
        "#transcript li.turn .speaker", "s => s.map(x => x.textContent)"
    )
    assert speakers == ["Bot" if e["role"] == "AGENT" else "User" for e in entries]

    tool = page.locator("#transcript li.tool")
    assert await tool.count() == 1
    assert await tool.locator(".tool-name").text_content() == "book_table"
    arguments = await tool.locator(".tool-arguments").text_content()
    result = await tool.locator(".tool-result").text_content()
    assert arguments is not None
    assert result is not None
    assert json.loads(arguments) == {"people": 2, "time": "19:00"}
    assert json.loads(result) == {"ok": True, "table": 12}
    assert '\n  "people": 2' in arguments  # indented, not as sent
    # Listed where it happened: after the user's request, before the bot's answer.
    order = await page.eval_on_selector_all(
        "#transcript > li",
        "items => items.map(li => li.classList.contains('tool') ? 'tool' : li.dataset.turn)",
    )
    assert order.index("tool") == 2
    assert await page.locator("#markers .marker.tool").count() == 1
    assert page.errors == []


async def test_clicking_a_turn_plays_it_from_its_onset_and_the_highlight_follows(
    page: Any, booking: dict[str, Any]
) -> None:
    await _open(page, booking["id"])
    await page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    await page.evaluate(RECORD_SEEKS)
    third = booking["transcript"][2]["startOffsetMs"]
    await page.click("#turn-3 button.seek")
    await page.wait_for_function("() => window.seekedAt.length > 0 && window.playedAt.length > 0")
    assert not await page.evaluate("document.getElementById('player').paused")
    landed = await page.evaluate("window.seekedAt[0]")
    assert abs(landed * 1000 - third) <= 300
    assert await page.get_attribute("#turn-3", "aria-current") == "true"

    # The highlight follows the audio.
    await page.wait_for_function(
        "(t) => document.getElementById('player').currentTime > t",
        arg=(third + 1500) / 1000,
        timeout=10000,
    )
    moment, highlighted = await page.evaluate(
        """() => [document.getElementById('player').currentTime * 1000,
                  Number(document.querySelector('#transcript li.turn.current').dataset.turn)]"""
    )
    entries = booking["transcript"]
    assert highlighted in {_expected_turn(entries, moment), _expected_turn(entries, moment - 250)}

    # With no control focused, Space pauses and plays.
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("Space")
    assert await page.evaluate("document.getElementById('player').paused")
    await page.keyboard.press("Space")
    assert not await page.evaluate("document.getElementById('player').paused")
    await page.keyboard.press("Space")
    assert await page.evaluate("document.getElementById('player').paused")

    # Arrow keys move between turns and seek to each one's onset.
    await page.keyboard.press("ArrowDown")
    current = int(await page.get_attribute("#transcript li.turn.current", "data-turn") or 0)
    position = await page.evaluate("document.getElementById('player').currentTime")
    assert position * 1000 == pytest.approx(entries[current - 1]["startOffsetMs"], abs=50)
    await page.keyboard.press("ArrowUp")
    assert (
        int(await page.get_attribute("#transcript li.turn.current", "data-turn") or 0)
        == current - 1
    )
    assert page.errors == []


async def test_latency_bars_and_the_interruption_are_on_the_timeline(
    page: Any, booking: dict[str, Any]
) -> None:
    await _open(page, booking["id"])
    analytics = booking["analytics"]
    latencies = analytics["responseLatencies"]
    assert len(latencies) >= 3
    bars = await page.eval_on_selector_all(
        "#latency-bars .tl-bar", "bars => bars.map(b => Number(b.dataset.latencyMs))"
    )
    assert bars == [round(v * 1000) for v in latencies]

    cuts = [m for m in booking["details"]["metrics"] if m["kind"] == "interruption"]
    assert len(cuts) == 1
    assert await page.locator("#timeline .tl-cut").count() == 1
    interrupted = page.locator("#transcript li.turn.interrupted")
    assert await interrupted.count() == 1
    assert int(await interrupted.get_attribute("data-start-ms") or -1) == cuts[0]["botTurnOffsetMs"]
    # The words played before the cut: how far the audio got, which a busy machine moves.
    played = cuts[0]["playedWords"]
    assert 0 < played < len(CUT_WORDS)
    assert await interrupted.locator(".text").text_content() == " ".join(CUT_WORDS[:played])
    assert "played" in (await interrupted.locator(".badge.b-interrupted").text_content() or "")

    p50 = await page.text_content("[data-figure='p50']")
    assert p50 == f"{percentile(latencies, 0.5):.2f} s"
    assert await page.text_content("[data-figure='interruptions']") == "1"

    assert page.errors == []


async def test_the_pages_screenshots_show_a_support_call(
    context: Any, showcase_project: tuple[Protocol, list[Any]]
) -> None:
    client, calls = showcase_project
    call = newest_support_call(calls)
    page = await support_call_page(context, showcase_project)
    latencies = client.get(f"/v1/call/{call.call_id}/analytics")["data"]["responseLatencies"]
    assert await page.locator("#latency-bars .tl-bar").count() == len(latencies)
    assert await page.locator("#timeline .tl-cut").count() == 1
    cut = page.locator("#transcript li.turn.interrupted")
    assert await cut.locator(".text").text_content() == "Unfortunately the courier"
    await screenshot(page, "call-page.png")
    await page.emulate_media(color_scheme="dark")
    await screenshot(page, "call-page-dark.png")
    assert page.errors == []
