"""The call's clock: speech goes by at --speed, waiting for the bot passes in real time,
and the caller never runs far ahead of what the output side has seen."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipecat_roark.demo.clock import PlayoutClock

RATE = 16000
FRAME = 320  # 20 ms


async def _send_for(clock: PlayoutClock, seconds: float, *, waiting: bool) -> float:
    started = time.monotonic()
    for _ in range(round(seconds / 0.02)):
        await clock.send(FRAME, waiting=waiting)
        clock.heard(FRAME)
    return time.monotonic() - started


@pytest.mark.parametrize("speed", [1.0, 2.0, 4.0])
async def test_speech_goes_by_at_the_speed(speed: float) -> None:
    elapsed = await _send_for(PlayoutClock(sample_rate=RATE, speed=speed), 0.8, waiting=False)
    assert elapsed == pytest.approx(0.8 / speed, abs=0.12)


async def test_at_max_speed_nothing_waits() -> None:
    elapsed = await _send_for(PlayoutClock(sample_rate=RATE, speed=None), 2.0, waiting=False)
    assert elapsed < 0.2


@pytest.mark.parametrize("speed", [4.0, None])
async def test_waiting_for_the_bot_passes_in_real_time(speed: float | None) -> None:
    elapsed = await _send_for(PlayoutClock(sample_rate=RATE, speed=speed), 0.4, waiting=True)
    assert elapsed == pytest.approx(0.4, abs=0.12)


async def test_the_caller_waits_for_the_output_side_to_catch_up() -> None:
    clock = PlayoutClock(sample_rate=RATE, speed=None, lookahead_secs=0.06)
    for _ in range(4):
        await clock.send(FRAME, waiting=False)
    blocked = asyncio.create_task(clock.send(FRAME, waiting=False))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    clock.heard(2 * FRAME)
    assert await asyncio.wait_for(blocked, 1) == 4 * FRAME
    assert clock.sent_samples == 5 * FRAME


async def test_the_bot_plays_only_once_the_caller_has_reached_its_slot() -> None:
    clock = PlayoutClock(sample_rate=RATE, speed=None)
    waiting = asyncio.create_task(clock.wait_heard(3 * FRAME))
    clock.heard(2 * FRAME)
    await asyncio.sleep(0.01)
    assert not waiting.done()
    clock.heard(FRAME)
    await asyncio.wait_for(waiting, 1)


async def test_closing_the_caller_releases_the_bot() -> None:
    clock = PlayoutClock(sample_rate=RATE, speed=None)
    waiting = asyncio.create_task(clock.wait_heard(10 * FRAME))
    await asyncio.sleep(0.01)
    clock.close_caller()
    await asyncio.wait_for(waiting, 1)
    assert clock.caller_closed


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        PlayoutClock(sample_rate=RATE, speed=0)
