"""The benchmark process's memory, read once per simulated minute at a quiescent point.

Three views:

- ``rss`` / ``peak_rss``: what the operating system sees (``/proc/self/statm``,
  ``getrusage``).
- ``heap``: bytes the allocators hold for live objects: Python's small-object allocator
  (``sys._debugmallocstats``) plus the C heap (glibc ``mallinfo2``), which holds the large
  blocks such as audio. Free to read, so it is read every minute of the hour.
- ``traced``: ``tracemalloc``'s count of bytes allocated since a window of the call began and
  still alive. Tracing makes every allocation several times dearer, so it covers a window of
  minutes (by default the last ten of the hour), and names the lines that grew most.
"""

from __future__ import annotations

import ctypes
import gc
import os
import re
import resource
import sys
import tempfile
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["MemorySample", "MemorySampler"]

_PYMALLOC_IN_USE = re.compile(rb"# bytes in allocated blocks\s*=\s*([\d,]+)")
_TOP_SITES = 5


@dataclass
class MemorySample:
    minute: int
    rss: int
    peak_rss: int
    heap: int
    traced: int | None


@dataclass
class MemorySampler:
    """Called by the call driver at each simulated minute (``minute`` 0 is the start)."""

    last_minute: int
    trace_from: int | None = None
    trace_to: int | None = None
    samples: list[MemorySample] = field(default_factory=list)
    growth_sites: list[dict[str, Any]] = field(default_factory=list)
    _baseline: tracemalloc.Snapshot | None = None

    def __call__(self, minute: int) -> None:
        gc.collect()
        tracing = tracemalloc.is_tracing()
        traced = tracemalloc.get_traced_memory()[0] if tracing else None
        if tracing and self._baseline is None:
            # Growth is counted from the first minute traced whole: buffers that were
            # replaced during it are then already in the trace.
            self._baseline = tracemalloc.take_snapshot()
        if tracing and (minute == self.trace_to or minute >= self.last_minute):
            self.growth_sites = _growth_sites(self._baseline, tracemalloc.take_snapshot())
            tracemalloc.stop()
        self.samples.append(MemorySample(minute, _rss(), _peak_rss(), _heap_in_use(), traced))
        if minute == self.trace_from and minute < self.last_minute:
            gc.collect()
            tracemalloc.start(1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": [asdict(sample) for sample in self.samples],
            "growth_sites": self.growth_sites,
        }


def _growth_sites(
    before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot
) -> list[dict[str, Any]]:
    if before is None:
        return []
    grown = [stat for stat in after.compare_to(before, "lineno") if stat.size_diff > 0]
    return [
        {
            "site": f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}",
            "bytes": stat.size_diff,
            "blocks": stat.count_diff,
        }
        for stat in grown[:_TOP_SITES]
    ]


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    # The kernel's high-water mark, which it keeps in coarser steps than the current RSS.
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, _rss())


def _heap_in_use() -> int:
    return _pymalloc_in_use() + _malloc_in_use()


def _pymalloc_in_use() -> int:
    # The only reader of pymalloc's totals prints them to the C stderr.
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        found = _PYMALLOC_IN_USE.search(capture.read())
    return int(found.group(1).replace(b",", b"")) if found else 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc_in_use() -> int:
    try:
        libc = ctypes.CDLL(None)
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return 0  # not glibc >= 2.33: the C heap is left out
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)
