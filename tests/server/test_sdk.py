"""The official roark-analytics SDK, strict, against the server on a real uvicorn socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pipecat_roark.server.embed import ensure_project_key, serve_in_background
from pipecat_roark.server.settings import ServerSettings

from .harness import Harness, pcm

roark_analytics = pytest.importorskip("roark_analytics")


@pytest.fixture
async def live(sqlite_settings: ServerSettings) -> AsyncIterator[Harness]:
    import httpx

    key = await ensure_project_key(sqlite_settings, "sdk")
    async with serve_in_background(sqlite_settings) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            yield Harness(client=client, key=key, settings=sqlite_settings)


async def test_the_official_sdk_lists_pages_gets_and_reads_transcripts(live: Harness) -> None:
    for number in range(3):
        await live.start(f"sdk-{number}")
        await live.upload(f"sdk-{number}", 0, pcm(3200, seed=number))
        await live.end(f"sdk-{number}")
    sdk = roark_analytics.AsyncRoark(
        bearer_token=live.key,
        base_url=str(live.client.base_url),
        max_retries=0,
        _strict_response_validation=True,
    )
    first = await sdk.call.list(limit=2)
    assert first.pagination.has_more is True
    assert first.pagination.total == 3
    second = await sdk.call.list(limit=2, after=first.pagination.next_cursor)
    assert second.pagination.has_more is False
    calls = first.data + second.data
    assert sorted(c.external_id for c in calls) == ["sdk-0", "sdk-1", "sdk-2"]

    one = (await sdk.call.get_by_id(calls[0].id)).data
    assert one.id == calls[0].id
    assert one.status == "ENDED"
    transcript = (await sdk.call.get_transcript(calls[0].id)).data
    assert [(e.role, e.text) for e in transcript.entries] == [
        ("AGENT", "Hello, how can I help?"),
        ("CUSTOMER", "Where is my order?"),
    ]
    agents = await sdk.agent.list()
    assert [a.custom_id for a in agents.data] == ["agent-1"]
    assert (await sdk.agent.get_by_id(agents.data[0].id)).data.name == "Support bot"
    deleted = await sdk.call.delete(calls[0].id)
    assert deleted.data.deleted is True
    with pytest.raises(roark_analytics.NotFoundError):
        await sdk.call.get_by_id(calls[0].id)
    await sdk.close()
