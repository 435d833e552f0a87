"""``pipecat-roark replay``: send what the spool holds, with progress and a summary.

Only the standard library at import time (the CLI builds every parser at startup).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="send the calls kept in the spool (requests that could not be delivered)",
        description=(
            "Sends every request kept in the spool, call by call in protocol order, and "
            "removes each one the backend accepts. Records go to the backend they were "
            "meant for unless --base-url says otherwise. Safe to run while observers and "
            "other replays run, in other containers too: each call is sent whole by one "
            "process at a time, under a file lock. Exits 1 while anything is still waiting "
            "(failing, or held by another process) unless --allow-pending is given."
        ),
    )
    parser.add_argument(
        "--spool-dir", metavar="DIR", help="default: $ROARK_SPOOL_DIR or the user data dir"
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="send every record to this backend instead of the one it was meant for",
    )
    parser.add_argument("--api-key", metavar="KEY", help="default: $ROARK_API_KEY")
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be sent; send nothing"
    )
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help=(
            "wait up to this long for calls another process holds (an observer still "
            "writing them, another replay sending them); if their owner stops, send them "
            "(default: 0, report them and do not wait)"
        ),
    )
    parser.add_argument(
        "--send-orphans",
        action="store_true",
        help=(
            "also send chunks of calls that never started (no call-started in the spool and "
            "none delivered); by default they are reported and kept"
        ),
    )
    parser.add_argument(
        "--allow-pending",
        action="store_true",
        help="exit 0 even if records are still waiting when the pass ends",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .spool import Spool, default_spool_dir

    spool = Spool(Path(args.spool_dir) if args.spool_dir else default_spool_dir())
    if args.dry_run:
        return _dry_run(spool)
    api_key = args.api_key or os.environ.get("ROARK_API_KEY", "")
    if not api_key.strip():
        print(
            "pipecat-roark replay: no API key: pass --api-key or set ROARK_API_KEY",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(
        _replay(
            spool,
            api_key.strip(),
            args.base_url,
            args.wait,
            args.allow_pending,
            send_orphans=args.send_orphans,
        )
    )


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {value!r}")
    return seconds


def _dry_run(spool: Any) -> int:
    calls: dict[tuple[str, str], list[str]] = {}
    for record in spool.inventory():
        calls.setdefault((record.base_url, record.call_id), []).append(record.kind)
    for (base_url, call_id), kinds in sorted(calls.items()):
        chunks = kinds.count("chunk")
        parts = [k for k in ("call-started",) if k in kinds]
        parts += [f"{chunks} chunk(s)"] if chunks else []
        parts += [k for k in ("call-ended",) if k in kinds]
        print(f"{call_id}  ->  {base_url}: {', '.join(parts)}")
    total = sum(len(kinds) for kinds in calls.values())
    print(f"{total} record(s) of {len(calls)} call(s) in {spool.directory}; nothing sent")
    return 0


async def _replay(
    spool: Any,
    api_key: str,
    base_url: str | None,
    wait: float,
    allow_pending: bool,
    *,
    send_orphans: bool = False,
) -> int:
    import aiohttp

    from .client import BackendClient
    from .replay import replay_spool
    from .retry import DeliveryOptions

    options = DeliveryOptions()
    total = await asyncio.to_thread(spool.pending)
    bar = _ProgressBar(total)
    refusing_extensions: set[str] = set()
    async with aiohttp.ClientSession() as session:

        def client_for(record_base_url: str) -> BackendClient:
            return BackendClient(
                session,
                base_url=base_url or record_base_url,
                api_key=api_key,
                timeout=options.request_timeout,
                refusing_extensions=refusing_extensions,
            )

        summary = await replay_spool(
            spool,
            client_for,
            options,
            progress=bar.advance,
            wait_for_busy=wait,
            send_orphans=send_orphans,
        )
    bar.close()
    print(
        f"sent {summary.sent}, still failing {summary.still_failing}, dropped {summary.dropped}, "
        f"held by another process {summary.busy_records}, "
        f"orphaned {summary.orphan_records} "
        f"({summary.calls} call(s) sent from; spool: {spool.directory})"
    )
    if summary.busy:
        ages = [age for age in (call.age() for call in summary.busy) if age is not None]
        oldest = f", held for up to {max(ages):.0f} s" if ages else ""
        print(
            f"  {summary.busy_records} record(s) of {len(summary.busy)} call(s) are held by "
            f"another live process (an observer still writing them, or another replay)"
            f"{oldest}; run again later, or pass --wait SECONDS"
        )
    if summary.orphans:
        print(
            f"  {summary.orphan_records} record(s) of {len(summary.orphans)} call(s) are chunks "
            "of calls that never started (no call-started was sent or kept), so no backend "
            "would have their call: kept, not sent; --send-orphans sends them anyway. Calls: "
            + ", ".join(sorted(summary.orphans))
        )
    for error in summary.errors:
        print(f"  rejected: {error}")
    if summary.auth_refused:
        print(
            "the backend refused the API key: set ROARK_API_KEY (or --api-key) to a valid key "
            "and run `pipecat-roark replay` again; nothing was dropped",
            file=sys.stderr,
        )
    if summary.waiting and not allow_pending:
        return 1
    return 0


class _ProgressBar:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._tty = sys.stderr.isatty()

    def advance(self, count: int) -> None:
        self.done += count
        width = 30
        filled = width * self.done // max(1, self.total)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} records"
        if self._tty:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._tty and self.total:
            print(file=sys.stderr)
