"""Keyboard use of the dashboard: keys on a focused control are the control's, play and pause
only with nothing focused, shortcuts under ``?``, links to a moment, and a walk by Tab alone."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import pytest_asyncio

from .conftest import logged_in
from .live import Protocol
from .observed import observed_call

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLAYER = "document.getElementById('player')"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def call(acme: Protocol) -> dict[str, Any]:
    """The observer's call, stitched, and its transcript as the REST API gives it."""
    pipecat_id = await observed_call(acme.url, acme.key)
    (found,) = [
        c
        for c in acme.get("/v1/call", searchText=pipecat_id)["data"]
        if c["externalId"] == pipecat_id
    ]
    acme.wait_stitched(found["id"])
    return {
        "id": found["id"],
        "transcript": acme.get(f"/v1/call/{found['id']}/transcript")["data"]["entries"],
    }


async def _open(page: Any, path: str) -> None:
    await page.goto(path)
    await page.wait_for_selector("#call[data-ready='1']")
    await page.wait_for_function(f"() => {PLAYER}.readyState >= 1")


async def _call_page(context: Any, acme: Protocol, call: dict[str, Any]) -> Any:
    """A logged-in tab on the call's page, its recording's metadata loaded."""
    page = await logged_in(context, acme, f"/calls/{call['id']}")
    await _open(page, f"/calls/{call['id']}")
    return page


