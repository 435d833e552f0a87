"""Layout on a phone (390 x 844) and a desktop (1280 x 800): no page scrolls sideways, the
call page opens on its player and transcript, and on a phone the player keeps to a quarter
of the screen."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import logged_in, newest_support_call, screenshot, support_call_page
from .live import Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


async def _pages(client: Protocol, calls: list[Any]) -> list[str]:
    agent = client.get("/v1/agent")["data"][0]["id"]
    return [
        "/calls",
        "/calls?interrupted=1&sort=latency",
        f"/calls/{newest_support_call(calls).call_id}",
        "/agents",
        f"/agents/{agent}",
        "/calls/no-such-call",
        "/no/such/page",
    ]


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_no_page_scrolls_sideways(
    context: Any, showcase_project: tuple[Protocol, list[Any]], size: dict[str, int]
) -> None:
    client, calls = showcase_project
    page = await logged_in(context, client)
    await page.set_viewport_size(size)
    for path in await _pages(client, calls):
        await page.goto(path)
        if path.startswith("/calls/") and "no-such" not in path:
            await page.wait_for_selector("#call[data-ready='1']")
        wide = await page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert wide[0] <= wide[1], (path, wide)
    login = await context.new_page()
    await login.set_viewport_size(size)
    await context.clear_cookies()
    await login.goto("/login")
    wide = await login.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= wide[1], ("/login", wide)
    assert page.errors == []


async def test_charts_keep_their_proportions_on_a_phone(
    context: Any, showcase_project: tuple[Protocol, list[Any]]
) -> None:
    client, _ = showcase_project
    agent = client.get("/v1/agent")["data"][0]["id"]
    page = await logged_in(context, client, f"/agents/{agent}")
    await page.set_viewport_size(PHONE)
    ratios = await page.eval_on_selector_all(
        "figure.chart svg",
        """charts => charts.map(svg => {
            const box = svg.getBoundingClientRect();
            const view = svg.viewBox.baseVal;
            return [box.width / box.height, view.width / view.height];
        })""",
    )
    assert len(ratios) == 2
    for shown, drawn in ratios:
        assert shown == pytest.approx(drawn, rel=0.02)


async def test_the_call_page_opens_on_the_player_and_the_transcript(
    context: Any, showcase_project: tuple[Protocol, list[Any]]
) -> None:
    page = await support_call_page(context, showcase_project, DESKTOP)
    for selector in ("#timeline", "#play", "#transcript li.turn"):
        box = await page.locator(selector).first.bounding_box()
        assert box is not None
        assert box["y"] + box["height"] <= DESKTOP["height"], selector
    # Details fold away; one set of play controls (the audio element shows none of its own).
    assert not await page.evaluate("document.getElementById('meta').open")
    assert await page.get_attribute("#player", "controls") is None
    assert await page.locator("button#play").count() == 1


async def test_on_a_phone_the_player_takes_at_most_a_quarter_of_the_screen(
    context: Any, showcase_project: tuple[Protocol, list[Any]]
) -> None:
    page = await support_call_page(context, showcase_project, PHONE)
    player = await page.locator("section.player").bounding_box()
    assert player is not None
    assert player["height"] <= PHONE["height"] / 4
    # Scrolled down the transcript, the player stays on screen and still a quarter at most.
    await page.locator("#transcript li.turn").last.scroll_into_view_if_needed()
    player = await page.locator("section.player").bounding_box()
    assert player is not None
    assert 0 <= player["y"] < PHONE["height"] / 4
    await page.evaluate("window.scrollTo(0, 0)")
    await screenshot(page, "call-page-phone.png")
    assert page.errors == []
