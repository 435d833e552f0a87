"""One spool shared the way containers share a volume: each process in its own pid
namespace, with pids the others do not have, against a counting, deliberately slow backend.

Every call is owned whole by one process at a time, so each record arrives once and each
call in protocol order; a killed owner's calls are taken over at once; an observer writing
while replays run loses nothing; and ``pipecat-roark replay`` says what is still waiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from pipecat_roark.delivery.spool import ORDER_CALL_ENDED, ORDER_CALL_STARTED, Spool, SpoolRecord
from pipecat_roark.server.settings import ServerSettings
from tests.delivery.counting_proxy import CountingProxy
from tests.delivery.namespaces import PYTHON_PID, in_pid_namespace, pid_of, require_pid_namespaces
from tests.server import harness
from tests.support.backend import RecordingBackend

CHUNKS = 3
CALLS = 20


@pytest.fixture(autouse=True)
def _namespaces() -> None:
    require_pid_namespaces()


def slow(backend: RecordingBackend, low: float = 0.05, high: float = 0.15) -> None:
    """Every request waits 50-150 ms before its answer, as a busy backend would."""
    rng = random.Random(7)
    for kind in ("call-started", "call-ended", "presign", "upload"):
        backend.faults[kind] = lambda _: rng.uniform(low, high)


def spool_calls(spool: Spool, url: str, calls: int = CALLS, chunks: int = CHUNKS) -> list[str]:
    """``calls`` whole calls, as an outage leaves them: bodies a real server accepts."""
    ids = [f"call-{number:02d}" for number in range(calls)]
    for call_id in ids:
        body = json.dumps(harness.started(call_id)).encode()
        spool.write(SpoolRecord("call-started", call_id, url, ORDER_CALL_STARTED, body))
        for index in range(chunks):
            spool.write(SpoolRecord("chunk", call_id, url, index + 1, chunk_pcm(call_id, index)))
        body = json.dumps(harness.ended(call_id)).encode()
        spool.write(SpoolRecord("call-ended", call_id, url, ORDER_CALL_ENDED, body))
    return ids


def chunk_pcm(call_id: str, index: int) -> bytes:
    return harness.pcm(3200, seed=int(call_id.rsplit("-", 1)[1]) * 10 + index)


def assert_each_call_whole_and_in_order(
    keys: Sequence[tuple[str, str | None, int | None]],
    ids: list[str],
    chunks: int,
    *,
    duplicates_allowed: int = 0,
) -> None:
    """``keys``: what the backend accepted, in the order it arrived."""
    expected = {
        key
        for call_id in ids
        for key in [
            ("call-started", call_id, None),
            ("call-ended", call_id, None),
            *[("upload", call_id, index) for index in range(chunks)],
        ]
    }
    assert set(keys) == expected  # nothing missing, nothing foreign
    assert len(keys) - len(expected) <= duplicates_allowed, sorted(
        k for k in set(keys) if keys.count(k) > 1
    )
    for call_id in ids:
        arrived = [kind for kind, call, _ in keys if call == call_id]
        assert arrived[0] == "call-started", (call_id, arrived)
        # call-ended after every chunk (twice only if it was the request in flight at a kill)
        first_end = arrived.index("call-ended")
        assert set(arrived[first_end:]) == {"call-ended"}, (call_id, arrived)


async def start_replay(
    first_pid: int, *args: str, api_key: str = "k"
) -> asyncio.subprocess.Process:
    """``pipecat-roark replay`` as pid ``first_pid`` of a new pid namespace."""
    command = (sys.executable, "-c", PYTHON_PID, "replay", "--api-key", api_key, *args)
    return await in_pid_namespace(first_pid, *command)


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, bytes]:
    stdout, stderr = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr


async def two_replays_of_a_full_spool(
    backend: RecordingBackend,
) -> tuple[Spool, list[str], tuple[asyncio.subprocess.Process, asyncio.subprocess.Process]]:
    """A spool of CALLS calls, a slow backend, and two replays on it (pids 1000 and 2000)."""
    spool = Spool(Path(os.environ["ROARK_SPOOL_DIR"]))
    ids = spool_calls(spool, backend.url)
    slow(backend)
    first = await start_replay(1000, "--wait", "120")
    second = await start_replay(2000, "--wait", "120")
    return spool, ids, (first, second)


async def test_two_replays_in_separate_pid_namespaces_send_each_record_once_in_order(
    backend: RecordingBackend,
) -> None:
    spool, ids, (first, second) = await two_replays_of_a_full_spool(backend)
    results = [await finish(first), await finish(second)]

    assert sorted(pid_of(stderr) for _, _, stderr in results) == [1000, 2000]
    for status, stdout, stderr in results:
        assert status == 0, (stdout, stderr.decode()[-2000:])
        assert "still failing 0" in stdout
        assert "held by another process 0" in stdout
    sent = sum(int(stdout.split("sent ", 1)[1].split(",", 1)[0]) for _, stdout, _ in results)
    assert sent == CALLS * (CHUNKS + 2)
    assert_each_call_whole_and_in_order(backend.natural_keys(), ids, CHUNKS)
    assert spool.pending() == 0
    assert spool.call_names() == []


async def test_a_replay_killed_midway_is_taken_over_and_a_third_run_finds_the_spool_drained(
    backend: RecordingBackend,
) -> None:
    spool, ids, (doomed, survivor) = await two_replays_of_a_full_spool(backend)
    while len(backend.natural_keys()) < 30:  # both are well under way
        assert doomed.returncode is None, "the first replay ended before it could be killed"
        await asyncio.sleep(0.01)
    doomed.send_signal(signal.SIGKILL)  # unshare --kill-child: the whole namespace dies
    killed_status, _, _ = await finish(doomed)
    assert killed_status == -signal.SIGKILL
    status, stdout, stderr = await finish(survivor)
    assert status == 0, (stdout, stderr.decode()[-2000:])

    third, stdout, stderr = await finish(await start_replay(3000))
    assert third == 0, (stdout, stderr.decode()[-2000:])
    assert stdout.startswith("sent 0, still failing 0, dropped 0, held by another process 0")
    # At most the one record the killed replay had in flight arrives twice.
    assert_each_call_whole_and_in_order(backend.natural_keys(), ids, CHUNKS, duplicates_allowed=1)
    assert spool.call_names() == []


OBSERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pipecat_roark.delivery.delivery import Delivery
    from pipecat_roark.delivery.retry import DeliveryOptions

    URL, SPOOL, CALLS, CHUNKS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    async def call(delivery, number):
        await asyncio.sleep(0.25 * number)
        call_id = f"live-{number:02d}"
        lane = delivery.open_lane(call_id, base_url=URL, api_key="k")
        lane.call_started({"event": "call-started", "pipecatCallId": call_id, "agentId": "a"})
        for index in range(CHUNKS):
            lane.chunk(index, bytes([index % 256]) * 3200)
            await asyncio.sleep(0.05)
        lane.call_ended({"event": "call-ended", "pipecatCallId": call_id, "agentId": "a"})
        assert not await lane.flush(60.0), "every request should have gone to the spool"
        assert lane.stats.spooled == CHUNKS + 2, lane.stats
        assert lane.stats.dropped == 0, lane.stats

    async def main():
        # No request may be held in memory: each goes straight to the spool, as in an
        # outage past the memory bound.
        delivery = Delivery(DeliveryOptions(max_pending_requests=0), spool_dir=SPOOL)
        await asyncio.gather(*(call(delivery, number) for number in range(CALLS)))
        await delivery.aclose()

    asyncio.run(main())
    print("written", flush=True)
    """
)


