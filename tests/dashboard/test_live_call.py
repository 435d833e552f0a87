"""A call in progress: its page says so, and follows the call without a reload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.harness import ended

from .conftest import logged_in
from .live import Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")


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
    assert page.errors == []
