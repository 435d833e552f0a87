"""``pipecat-roark demo``: its options, and the checks that run before anything heavy imports.

Only the standard library is imported here, so ``pipecat-roark --help`` works on the base
install; the handler says which extra is missing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["SCENARIO_NAMES", "add_parsers", "parse_speed"]

SCENARIO_NAMES = ("booking", "interruption", "silence")
_DEMO_MODULES = ("pipecat", "hibari", "espeakng_loader", "pocketsphinx", "soxr", "rich")
_SERVER_MODULES = ("fastapi", "uvicorn", "sqlalchemy")


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="play a scripted voice call through a real Pipecat pipeline, offline",
        description=(
            "Plays a scripted phone call through a real Pipecat pipeline (Silero VAD, "
            "pocketsphinx recognition, a scripted LLM making real tool calls, espeak-ng "
            "speech) with RoarkObserver shipping it to a backend: the local server started "
            "in this process, or the one given with --to. Nothing is downloaded."
        ),
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIO_NAMES,
        default="booking",
        help="the call to play (default: booking)",
    )
    parser.add_argument(
        "--speed",
        type=parse_speed,
        default=1.0,
        metavar="1|2|4|max",
        help="how fast speech goes by; the bot's thinking time stays real (default: 1)",
    )
    parser.add_argument(
        "--no-serve",
        dest="serve",
        action="store_false",
        help="exit after the call instead of serving the dashboard until Ctrl-C",
    )
    parser.add_argument(
        "--to",
        metavar="URL",
        help="send the call to this backend instead of starting the local one",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key for --to (default: ROARK_API_KEY)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where the local backend keeps its data (default: the user data folder)",
    )
    parser.add_argument(
        "--wav",
        type=Path,
        metavar="PATH",
        help="also write the line as heard (caller left, bot right) to this WAV file",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="turn Pipecat's OpenTelemetry tracing on and send the call's spans to the "
        "backend's /v1/traces (the call page's stt, llm and tts spans)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Pipecat's own log lines",
    )
    parser.set_defaults(handler=_run)


def parse_speed(value: str) -> float | None:
    """``max`` (as fast as the machine allows, returned as None) or a positive factor."""
    if value.strip().lower() == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {value!r} (use 1, 2, 4 or max)") from None
    if speed <= 0:
        raise argparse.ArgumentTypeError("speed must be positive")
    return speed


def _run(args: argparse.Namespace) -> int:
    from pipecat_roark.cli import DISTRIBUTION, MissingExtraError

    _require("demo", _DEMO_MODULES, MissingExtraError)
    if not args.to:
        _require("server", _SERVER_MODULES, MissingExtraError)
    pipecat_version = importlib.metadata.version("pipecat-ai")
    if int(pipecat_version.split(".")[0]) < 1:
        print(
            f"pipecat-roark demo: needs Pipecat 1.x (found {pipecat_version}): "
            f'pip install "{DISTRIBUTION}[demo]"',
            file=sys.stderr,
        )
        return 2
    api_key = args.api_key or os.environ.get("ROARK_API_KEY")
    if args.to and not api_key:
        print("pipecat-roark demo: --to needs --api-key (or ROARK_API_KEY)", file=sys.stderr)
        return 2

    import asyncio

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "WARNING")

    from .runner import DemoOptions, run_demo

    options = DemoOptions(
        scenario=args.scenario,
        speed=args.speed,
        serve=args.serve,
        to=args.to,
        api_key=api_key,
        data_dir=args.data_dir,
        wav=args.wav,
        tracing=args.tracing,
    )
    outcome = asyncio.run(run_demo(options))
    return 0 if outcome.result.bot_hung_up and outcome.delivered else 1


def _require(extra: str, modules: tuple[str, ...], error: type[Exception]) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise error(extra, module)
