"""Hard calls render correctly and safely: no recording, a lost chunk, no turns, 2 000 turns,
and text that is HTML or script (sent through the ingest API, shown as text)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server.harness import pcm

from .conftest import logged_in
from .live import LiveServer, Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHUNK = 128_000  # two seconds of 16 kHz 16-bit stereo
SCRIPT = "<script>window.__pwned = 'script'</script>"
ATTRIBUTE = '"><img src=x onerror="window.__pwned=\'img\'">'
MARKUP = "<b>bold</b> & <i>co</i>"


def _turn(role: str, text: str, at: int, length: int = 800) -> dict[str, Any]:
    return {
        "role": role,
        "content": text,
        "timestamp": "2026-01-01T12:00:00+00:00",
        "endTimestamp": "2026-01-01T12:00:01+00:00",
        "audioOffsetMs": at,
        "endAudioOffsetMs": at + length,
    }


async def _open(page: Any, call_id: str) -> None:
    answer = await page.goto(f"/calls/{call_id}")
    assert answer.status == 200
    await page.wait_for_selector("#call[data-ready='1']")


async def test_a_call_without_a_recording(page: Any, acme: Protocol) -> None:
    call_id = acme.end(
        "render-no-audio",
        transcript=[_turn("assistant", "Hello there", 200), _turn("user", "Hi", 1500)],
    )
    await _open(page, call_id)
    assert "has no recording" in (await page.text_content("#no-recording") or "")
    assert await page.locator("audio").count() == 0
    assert await page.locator("canvas.wave").count() == 0
    assert await page.locator("#transcript li.turn").count() == 2
    assert await page.locator("#markers .marker").count() == 2
    # Clicking a turn with nothing to play does nothing harmful.
    await page.click("#turn-2 button.seek")
    assert page.errors == []


async def test_a_missing_chunk_shows_as_a_gap_with_a_note(page: Any, acme: Protocol) -> None:
    acme.start("render-gap")
    for index in (0, 2):  # chunk 1 never arrives
        acme.upload("render-gap", index, pcm(CHUNK, seed=index))
    call_id = acme.end(
        "render-gap",
        transcript=[_turn("user", "Are you there?", 500), _turn("assistant", "Yes!", 4500)],
    )
    details = acme.wait_stitched(call_id)
    assert details["recording"]["missingChunks"] == [1]
    await _open(page, call_id)
    note = await page.text_content(".gap-note")
    assert "Chunk 2 of the recording is missing" in (note or "")
    assert "2.0 s of silence" in (note or "")
    gap = page.locator("#timeline .tl-gap")
    assert await gap.count() == 1
    style = await gap.get_attribute("style") or ""
    assert "left: 33.3" in style  # the second of three two-second chunks
    assert await page.get_attribute("canvas.wave[data-lane='user']", "data-drawn")
    assert page.errors == []


async def test_a_call_with_no_turns(page: Any, acme: Protocol) -> None:
    call_id = acme.end("render-empty", transcript=[])
    await _open(page, call_id)
    assert "has no turns" in (await page.text_content("#no-turns") or "")
    assert await page.locator("#transcript li").count() == 0
    assert page.errors == []


async def test_a_call_with_2000_turns(page: Any, acme: Protocol) -> None:
    turns = [
        _turn("user" if n % 2 else "assistant", f"Turn number {n + 1}", 1000 * n, 900)
        for n in range(2000)
    ]
    call_id = acme.end("render-long", transcript=turns)
    await _open(page, call_id)
    assert await page.locator("#transcript li.turn").count() == 2000
    assert await page.locator("#markers .marker").count() == 2000
    assert await page.text_content("#turn-2000 .text") == "Turn number 2000"
    starts = await page.eval_on_selector_all(
        "#transcript li.turn", "items => items.map(li => Number(li.dataset.startMs))"
    )
    assert starts == [1000 * n for n in range(2000)]
    assert page.errors == []


async def test_html_and_script_in_what_was_sent_is_shown_as_text(
    browser: Any, live: LiveServer, acme: Protocol
) -> None:
    # Without the page's Content-Security-Policy, so escaping alone has to hold.
    context = await browser.new_context(base_url=live.url, bypass_csp=True)
    try:
        await _hostile_text_is_inert(await logged_in(context, acme), acme)
    finally:
        await context.close()


async def _hostile_text_is_inert(page: Any, acme: Protocol) -> None:
    hostile = f"{SCRIPT}{ATTRIBUTE}"
    acme.start(
        f"render-{ATTRIBUTE}",
        agentId="xss-agent",
        agentName=f"{MARKUP}{ATTRIBUTE}",
        agentPrompt=f"Line one\n{SCRIPT}\n{ATTRIBUTE}",
    )
    call_id = acme.end(
        f"render-{ATTRIBUTE}",
        callEndedReason=f"{SCRIPT}",
        transcript=[
            _turn("user", hostile, 100),
            _turn("assistant", MARKUP, 1200),
        ],
        toolCalls=[
            {
                "kind": "tool_call",
                "toolCallId": "t1",
                "name": f"{SCRIPT}",
                "arguments": json.dumps({"q": ATTRIBUTE}),
                "timestamp": "2026-01-01T12:00:00+00:00",
                "audioOffsetMs": 1100,
            },
            {
                "kind": "tool_result",
                "toolCallId": "t1",
                "content": hostile,
                "timestamp": "2026-01-01T12:00:00+00:00",
                "audioOffsetMs": 1150,
            },
        ],
    )
    await _open(page, call_id)
    assert await page.text_content("#turn-1 .text") == hostile
    assert await page.text_content("#turn-2 .text") == MARKUP
    assert await page.text_content("li.tool .tool-name") == SCRIPT
    assert await page.text_content("li.tool .tool-result") == hostile
    shown_arguments = await page.text_content("li.tool .tool-arguments") or ""
    assert json.loads(shown_arguments) == {"q": ATTRIBUTE}
    assert await page.locator("#transcript img, #transcript b, #transcript script").count() == 0
    assert await page.locator("main img, main b, main i").count() == 0
    assert await page.locator("main script").count() == 0
    assert await page.evaluate("() => window.__pwned") is None

    # The same text in the list, the agents page and the agent's revisions.
    for path in ("/calls", "/agents"):
        await page.goto(path)
        assert await page.locator("main img, main b, main i, main script").count() == 0
        assert await page.evaluate("() => window.__pwned") is None
    agent = next(
        a for a in acme.get("/v1/agent", limit=100)["data"] if a["customId"] == "xss-agent"
    )
    await page.goto(f"/agents/{agent['id']}")
    assert await page.locator("main img, main b, main i, main script").count() == 0
    assert SCRIPT in (await page.text_content("pre.prompt") or "")
    assert await page.evaluate("() => window.__pwned") is None
    assert page.errors == []
