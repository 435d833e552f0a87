"""``pipecat-roark``: one command line for the server, the demo and the spool.

Each area registers its own subcommands from a light module (standard library only at
import time), so ``pipecat-roark --help`` works on the base install and a command that
needs an extra says which one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

DISTRIBUTION = "pipecat-call-analytics"
"""The name ``pip install`` knows this project by. Roark's own distribution is called
``pipecat-roark`` and installs the same module, so messages never name that one."""

# Modules that define ``add_parsers(subparsers)``; each handler sets ``args.handler``.
_COMMAND_MODULES: tuple[str, ...] = (
    "pipecat_roark.server.cli",
    "pipecat_roark.demo.cli",
    "pipecat_roark.delivery.cli",
    "pipecat_roark.calls_cli",
)


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="pipecat-roark",
        description="Call analytics for Pipecat voice agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except MissingExtraError as exc:
        parser.exit(2, f"pipecat-roark {args.command}: {exc}\n")
    return result


class MissingExtraError(RuntimeError):
    """A command needs an optional extra that is not installed."""

    def __init__(self, extra: str, missing: str) -> None:
        super().__init__(
            f"this command needs the [{extra}] extra ({missing} is not installed): "
            f'pip install "{DISTRIBUTION}[{extra}]"'
        )


if __name__ == "__main__":
    sys.exit(main())
