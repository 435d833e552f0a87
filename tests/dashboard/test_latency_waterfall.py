"""The call page's waterfalls: a demo call played through a real Pipecat pipeline with
tracing on, its spans sent by the real OTLP HTTP exporter; each reply's parts are drawn
under the waveform, with the owner on hover, and its turn's stt, llm and tts spans under it,
their attributes one click away."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("hibari", reason="needs the [demo] extra")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs the [demo] extra")

from tests.support.traced import traced_demo_call

from .conftest import screenshot
from .live import Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced(acme: Protocol) -> dict[str, Any]:
    pipecat_call_id, sent = await traced_demo_call(acme.url, acme.key)
    assert sent > 0
    listing = acme.get("/v1/call", searchText=pipecat_call_id)["data"]
    (call,) = [c for c in listing if c["externalId"] == pipecat_call_id]
    return {"id": call["id"], "details": acme.details(call["id"])}


async def test_each_reply_has_its_waterfall_and_its_turns_spans(
    page: Any, traced: dict[str, Any]
) -> None:
    await page.goto(f"/calls/{traced['id']}")
    await page.wait_for_selector("#latency[data-ready='1']")
    assert not await page.is_hidden("#latency")
    replies = [m for m in traced["details"]["metrics"] if m["kind"] == "latency_breakdown"]
    drawn = await page.query_selector_all("#latency li.reply")
    assert len(drawn) == len([r for r in replies if "audioOffsetMs" in r]) >= 2
    first = replies[0]
    titles = await drawn[0].eval_on_selector_all(
        ".bar.part", "bars => bars.map(b => b.getAttribute('title'))"
    )
    assert len(titles) == len(first["contributions"])
    for title, part in zip(titles, first["contributions"], strict=True):
        assert part["owner"] in title
        assert part["label"] in title
    # Under the replies, their turns' spans: stt, llm and tts, each with its attributes.
    names = set()
    for reply in drawn:
        names |= set(
            await reply.eval_on_selector_all(
                "[data-span]", "rows => rows.map(r => r.getAttribute('data-span'))"
            )
        )
    assert {"stt", "llm", "tts"} <= names
    # docs/latency.md shows this reply (scripts/screenshots).
    await screenshot(page.locator("#latency li.reply").first, "latency-waterfall.png")
    llm = page.locator("#latency [data-span='llm'] details").first
    await llm.locator("summary").click()
    assert "gen_ai" in await llm.locator("pre").inner_text()
    assert page.errors == []
