"""The demo's calls through the observer: every reply's waterfall spans the response
latency measured on the recording, and is Pipecat's own breakdown of that reply."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("hibari", reason="needs the [demo] extra")
pytest.importorskip("pocketsphinx", reason="needs the [demo] extra")

from pipecat_roark.demo.call import play_call
from pipecat_roark.demo.scenarios import SCENARIOS
from tests.observer.helpers import observer_for
from tests.support.backend import RecordingBackend


@pytest.mark.parametrize("scenario", ["booking", "interruption"])
async def test_each_reply_sums_to_its_latency_on_the_recording(
    backend: RecordingBackend, scenario: str
) -> None:
    observer = observer_for(backend)
    reported: list[Any] = []
    observer.latency_observer.add_event_handler(
        "on_latency_breakdown", lambda _, breakdown: reported.append(breakdown)
    )
    await play_call(
        SCENARIOS[scenario], speed=1.0, observers=[observer], recorder=observer.audio_processor
    )
    ended = backend.call_ended()
    heard = {m["turnIndex"]: m for m in ended["metrics"] if m["kind"] == "turn_latency"}
    replies = [m for m in ended["metrics"] if m["kind"] == "latency_breakdown"]
    answered = [reply for reply in replies if "turnIndex" in reply]
    assert len(answered) == len(heard) >= 2
    for reply in answered:
        latency = heard[reply["turnIndex"]]
        total = sum(c["durationSecs"] for c in reply["contributions"])
        assert total == pytest.approx(latency["value"], abs=0.02)
        assert all(c["durationSecs"] >= 0 for c in reply["contributions"])
    # Pipecat's own report of each reply, part for part.
    ours = [
        [
            (c["key"], c["owner"], c.get("reportedSecs", c["durationSecs"]))
            for c in r["contributions"]
        ]
        for r in replies
    ]
    theirs = [
        [(c.key, c.owner, c.duration_secs) for c in b.contributions]
        for b in reported
        if b.contributions
    ]
    assert ours == theirs
