"""``pipecat-roark calls``: answers about stored calls from a server's REST API, for scripts.

``--slowest-replies`` lists an agent's slowest replies part by part, with a deep link to
each moment and the call's tool errors; ``--json`` prints the API's answer as it is.
Only the standard library at import time (the CLI builds every parser at startup).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any
from urllib.error import HTTPError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

__all__ = ["add_parsers", "parse_since"]

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dh])\s*$")


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calls",
        help="ask a server about stored calls (slowest replies)",
        description="Asks a pipecat-roark server's REST API about an agent's calls.",
    )
    parser.add_argument(
        "--slowest-replies",
        action="store_true",
        required=True,
        help="the agent's slowest replies, part by part, with their tool errors",
    )
    parser.add_argument("--agent", required=True, help="the agent's agentId (or server id)")
    parser.add_argument("--since", default="7d", help="how far back: 7d, 36h (default 7d)")
    parser.add_argument("--limit", type=int, default=20, help="how many replies (default 20)")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--base-url", metavar="URL", help="default: $ROARK_BASE_URL")
    parser.add_argument("--api-key", metavar="KEY", help="default: $ROARK_API_KEY")
    parser.set_defaults(handler=_run)


def parse_since(text: str) -> float:
    """Days in ``7d`` or ``36h``; ValueError otherwise."""
    match = _SINCE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--since: a number of days or hours such as 7d or 36h, not {text!r}")
    value = float(match.group(1))
    return value if match.group(2) == "d" else value / 24


def _run(args: argparse.Namespace) -> int:
    base_url = (args.base_url or os.environ.get("ROARK_BASE_URL") or "").rstrip("/")
    api_key = (args.api_key or os.environ.get("ROARK_API_KEY") or "").strip()
    if not base_url or not api_key:
        print(
            "pipecat-roark calls: pass --base-url and --api-key (or set ROARK_BASE_URL and "
            "ROARK_API_KEY)",
            file=sys.stderr,
        )
        return 2
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"pipecat-roark calls: {exc}", file=sys.stderr)
        return 2
    query = urlencode({"sinceDays": since, "limit": args.limit})
    request = Request(
        f"{base_url}/v1/agent/{quote(args.agent, safe='')}/slowest-replies?{query}",
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
    )
    try:
        with urlopen(request, timeout=30) as response:
            data: dict[str, Any] = json.loads(response.read())["data"]
    except HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        print(f"pipecat-roark calls: {exc.code} {detail}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pipecat-roark calls: cannot reach {base_url}: {exc}", file=sys.stderr)
        return 1
    for reply in data["replies"]:
        reply["link"] = base_url + reply["link"]
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for reply in data["replies"]:
        parts = ", ".join(
            f"{part['key']} {part['durationSecs'] * 1000:.0f} ms" for part in reply["contributions"]
        )
        errors = f"; {len(reply['toolErrors'])} tool errors" if reply["toolErrors"] else ""
        print(f"{reply['latencySecs'] * 1000:6.0f} ms  {reply['link']}  {parts}{errors}")
    return 0
