"""The waveform's time axis: a ruler, zoom down to single words, and the turns, tool calls,
interruptions and latency bars drawn as lanes on that same axis."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import newest_support_call, support_call_page
from .live import Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Where a time (ms) sits on screen, and what time sits under an x, by the timeline's own box.
X_OF = """(ms) => {
    const box = document.getElementById('timeline').getBoundingClientRect();
    const span = Number(document.getElementById('timeline').dataset.durationMs);
    return box.left + box.width * ms / span;
}"""

# Scroll the zoomed timeline so that a time (ms) is in the middle of the screen.
CENTRE_ON = """(ms) => {
    const s = document.getElementById('scroller');
    const t = document.getElementById('timeline');
    s.scrollLeft = t.clientWidth * ms / Number(t.dataset.durationMs) - s.clientWidth / 2;
}"""


async def test_zoom_reaches_single_words_and_every_lane_shares_the_axis(
    context: Any, showcase_project: tuple[Protocol, list[Any]]
) -> None:
    call = newest_support_call(showcase_project[1])
    page = await support_call_page(context, showcase_project, {"width": 1280, "height": 800})
    await page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    view = await page.evaluate(f"fetch('/calls/{call.call_id}.json').then(r => r.json())")
    span = view["timelineMs"]
    # The audio's own duration does not stretch the axis past the timeline here.
    duration = await page.evaluate("document.getElementById('player').duration * 1000")
    assert duration <= span + 1

    ticks = await page.eval_on_selector_all("#ruler .tick", "t => t.map(x => x.textContent)")
    assert ticks[0] == "0:00"
    assert len(ticks) >= 3

    # "+" zooms in from the keyboard, the button does the same.
    await page.keyboard.press("+")
    assert await page.text_content("#zoom-level") != "Whole call"
    while await page.is_enabled("#zoom-in"):
        await page.click("#zoom-in")
    shown = await page.evaluate(
        """() => {
            const s = document.getElementById('scroller'), t = document.getElementById('timeline');
            return s.clientWidth / t.clientWidth;
        }"""
    )
    window_ms = shown * span
    assert 1000 <= window_ms <= 2000  # about a word or two on screen
    # The ruler counts tenths of a second now, and the page itself still does not scroll.
    labels = await page.eval_on_selector_all("#ruler .tick", "t => t.map(x => x.textContent)")
    assert any(not label.endswith(".0") for label in labels), labels
    wide = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert wide[0] <= wide[1]

    # Each lane's marks sit at their times on the one axis: a click where the axis puts the
    # bot's fourth turn, the tool call, a latency bar's end or the interruption lands there.
    pixel_ms = span / await page.evaluate("document.getElementById('timeline').clientWidth")
    tool = view["tools"][0]
    cut = view["interruptions"][0]
    latency = view["latencies"][1]
    for label, ms, selector, edge in (
        ("turn", view["turns"][3]["startMs"], "#markers [data-turn='4']", "left"),
        ("tool", tool["startMs"], "#markers .marker.tool", "centre"),
        (
            "latency",
            latency["atMs"],
            f"#latency-bars .tl-bar[data-turn='{latency['turn']}']",
            "right",
        ),
        ("interruption", cut["atMs"], "#timeline .tl-cut", "left"),
    ):
        await page.evaluate(CENTRE_ON, ms)
        box = await page.locator(selector).first.bounding_box()
        assert box is not None, label
        x = {
            "left": box["x"],
            "centre": box["x"] + box["width"] / 2,
            "right": box["x"] + box["width"],
        }[edge]
        expected_x = await page.evaluate(X_OF, ms)
        assert abs(x - expected_x) <= 3, label  # within the marks' borders
        await page.mouse.click(expected_x, box["y"] + box["height"] / 2)
        landed = await page.evaluate("document.getElementById('player').currentTime * 1000")
        assert abs(landed - ms) <= 2 * pixel_ms + 1, label
    assert page.errors == []
