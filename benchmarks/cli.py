"""The command line every benchmark script shares."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import RESULTS_DIR, Report

__all__ = ["parser", "run"]


def parser(description: str) -> argparse.ArgumentParser:
    """``--smoke`` (tiny sizes, for the test suite) and ``--results DIR``."""
    parsed = argparse.ArgumentParser(description=description)
    parsed.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that the benchmark runs"
    )
    parsed.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help=f"where to write <name>.md (default {RESULTS_DIR})",
    )
    return parsed


def run(
    name: str,
    description: str,
    argv: Sequence[str] | None,
    measure: Callable[[bool], Coroutine[Any, Any, Report]],
) -> None:
    """Parses the options, runs ``measure(smoke)``, then prints and writes its report."""
    args = parser(description).parse_args(argv)
    started = time.monotonic()
    report = asyncio.run(measure(args.smoke))
    report.command = f"python -m benchmarks.{name}" + (" --smoke" if args.smoke else "")
    report.wall_seconds = time.monotonic() - started
    report.publish(args.results)
