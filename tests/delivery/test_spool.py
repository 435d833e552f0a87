"""The spool on a real filesystem: atomic records, leases, bounds, damage, other processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipecat_roark.delivery.client import parse_retry_after
from pipecat_roark.delivery.retry import Backoff
from pipecat_roark.delivery.spool import (
    ORDER_CALL_ENDED,
    ORDER_CALL_STARTED,
    Lease,
    Spool,
    SpoolRecord,
)
from tests.conftest import LogCapture

URL = "http://127.0.0.1:9"
REPO = Path(__file__).resolve().parents[2]


def record(call_id: str, kind: str, order: int, body: bytes = b"{}", **kw: object) -> SpoolRecord:
    return SpoolRecord(kind, call_id, kw.pop("base_url", URL), order, body, **kw)  # type: ignore[arg-type]


def a_call(spool: Spool, call_id: str, chunks: int = 2, *, base_url: str = URL) -> None:
    spool.write(record(call_id, "call-ended", ORDER_CALL_ENDED, base_url=base_url))
    for index in reversed(range(chunks)):
        spool.write(record(call_id, "chunk", index + 1, bytes([index]) * 64, base_url=base_url))
    spool.write(record(call_id, "call-started", ORDER_CALL_STARTED, base_url=base_url))


def test_a_leased_call_comes_back_in_protocol_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a_call(spool, "call#1/../x", chunks=3)
    (lease,) = spool.lease_calls()
    assert lease.call_id == "call#1/../x"
    assert [r.kind for r in lease.records] == [
        "call-started",
        "chunk",
        "chunk",
        "chunk",
        "call-ended",
    ]
    assert [r.chunk_index for r in lease.records[1:4]] == [0, 1, 2]
    assert lease.records[1].body == b"\x00" * 64
    # The call id never reaches a path: the folder is a hash.
    assert all("call#1" not in str(p) for p in lease.paths)


def test_a_leased_call_is_not_leased_again_until_closed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a_call(spool, "c1")
    (lease,) = spool.lease_calls()
    assert spool.lease_calls() == []  # the lock holds even for another open in this process
    lease.done(lease.paths[0])
    lease.close()
    (again,) = spool.lease_calls()
    assert [r.kind for r in again.records] == ["chunk", "chunk", "call-ended"]


def test_done_records_leave_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a_call(spool, "c1")
    (lease,) = spool.lease_calls()
    for path in lease.paths:
        lease.done(path)
    lease.close()
    assert spool.pending() == 0
    assert list(tmp_path.iterdir()) == []


def test_call_folders_sort_oldest_first_without_opening_a_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for number in range(3):
        spool.write(record(f"call-{number}", "call-started", ORDER_CALL_STARTED))
        time.sleep(0.002)  # distinct millisecond stamps in the folder names
    calls = []
    for name in spool.call_names():
        lease = spool.lease(name)
        assert isinstance(lease, Lease)
        calls.append(lease.call_id)
        lease.close()
    assert calls == ["call-0", "call-1", "call-2"]


def test_records_of_another_backend_are_left_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a_call(spool, "mine")
    a_call(spool, "theirs", base_url="http://127.0.0.1:10")
    (lease,) = spool.lease_calls(base_url=URL)
    assert lease.call_id == "mine"
    assert spool.pending(base_url="http://127.0.0.1:10") == 4


def test_no_api_key_is_ever_written(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write(record("c1", "call-started", 0, b'{"event": "call-started"}'))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"rk_" not in path.read_bytes()
            assert b"authorization" not in path.read_bytes().lower()


def test_a_damaged_record_is_set_aside_with_one_warning(tmp_path: Path, logs: LogCapture) -> None:
    spool = Spool(tmp_path)
    a_call(spool, "c1", chunks=1)
    chunk = next(tmp_path.rglob("*-chunk.rec"))
    chunk.write_bytes(chunk.read_bytes()[:-10] + b"x" * 10)  # body no longer matches its sum
    (lease,) = spool.lease_calls()
    assert [r.kind for r in lease.records] == ["call-started", "call-ended"]
    assert len(logs.matching("damaged spool record")) == 1
    assert list((tmp_path / "corrupt").iterdir())


def test_at_its_size_cap_the_oldest_records_go_first(tmp_path: Path, logs: LogCapture) -> None:
    spool = Spool(tmp_path, max_bytes=40_000)
    for number in range(10):
        spool.write(record(f"old-{number}", "chunk", 1, b"\x01" * 5000))
        time.sleep(0.01)  # distinct ages
    for number in range(5):
        spool.write(record(f"new-{number}", "chunk", 1, b"\x02" * 5000))
    kept = {lease.call_id for lease in spool.lease_calls()}
    assert {f"new-{n}" for n in range(5)} <= kept
    assert "old-0" not in kept
    assert spool.dropped >= 7
    assert spool.size() <= 40_000
    assert len(logs.matching("is full")) == 1


def test_records_older_than_the_age_cap_are_dropped(tmp_path: Path, logs: LogCapture) -> None:
    spool = Spool(tmp_path, max_age=3600)
    spool.write(record("ancient", "call-started", 0, created_at=time.time() - 7200))
    spool.write(record("fresh", "call-started", 0))
    assert [lease.call_id for lease in spool.lease_calls()] == ["fresh"]
    assert spool.dropped == 1
    assert logs.matching("older than")


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {src!r})
    from pipecat_roark.delivery.spool import Spool
    spool = Spool({directory!r})
    (lease,) = spool.lease_calls()
    print("holding", flush=True)
    time.sleep(600)
    """
)


