"""The agents pages: calls per agent, prompt revisions with a diff, and per-day trends."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import logged_in, screenshot
from .live import Protocol
from .showcase import BOOKING_PROMPTS

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_agent_page_shows_revisions_a_diff_and_trends(
    context: Any, showcase_project: tuple[Protocol, list[Any]]
) -> None:
    client, calls = showcase_project
    page = await logged_in(context, client, "/agents")
    rows = page.locator("table.agents tbody tr")
    assert await rows.count() == 2
    booking_calls = sum(1 for c in calls if c.agent == "booking-bot") + 1  # and the live one
    booking = page.locator("tr", has_text="Booking bot")
    assert (await booking.locator("td").nth(2).text_content() or "").strip() == str(booking_calls)
    await booking.locator("a").first.click()
    await page.wait_for_url("**/agents/*")
    agent_id = page.url.rsplit("/", 1)[-1]

    # Two revisions, and the diff between them: the new lines added, the changed one swapped.
    assert await page.locator("ol.revisions > li").count() == 2
    added = await page.locator("pre.diff .add ins").all_text_contents()
    removed = await page.locator("pre.diff .del del").all_text_contents()
    old, new = (set(p.splitlines()) for p in BOOKING_PROMPTS)
    assert {line.strip() for line in added} == new - old
    assert {line.strip() for line in removed} == old - new

    # Trends: the page's figures are the REST API's, and both lines are drawn.
    trends = client.get(f"/v1/agent/{agent_id}/analytics")["data"]
    total = trends["total"]
    assert await page.text_content("[data-figure='agent-p50']") == (
        f"{total['responseLatencyP50']:.2f} s"
    )
    assert await page.text_content("[data-figure='agent-p95']") == (
        f"{total['responseLatencyP95']:.2f} s"
    )
    with_values = sum(1 for d in trends["days"] if d["responseLatencyP50"] is not None)
    assert await page.locator("#chart-latency circle.p50").count() == with_values
    assert await page.locator("#chart-latency circle.p95").count() == with_values
    assert await page.locator("#chart-latency polyline").count() >= 2
    assert await page.locator("#chart-interruptions circle.rate").count() == with_values
    recent = await page.eval_on_selector_all(
        "table.calls tbody tr", "rows => rows.map(r => r.dataset.callId)"
    )
    assert len(recent) == booking_calls
    await page.goto(f"/agents/{agent_id}?days=7")
    await screenshot(page, "agent-page.png", full_page=True)
    await page.goto(f"/agents/{agent_id}?diff_from=2&diff_to=1")
    assert await page.text_content("#revisions h3") == "Revision 2 \u2192 revision 1"

    support = next(c for c in calls if c.agent == "support-bot")
    await page.goto(f"/calls?agent={agent_id}")
    assert support.call_id not in await page.content()
    assert page.errors == []
