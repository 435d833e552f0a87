"""The command line every benchmark script shares."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.report import RESULTS_DIR, Report

__all__ = ["Options", "parser", "run"]

T = TypeVar("T")


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
    parsed.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one of the benchmark's sizes, e.g. --set rounds=6 --set speed=5",
    )
    return parsed


@dataclass(frozen=True)
class Options:
    smoke: bool
    changes: tuple[str, ...]

    def size(self, full: T, smoke: T) -> T:
        """The sizes to run: ``smoke`` or ``full``, with the ``--set`` changes."""
        chosen = smoke if self.smoke else full
        updates: dict[str, Any] = {}
        for change in self.changes:
            name, _, value = change.partition("=")
            current = getattr(chosen, name, None)
            if not isinstance(current, (bool, int, float)):
                raise SystemExit(f"--set {change}: {name!r} is not a number field of {chosen}")
            if isinstance(current, bool):
                updates[name] = value.lower() in ("1", "true", "yes")
            else:
                updates[name] = type(current)(value)
        return replace(chosen, **updates)  # type: ignore[type-var]


def run(
    name: str,
    description: str,
    argv: Sequence[str] | None,
    measure: Callable[[Options], Coroutine[Any, Any, Report]],
) -> None:
    """Parses the options, runs ``measure``, then prints and writes its report."""
    args = parser(description).parse_args(argv)
    options = Options(args.smoke, tuple(args.set))
    started = time.monotonic()
    report = asyncio.run(measure(options))
    flags = [" --smoke"] if args.smoke else []
    flags += [f" --set {change}" for change in options.changes]
    report.command = f"python -m benchmarks.{name}" + "".join(flags)
    report.wall_seconds = time.monotonic() - started
    report.publish(args.results)