def test_a_call_held_by_a_killed_process_is_taken_at_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a_call(spool, "c1", chunks=1)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(src=str(REPO / "src"), directory=str(tmp_path))],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"holding"
        (busy,) = spool.busy()
        assert busy.records == 3
        assert busy.holder is not None
        assert busy.holder.pid == process.pid
        assert spool.lease_calls() == []
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    (lease,) = spool.lease_calls()  # no expiry to wait for: the kernel dropped the lock
    assert [r.kind for r in lease.records] == ["call-started", "chunk", "call-ended"]


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {src!r})
    from pipecat_roark.delivery.spool import Spool, SpoolRecord
    spool = Spool({directory!r})
    print("ready", flush=True)
    number = 0
    while True:
        body = b"\\x07" * 400_000
        spool.write(SpoolRecord("chunk", f"call-{{number}}", "http://127.0.0.1:9", 1, body))
        number += 1
    """
)


def test_a_writer_killed_mid_write_leaves_only_whole_records(
    tmp_path: Path, logs: LogCapture
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(src=str(REPO / "src"), directory=str(tmp_path))],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 20
    while len(list(tmp_path.rglob("*.rec"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    # Kill it while a temporary file is half written.
    while time.monotonic() < deadline:
        if any(tmp_path.rglob(".tmp-*")):
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.001)
    else:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    half_written = len(list(tmp_path.rglob(".tmp-*")))
    spool = Spool(tmp_path)
    leases = list(spool.lease_calls())
    assert leases, "the writer should have completed some records"
    assert all(r.body == b"\x07" * 400_000 for lease in leases for r in lease.records)
    assert not list(tmp_path.rglob(".tmp-*"))
    assert len(logs.matching("half-written")) == (1 if half_written else 0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0", 0.0), ("2.5", 2.5), ("nonsense", None), (None, None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_800_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 42))
    assert parse_retry_after(date, now=now) == pytest.approx(42.0)
    past = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now - 42))
    assert parse_retry_after(past, now=now) == 0.0


def test_backoff_is_capped_full_jitter_and_retry_after_wins() -> None:
    backoff = Backoff(initial=0.5, cap=30.0)
    for attempt in range(20):
        assert 0.0 <= backoff.delay(attempt) <= min(30.0, 0.5 * 2**attempt)
    assert max(backoff.delay(10) for _ in range(200)) > 15.0  # jitter spreads up to the cap
    assert backoff.delay(0, retry_after=7.0) == 7.0


def test_calls_spooled_in_the_layout_before_call_locks_are_still_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a_call(spool, "from-before", chunks=2)
    (folder,) = [tmp_path / name for name in spool.call_names()]
    earlier = tmp_path / folder.name.split("-", 1)[1]  # a bare hash, no age
    folder.rename(earlier)
    (earlier / ".lock").unlink()
    chunk = next(earlier.glob("*-chunk.rec"))
    chunk.rename(chunk.with_name(chunk.name + ".lease-4242-deadbeef"))  # leased by rename

    (lease,) = Spool(tmp_path).lease_calls()
    assert lease.call_id == "from-before"
    assert [r.kind for r in lease.records] == ["call-started", "chunk", "chunk", "call-ended"]
    for path in lease.paths:
        lease.done(path)
    lease.close()
    assert list(tmp_path.iterdir()) == []
