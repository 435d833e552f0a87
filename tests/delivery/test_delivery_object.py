"""``Delivery``: each one keeps the options it was given, in one event loop with others."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipecat_roark.delivery.delivery import Delivery, default_delivery
from pipecat_roark.delivery.retry import Backoff, DeliveryOptions
from pipecat_roark.delivery.spool import Spool
from tests.support.backend import RecordingBackend, closed_port_url


def started(call_id: str) -> dict[str, str]:
    return {"event": "call-started", "pipecatCallId": call_id, "agentId": "a"}


def ended(call_id: str) -> dict[str, str]:
    return {"event": "call-ended", "pipecatCallId": call_id, "agentId": "a"}


async def test_two_deliveries_in_one_loop_each_keep_their_own_retry_budget(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    backend.faults["call-started"] = lambda n: 503 if n <= 3 else None  # retry-after: 0
    impatient = Delivery(DeliveryOptions(deadline=0.0), spool_dir=tmp_path / "impatient")
    patient = Delivery(
        DeliveryOptions(deadline=30.0, backoff=Backoff(initial=0.01, cap=0.05)),
        spool_dir=tmp_path / "patient",
    )
    try:
        first = impatient.open_lane("first", base_url=backend.url, api_key="k")
        first.call_started(started("first"))
        first.call_ended(ended("first"))
        assert not await first.flush(10.0)  # one refusal, no budget left: spooled

        second = patient.open_lane("second", base_url=backend.url, api_key="k")
        second.call_started(started("second"))
        second.call_ended(ended("second"))
        assert await second.flush(10.0)  # two refusals retried, then delivered
    finally:
        await impatient.aclose()
        await patient.aclose()

    assert first.stats.as_dict() == {
        "sent": 0,
        "retried": 0,
        "spooled": 2,
        "replayed": 0,
        "dropped": 0,
        "failed": 0,
    }
    assert second.stats.retried == 2
    assert second.stats.spooled == 0
    assert Spool(tmp_path / "impatient").pending() == 2
    assert Spool(tmp_path / "patient").pending() == 0
    assert backend.counts["call-started"] == 4


async def test_two_deliveries_in_one_loop_each_keep_their_own_memory_bound(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    nothing_in_memory = Delivery(
        DeliveryOptions(max_pending_requests=0), spool_dir=tmp_path / "bounded"
    )
    roomy = Delivery(spool_dir=tmp_path / "roomy")
    try:
        lanes = []
        for delivery, call_id in ((nothing_in_memory, "bounded"), (roomy, "roomy")):
            lane = delivery.open_lane(call_id, base_url=backend.url, api_key="k")
            lane.call_started(started(call_id))
            for index in range(3):
                lane.chunk(index, bytes([index]) * 320)
            lane.call_ended(ended(call_id))
            lanes.append(lane)
        results = await asyncio.gather(*(lane.flush(10.0) for lane in lanes))
    finally:
        await nothing_in_memory.aclose()
        await roomy.aclose()

    assert results == [False, True]
    assert lanes[0].stats.spooled == 5  # straight to the spool, the backend was up
    assert lanes[1].stats.spooled == 0
    assert {r.call_id for r in backend.requests} == {"roomy"}


def test_the_default_delivery_is_built_from_the_documented_defaults_only() -> None:
    Delivery(DeliveryOptions(deadline=1.0, max_buffered_bytes=1))  # someone else's options
    assert default_delivery().options == DeliveryOptions()
    assert default_delivery() is default_delivery()


async def test_audio_held_in_memory_during_an_outage_stays_within_the_bound(
    tmp_path: Path,
) -> None:
    chunk = b"\x01" * 3200
    bound = 16 * len(chunk)
    delivery = Delivery(DeliveryOptions(deadline=0.0, max_buffered_bytes=bound), spool_dir=tmp_path)
    try:
        lanes = [
            delivery.open_lane(f"call-{n}", base_url=closed_port_url(), api_key="k")
            for n in range(5)
        ]
        held = []
        for lane in lanes:
            lane.call_started(started(lane.call_id))
        for index in range(100):  # un-paced: the worker never gets to run in between
            for lane in lanes:
                lane.chunk(index, chunk)
                held.append(sum(each.buffered_bytes for each in lanes))
        for lane in lanes:
            lane.call_ended(ended(lane.call_id))
        results = await asyncio.gather(*(lane.flush(30.0) for lane in lanes))
    finally:
        await delivery.aclose()

    assert max(held) <= bound + len(chunk)
    assert results == [False] * 5
    assert [lane.stats.spooled for lane in lanes] == [102] * 5
    assert [lane.stats.dropped for lane in lanes] == [0] * 5
    assert Spool(tmp_path).pending() == 5 * 102


async def test_requests_held_in_memory_during_an_outage_stay_within_the_bound(
    tmp_path: Path,
) -> None:
    delivery = Delivery(DeliveryOptions(deadline=0.0, max_pending_requests=10), spool_dir=tmp_path)
    try:
        lane = delivery.open_lane("call", base_url=closed_port_url(), api_key="k")
        lane.call_started(started("call"))
        held = []
        for index in range(200):
            lane.chunk(index, b"\x01" * 320)
            held.append(lane.pending_requests)
        lane.call_ended(ended("call"))
        assert not await lane.flush(30.0)
    finally:
        await delivery.aclose()

    assert max(held) <= 11
    assert lane.stats.spooled == 202
    assert Spool(tmp_path).pending() == 202
