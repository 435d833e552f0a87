"""Counting the instructions a benchmark worker executes, with Valgrind's callgrind.

On a shared machine the CPU time of the same work moves by up to 20% from one second to the
next, more than an observer's few percent. The number of instructions executed does not
depend on the machine's speed, so it resolves what CPU time cannot. Callgrind runs the
worker about 50 times slower and counts every instruction of every thread. The worker
zeroes the count before each measured call and dumps it after (``callgrind_control``),
so imports and warm-up calls are not counted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["Counter", "missing", "wrapper"]

_TOOLS = ("valgrind", "callgrind_control")


def missing() -> str:
    """Why instructions cannot be counted here, or "" if they can."""
    absent = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if absent:
        return f"{' and '.join(absent)} not installed (Debian package `valgrind`)"
    return ""


def wrapper(out_dir: Path) -> list[str]:
    """The command that runs a worker under callgrind, dumping into ``out_dir``."""
    return [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir / 'callgrind.%p'}",
        # Totals only: per-line and per-instruction tables would only grow the dumps.
        "--dump-line=no",
        "--dump-instr=no",
    ]


class Counter:
    """The instruction count of the callgrind process it runs in, one window at a time."""

    def __init__(self, out_dir: str) -> None:
        self._out = Path(out_dir)
        self._pid = str(os.getpid())

    def zero(self) -> None:
        self._control("--zero")

    def dump(self) -> int:
        """The instructions executed since ``zero()``."""
        before = set(self._dumps())
        self._control("--dump")
        written = sorted(set(self._dumps()) - before, key=_dump_number)
        if not written:
            raise RuntimeError(f"callgrind wrote no dump into {self._out}")
        return _total(written[-1])

    def _dumps(self) -> list[Path]:
        return list(self._out.glob(f"callgrind.{self._pid}.*"))

    def _control(self, command: str) -> None:
        subprocess.run(
            ["callgrind_control", command, self._pid], check=True, capture_output=True, timeout=120
        )


def _dump_number(dump: Path) -> int:
    # callgrind.<pid>.<n>: the n-th dump of the process.
    return int(dump.suffix.lstrip(".") or 0)


def _total(dump: Path) -> int:
    with dump.open() as lines:
        for line in lines:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {dump}")
