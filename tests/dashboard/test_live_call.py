"""A call in progress: its page says so, counts its audio so far, and follows the call
without a reload until its recording is stitched."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.harness import ended, pcm

from .conftest import logged_in
from .live import Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHUNK = 128_000  # 4 s of 16 kHz stereo, 0.12 MB


async def test_a_call_in_progress_shows_its_turns_once_it_ends_without_a_reload(
    context: Any, acme: Protocol
) -> None:
    acme.start("live-call")
    (found,) = [
        c
        for c in acme.get("/v1/call", searchText="live-call")["data"]
        if c["externalId"] == "live-call"
    ]
    page = await logged_in(context, acme, f"/calls/{found['id']}")
    await page.wait_for_selector("#call[data-ready='1']")
    assert await page.text_content("#live-badge") == "in progress"
    waiting = await page.text_content("#no-turns") or ""
    assert "in progress" in waiting
    assert "no one spoke" not in waiting.lower()
    assert "carries no metrics" not in (await page.text_content("#summary") or "")
    await page.evaluate("window.sameDocument = true")

    # Its recording so far: the chunks uploaded, counted as they arrive.
    assert await page.text_content("#received") == "0 chunks, 0.0 MB"
    acme.upload("live-call", 0, pcm(CHUNK))
    await page.wait_for_function(
        "() => document.getElementById('received').textContent === '1 chunk, 0.1 MB'",
        timeout=15_000,
    )

    expected = [turn["content"] for turn in ended("live-call")["transcript"]]
    acme.end("live-call")
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#transcript li.turn').length === n",
        arg=len(expected),
        timeout=15_000,  # the page follows the call: its turns within 15 s of call-ended
    )
    shown = await page.eval_on_selector_all(
        "#transcript li.turn .text", "items => items.map(p => p.textContent)"
    )
    assert shown == expected
    assert await page.evaluate("window.sameDocument === true")  # no reload
    assert await page.locator("#live-badge").count() == 0
    # Then its stitched recording, still without a reload.
    await page.wait_for_selector("#player", state="attached", timeout=15_000)
    await page.wait_for_selector("#call[data-ready='1'] canvas.wave[data-drawn]")
    assert await page.evaluate("window.sameDocument === true")
    assert page.errors == []