async def _tab_to(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the focus is on ``selector``."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


@pytest.mark.parametrize("key", ["Space", "Enter"])
async def test_a_key_on_the_focused_log_out_button_logs_out(
    context: Any, acme: Protocol, call: dict[str, Any], key: str
) -> None:
    page = await _call_page(context, acme, call)
    await _tab_to(page, "form.logout button")
    await page.keyboard.press(key)
    await page.wait_for_url(re.compile(r"/login$"))
    assert await page.evaluate("document.cookie") == ""
    answer = await page.goto(f"/calls/{call['id']}")
    assert answer is not None
    assert "/login" in page.url
    assert page.errors == []


async def test_space_on_any_other_button_does_that_buttons_action_not_play(
    context: Any, acme: Protocol, call: dict[str, Any]
) -> None:
    page = await _call_page(context, acme, call)

    await _tab_to(page, "#theme-toggle")
    await page.keyboard.press("Space")
    assert await page.text_content("#theme-toggle") == "Theme: light"
    assert await page.get_attribute("html", "data-theme") == "light"

    await _tab_to(page, "button.copy")
    await page.keyboard.press("Space")
    await page.wait_for_selector("button.copy[data-copied]")
    assert await page.get_attribute("button.copy", "data-copied") == await page.text_content(
        "#pipecat-call-id"
    )

    await _tab_to(page, "#zoom-in")
    await page.keyboard.press("Space")
    assert await page.text_content("#zoom-level") != "Whole call"

    third = call["transcript"][2]["startOffsetMs"]
    link = page.locator("#turn-3 button.copy-link")
    await link.focus()
    await page.keyboard.press("Space")
    await page.wait_for_selector("#turn-3 button.copy-link[data-copied]")
    copied = await link.get_attribute("data-copied")
    assert copied == f"{page.url.split('#')[0]}#t={math.ceil(third / 100) / 10:.1f}"

    await _tab_to(page, "#keys-open")
    await page.keyboard.press("Space")
    assert await page.evaluate("document.getElementById('keys').open")
    await page.keyboard.press("Escape")
    assert not await page.evaluate("document.getElementById('keys').open")

    # None of these touched the audio.
    assert await page.evaluate(f"{PLAYER}.paused")
    assert await page.evaluate(f"{PLAYER}.currentTime") == 0
    assert await page.text_content("#clock") == "0:00.0"

    # The player's own button plays on Space; with focus nowhere, Space pauses.
    await page.locator("#play").focus()
    await page.keyboard.press("Space")
    await page.wait_for_function(f"() => !{PLAYER}.paused")
    await page.evaluate("document.activeElement.blur()")
    await page.keyboard.press("Space")
    assert await page.evaluate(f"{PLAYER}.paused")
    assert page.errors == []


async def test_question_mark_lists_the_shortcuts(
    context: Any, acme: Protocol, call: dict[str, Any]
) -> None:
    page = await _call_page(context, acme, call)
    await page.keyboard.press("?")
    dialog = page.locator("#keys")
    assert await dialog.is_visible()
    listed = await dialog.inner_text()
    for key in ("Space", "Play or pause", "Next turn", "Previous turn", "?"):
        assert key in listed
    await page.keyboard.press("Escape")
    assert not await dialog.is_visible()
    assert page.errors == []


async def test_a_link_to_a_moment_opens_the_call_paused_there(
    context: Any, acme: Protocol, call: dict[str, Any]
) -> None:
    entries = call["transcript"]
    fifth = entries[4]["startOffsetMs"]
    # Within the fifth turn, not at its onset: the link names any moment.
    moment = round((fifth + 400) / 1000, 1)
    page = await logged_in(context, acme, f"/calls/{call['id']}")
    await page.set_viewport_size({"width": 1280, "height": 500})
    await _open(page, f"/calls/{call['id']}#t={moment}")
    await page.wait_for_function(f"() => Math.abs({PLAYER}.currentTime - {moment}) <= 0.3")
    assert await page.evaluate(f"{PLAYER}.paused")
    assert await page.get_attribute("#turn-5", "aria-current") == "true"
    # The transcript has scrolled to the turn: it is on screen.
    assert await page.locator("#turn-5").is_visible()
    box = await page.locator("#turn-5").bounding_box()
    listing = await page.locator("#transcript").bounding_box()
    assert box is not None
    assert listing is not None
    assert listing["y"] - 1 <= box["y"] <= listing["y"] + listing["height"]

    # A copied link opens at its moment too, in the same tab.
    second = entries[1]["startOffsetMs"]
    await page.locator("#turn-2 button.copy-link").click()
    link = await page.get_attribute("#turn-2 button.copy-link", "data-copied")
    assert link is not None
    await page.goto(link)
    await page.wait_for_function(f"() => Math.abs({PLAYER}.currentTime - {second / 1000}) <= 0.3")
    await page.wait_for_selector("#turn-2[aria-current='true']")
    assert page.errors == []


PAGES = ("/calls", "/calls/{id}", "/agents", "/agents/{agent}", "/calls/no-such-call", "/login")


async def test_a_tab_walk_reaches_every_control_on_every_page(
    context: Any, acme: Protocol, call: dict[str, Any]
) -> None:
    page = await logged_in(context, acme)
    agent = acme.get("/v1/agent")["data"][0]["id"]
    for template in PAGES:
        path = template.format(id=call["id"], agent=agent)
        if path == "/login":
            await context.clear_cookies()
        await page.goto(path)
        if "{id}" in template:
            await page.wait_for_selector("#call[data-ready='1']")
        wanted: list[str] = await page.evaluate(TABBABLE)
        assert wanted, path
        reached: set[str] = set()
        await page.evaluate("document.activeElement && document.activeElement.blur()")
        for _ in range(3 * len(wanted) + 5):  # a date field takes a Tab per part
            await page.keyboard.press("Tab")
            marked = await page.evaluate(
                "() => document.activeElement && document.activeElement.dataset.walk"
            )
            if marked:
                reached.add(marked)
                ring = await page.evaluate(
                    "() => [getComputedStyle(document.activeElement).outlineStyle,"
                    " document.activeElement.outerHTML.slice(0, 80)]"
                )
                assert ring[0] != "none", (path, ring)
        assert set(wanted) <= reached, (path, sorted(set(wanted) - reached))
    assert page.errors == []


# Marks every control a keyboard user can reach (visible, enabled, not taken out of the tab
# order) and returns the marks.
TABBABLE = """() => {
    const found = [];
    const controls = document.querySelectorAll(
        "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]");
    controls.forEach((node, index) => {
        if (node.disabled || node.tabIndex < 0) return;
        if (node.closest('dialog:not([open])')) return;
        if (node.closest('details:not([open]) > :not(summary)')) return;
        const box = node.getBoundingClientRect();
        const style = getComputedStyle(node);
        if (style.visibility === 'hidden' || style.display === 'none') return;
        if ((box.width === 0 || box.height === 0) && !node.classList.contains('skip')) return;
        node.dataset.walk = String(index);
        found.push(String(index));
    });
    return found;
}"""