async def test_an_observer_spooling_while_replays_run_in_other_namespaces_loses_nothing(
    backend: RecordingBackend,
) -> None:
    spool_dir = os.environ["ROARK_SPOOL_DIR"]
    calls, chunks = 10, 30
    slow(backend, 0.005, 0.02)
    observer = await in_pid_namespace(
        3000,
        sys.executable,
        "-c",
        OBSERVER,
        backend.url,
        spool_dir,
        str(calls),
        str(chunks),
    )
    rounds = 0
    while observer.returncode is None:
        rounds += 1
        status, stdout, stderr = await finish(await start_replay(4000 + rounds, "--allow-pending"))
        assert status == 0, (stdout, stderr.decode()[-2000:])
        await asyncio.sleep(0.05)
    status, out, err = await finish(observer)
    assert status == 0, err.decode()[-3000:]
    assert "written" in out
    status, stdout, stderr = await finish(await start_replay(5000, "--wait", "60"))
    assert status == 0, (stdout, stderr.decode()[-2000:])

    assert rounds >= 2  # replays really ran while the observer wrote
    ids = [f"live-{number:02d}" for number in range(calls)]
    assert_each_call_whole_and_in_order(backend.natural_keys(), ids, chunks)
    assert Spool(Path(spool_dir)).call_names() == []


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pipecat_roark.delivery.spool import SpoolRecord, Spool
    spool = Spool(sys.argv[1])
    writer = spool.open_call(sys.argv[2], "still-being-written")
    body = b'{"event": "call-started", "pipecatCallId": "still-being-written"}'
    writer.write(SpoolRecord("call-started", "still-being-written", sys.argv[2], 0, body))
    writer.write(SpoolRecord("chunk", "still-being-written", sys.argv[2], 1, b"\\x01" * 320))
    (writer.folder / ".tmp-halfway").write_bytes(b"half a record")  # a write under way
    print("holding", flush=True)
    time.sleep(600)
    """
)


async def test_replay_reports_calls_held_by_a_live_process_and_leaves_its_writes_alone(
    backend: RecordingBackend,
) -> None:
    spool_dir = os.environ["ROARK_SPOOL_DIR"]
    ids = spool_calls(Spool(Path(spool_dir)), backend.url, calls=2)
    holder = await in_pid_namespace(6000, sys.executable, "-c", HOLDER, spool_dir, backend.url)
    try:
        assert holder.stdout is not None
        assert (await asyncio.wait_for(holder.stdout.readline(), 60)).strip() == b"holding"
        await asyncio.sleep(1.0)  # the held call's lease has an age to report

        status, stdout, _ = await finish(await start_replay(7000))
        assert status == 1
        assert stdout.startswith("sent 10, still failing 0, dropped 0, held by another process 2")
        assert "2 record(s) of 1 call(s) are held by another live process" in stdout
        held_for = int(stdout.split("held for up to ", 1)[1].split(" s", 1)[0])
        assert held_for >= 1

        status, stdout, _ = await finish(await start_replay(7100, "--allow-pending"))
        assert status == 0
        assert stdout.startswith("sent 0, still failing 0, dropped 0, held by another process 2")
        # Another namespace's half-written record is not anyone else's to delete.
        assert len(list(Path(spool_dir).glob("*/.tmp-halfway"))) == 1
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()

    # Its owner is gone: the call is anyone's at once.
    status, stdout, _ = await finish(await start_replay(7200))
    assert status == 0
    assert stdout.startswith("sent 2, still failing 0, dropped 0, held by another process 0")
    assert list(Path(spool_dir).iterdir()) == []  # its owner died: the half record went too
    held = [key for key in backend.natural_keys() if key[1] == "still-being-written"]
    assert held == [
        ("call-started", "still-being-written", None),
        ("upload", "still-being-written", 0),
    ]
    backend.requests = [r for r in backend.requests if r.call_id != "still-being-written"]
    assert_each_call_whole_and_in_order(backend.natural_keys(), ids, CHUNKS)


async def test_two_replays_in_separate_pid_namespaces_fill_a_real_server_with_whole_calls(
    tmp_path: Path,
) -> None:
    pytest.importorskip("uvicorn", reason="the real server needs the [server] extra")
    from pipecat_roark.server.embed import ensure_project_key, serve_in_background

    proxy = CountingProxy()  # slow and counting, in front of a real `serve`
    proxy_url = await proxy.start()
    settings = ServerSettings(
        data_dir=tmp_path / "data", worker_poll_interval=0.05, public_url=proxy_url
    )
    key = await ensure_project_key(settings, "acme")
    try:
        async with serve_in_background(settings) as serve_url:
            proxy.target = serve_url
            ids = spool_calls(Spool(Path(os.environ["ROARK_SPOOL_DIR"])), proxy_url)
            replays = [
                await start_replay(pid, "--wait", "120", api_key=key) for pid in (1000, 2000)
            ]
            for process in replays:
                status, stdout, stderr = await finish(process)
                assert status == 0, (stdout, stderr.decode()[-2000:])

            assert_each_call_whole_and_in_order(proxy.accepted, ids, CHUNKS)
            stored = await stored_recordings(serve_url, key, ids)
    finally:
        await proxy.stop()
    for call_id in ids:  # the server holds every call whole, sample for sample
        expected = b"".join(chunk_pcm(call_id, index) for index in range(CHUNKS))
        assert stored[call_id] == expected, call_id


async def stored_recordings(base_url: str, key: str, ids: list[str]) -> dict[str, bytes]:
    """Each call's stitched recording, as the server's REST API serves it."""
    found: dict[str, bytes] = {}
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, follow_redirects=True
    ) as client:
        for _ in range(600):
            listing = (await client.get("/v1/call", params={"limit": 100})).json()["data"]
            ready = {
                call["externalId"]: call
                for call in listing
                if call["recordingUrlAccess"] == "AVAILABLE"
            }
            if set(ids) <= ready.keys():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not stitched in time: {set(ids) - ready.keys()}")
        for call_id in ids:
            recording = await client.get(ready[call_id]["recordingUrl"])
            assert recording.status_code == 200
            rate, channels, frames = harness.wav_frames(recording.content)
            assert (rate, channels) == (16000, 2)
            found[call_id] = frames
    return found
