"""Benchmark: what a spool write and a replay cost per record, with a small and a large
backlog already spooled.

The spool is written the way a call's lane writes it (one writer per call holding the
call's lock, five records a call: call-started, three chunks of 20 ms stereo, call-ended)
into a folder on the machine's disk, with every record fsync'd. The replay side is the
spool's own part of a replay pass (list the calls, lease each, read its records, delete
each as if sent, release), with no network, so that nothing but the spool is measured.
The claim is the ratio of a record's cost with the large backlog to its cost with the
small one, measured in the same run; the absolute times depend on the disk.

A process's first write counts the spool once (its size bound starts from that count);
that one-time cost is shown on its own, and the per-record figures are for a spool
object that has written before, as an observer's has after its first call.

``python -m benchmarks.spool_cost [--smoke] [--results DIR] [--set FIELD=VALUE]``
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import cli
from benchmarks.report import Report, median, server_versions, spread, table
from pipecat_roark.delivery.spool import (
    ORDER_CALL_ENDED,
    ORDER_CALL_STARTED,
    Lease,
    Spool,
    SpoolRecord,
)

__all__ = ["main"]

NAME = "spool_cost"
_URL = "http://127.0.0.1:9"
_CHUNK = b"\x01\x02" * 1280  # 20 ms of 16 kHz 16-bit stereo
_RECORDS_PER_CALL = 5
_GOAL_RATIO = 1.5


@dataclass(frozen=True)
class Size:
    small: int
    large: int
    batch: int
    """Records written, then replayed, on top of a backlog at a time."""
    batches: int
    """Batches per backlog, alternating between the two, so the machine's noise (fsync on a
    shared disk) falls on both alike."""


FULL = Size(small=10, large=10_000, batch=50, batches=20)
SMOKE = Size(small=10, large=200, batch=25, batches=2)


def _write_calls(spool: Spool, prefix: str, records: int) -> None:
    for number in range(max(1, records // _RECORDS_PER_CALL)):
        call_id = f"{prefix}-{number}"
        writer = spool.open_call(_URL, call_id)
        try:
            writer.write(SpoolRecord("call-started", call_id, _URL, ORDER_CALL_STARTED, b"{}"))
            for index in range(_RECORDS_PER_CALL - 2):
                writer.write(SpoolRecord("chunk", call_id, _URL, index + 1, _CHUNK))
            writer.write(SpoolRecord("call-ended", call_id, _URL, ORDER_CALL_ENDED, b"{}"))
        finally:
            writer.close()


def _replay(spool: Spool, names: Sequence[str]) -> int:
    """The spool's part of a replay pass over ``names``: records taken and deleted."""
    sent = 0
    for name in names:
        lease = spool.lease(name)
        if not isinstance(lease, Lease):
            continue
        for path in lease.paths:
            lease.done(path)
            sent += 1
        lease.close()
    return sent


@dataclass
class _Backlog:
    spool: Spool
    records: int
    first_write: float = 0.0
    writes: list[float] = field(default_factory=list)
    replays: list[float] = field(default_factory=list)


def _prepare(folder: Path, records: int) -> _Backlog:
    _write_calls(Spool(folder), "backlog", records)
    os.sync()  # the backlog's writeback must not land in the measured fsyncs
    spool = Spool(folder)  # a new process's spool: its first write counts the folder
    started = time.perf_counter()
    _write_calls(spool, "first", _RECORDS_PER_CALL)
    backlog = _Backlog(spool, records, time.perf_counter() - started)
    return backlog


def _batch(backlog: _Backlog, number: int, records: int) -> None:
    spool = backlog.spool
    before = set(spool.call_names())
    started = time.perf_counter()
    _write_calls(spool, f"batch{number}", records)
    backlog.writes.append((time.perf_counter() - started) / records)
    # The batch's calls are the newest: a pass that sends them and leaves the backlog.
    names = [name for name in spool.call_names() if name not in before]
    started = time.perf_counter()
    sent = _replay(spool, names)
    backlog.replays.append((time.perf_counter() - started) / max(1, sent))
    assert sent == records, f"replayed {sent} of {records}"


async def _measure(options: cli.Options) -> Report:
    size = options.size(FULL, SMOKE)
    with tempfile.TemporaryDirectory(prefix="roark-spool-bench-") as work:
        backlogs = [_prepare(Path(work) / str(n), n) for n in (size.small, size.large)]
        for number in range(size.batches):
            for backlog in backlogs:
                _batch(backlog, number, size.batch)
        for backlog in backlogs:
            assert backlog.spool.pending() >= backlog.records, "the backlog should remain"
    rows = [
        [
            f"{backlog.records:,}",
            spread(backlog.writes, digits=0, scale=1e6),
            spread(backlog.replays, digits=0, scale=1e6),
            f"{backlog.first_write * 1e3:.1f}",
        ]
        for backlog in backlogs
    ]
    small, large = backlogs
    write_ratio = median(large.writes) / median(small.writes)
    replay_ratio = median(large.replays) / median(small.replays)
    verdict = (
        "within" if max(write_ratio, replay_ratio) <= _GOAL_RATIO else "**over**"
    ) + f" the goal of {_GOAL_RATIO}"
    report = Report(
        NAME,
        "Spool: cost per record with a small and a large backlog",
        __doc__.split("\n\n")[1] if __doc__ else "",
        versions=server_versions(),
    )
    report.add(
        table(
            [
                "records already spooled",
                "write µs/record",
                "replay µs/record",
                "first write of a process (ms)",
            ],
            rows,
        ),
        f"Median (min-max) over {size.batches} batches of {size.batch} records each, written "
        f"then replayed, alternating between the two spools. Ratio large/small backlog: "
        f"write **{write_ratio:.2f}**, replay **{replay_ratio:.2f}**, {verdict}.",
    )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    cli.run(NAME, __doc__ or "", argv, _measure)


if __name__ == "__main__":
    main()
