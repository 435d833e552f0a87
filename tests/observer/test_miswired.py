"""A call whose observer never reached its task is still delivered whole, never in pieces.

Pipecat 1.x drops ``PipelineParams(observers=[...])`` without a word. The observer's
recorder still runs (it is in the pipeline), so it starts and ends the call itself: the
backend gets call-started, the chunks and a call-ended marked ``observer_not_attached``,
or, with the backend down, the spool keeps all of it for a replay.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from pipecat_roark import RoarkObserver
from pipecat_roark.delivery.delivery import Delivery
from pipecat_roark.delivery.lanes import ORDER_CALL_ENDED, ORDER_CALL_STARTED
from pipecat_roark.delivery.retry import Backoff, DeliveryOptions
from pipecat_roark.delivery.spool import Spool, SpoolRecord
from pipecat_roark.observer.call_ended import NOT_ATTACHED
from tests.observer.helpers import assert_protocol
from tests.support.backend import RecordingBackend, closed_port_url
from tests.support.pipeline import CallScript, run_call
from tests.support.replay import run_replay

pytestmark = pytest.mark.skipif(
    version("pipecat-ai").startswith("0."),
    reason="Pipecat 0.0.x still runs observers given through PipelineParams",
)

FAST = DeliveryOptions(
    request_timeout=1.0, deadline=30.0, backoff=Backoff(initial=0.05, cap=0.5), replay_interval=0
)


async def greeting(script: CallScript) -> None:
    await script.bot_says(["Hello,", "this", "is", "the", "bakery."], 2.0)
    await script.user_says("one loaf please", 1.0)


async def miswired_call(
    url: str, delivery: Delivery | None = None
) -> tuple[RoarkObserver, list[bytes]]:
    observer = RoarkObserver(
        delivery=delivery, api_key="k", agent_id="a", base_url=url, flush_timeout=0.5
    )
    chunks: list[bytes] = []

    async def keep(_: object, audio: bytes, *__: Any) -> None:
        chunks.append(bytes(audio))

    observer.audio_processor.add_event_handler("on_audio_data", keep)
    await run_call(
        [], greeting, after_output=[observer.audio_processor], params={"observers": [observer]}
    )
    return observer, chunks


def assert_whole_unattached_call(backend: RecordingBackend, call_id: str, pcm: bytes) -> None:
    kinds = [r.kind for r in backend.requests if r.call_id == call_id and r.kind != "presign"]
    assert kinds[0] == "call-started"
    assert kinds[-1] == "call-ended"
    assert kinds.count("call-started") == kinds.count("call-ended") == 1
    assert backend.pcm(call_id) == pcm
    ended = backend.call_ended()
    assert NOT_ATTACHED in {m["kind"] for m in ended["metrics"]}
    assert "transcript" not in ended
    assert ended["recordingNumChannels"] == 2
    assert_protocol(backend)


async def test_with_the_backend_up_it_holds_one_complete_call(backend: RecordingBackend) -> None:
    observer, chunks = await miswired_call(backend.url)
    assert len(chunks) >= 1
    assert_whole_unattached_call(backend, observer.pipecat_call_id, b"".join(chunks))


async def test_with_the_backend_down_the_spool_holds_the_whole_call_and_replay_delivers_it(
    tmp_path: Path,
) -> None:
    url = closed_port_url()
    delivery = Delivery(FAST)
    observer, chunks = await miswired_call(url, delivery)
    spool_dir = Path(os.environ["ROARK_SPOOL_DIR"])
    # call-started, every chunk, call-ended: nothing of the call is left out of the spool.
    assert Spool(spool_dir).pending(base_url=url) == len(chunks) + 2

    backend = RecordingBackend()
    await backend.start(port=urlsplit(url).port or 0)
    try:
        status, _, stderr = await run_replay("--api-key", "k")
        assert status == 0, stderr
        assert_whole_unattached_call(backend, observer.pipecat_call_id, b"".join(chunks))
        assert Spool(spool_dir).pending() == 0
    finally:
        await backend.stop()


def _spool_records(spool: Spool, url: str, call_id: str, kinds: list[str], started: bool) -> None:
    chunks = 0
    for kind in kinds:
        if kind == "chunk":
            chunks += 1
            order, body = chunks, b"\x01\x00" * 1600  # chunk n - 1 goes n-th
        else:
            order = ORDER_CALL_STARTED if kind == "call-started" else ORDER_CALL_ENDED
            body = _event_body(kind, call_id)
        spool.write(SpoolRecord(kind, call_id, url, order, body, started=started))


def _event_body(kind: str, call_id: str) -> bytes:
    body: dict[str, Any] = {
        "event": kind,
        "pipecatCallId": call_id,
        "eventTimestamp": "2026-01-01T00:00:00+00:00",
    }
    if kind == "call-started":
        body["agentId"] = "a"
    else:
        body.update(callEndedReason="agent-ended", recordingSampleRate=16000)
        body["recordingNumChannels"] = 1
    return json.dumps(body).encode()


async def test_a_replay_reports_orphan_chunks_and_sends_nothing_for_them(
    backend: RecordingBackend,
) -> None:
    """Chunks of a call that never started (as an observer that was never attached once
    spooled them, or a spool from before calls were marked) are kept and reported; a whole
    call beside them, and chunks of a call whose call-started was delivered, are sent."""
    spool = Spool(Path(os.environ["ROARK_SPOOL_DIR"]))
    _spool_records(spool, backend.url, "orphan", ["chunk", "chunk", "call-ended"], started=False)
    _spool_records(spool, backend.url, "whole", ["call-started", "chunk", "call-ended"], True)
    _spool_records(spool, backend.url, "mid-call", ["chunk", "call-ended"], started=True)
    async with aiohttp.ClientSession() as session:  # its call-started got through, once
        answer = await session.post(
            f"{backend.url}/v1/integrations/pipecat",
            data=_event_body("call-started", "mid-call"),
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )
        assert answer.status == 200

    status, report, _ = await run_replay("--api-key", "k")
    assert status == 1  # something still waits
    assert "orphaned 3" in report
    assert "3 record(s) of 1 call(s) are chunks of calls that never started" in report
    assert "orphan" in report.splitlines()[-1]
    assert "rejected" not in report
    sent_for = {r.call_id for r in backend.requests}
    assert sent_for == {"whole", "mid-call"}
    assert spool.pending() == 3

    status, report, _ = await run_replay("--api-key", "k", "--send-orphans")
    assert status == 0, report
    assert {r.call_id for r in backend.requests} == {"whole", "mid-call", "orphan"}
    assert spool.pending() == 0
