"""``pipecat-roark demo``'s options, and what it says when an extra is missing."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import subprocess
import sys

import pytest

from pipecat_roark.cli import MissingExtraError
from pipecat_roark.demo import cli as demo_cli


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo_cli.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["demo", *argv])


def test_defaults_are_a_real_time_booking_that_keeps_serving() -> None:
    args = _parse()
    assert (args.scenario, args.speed, args.serve, args.to) == ("booking", 1.0, True, None)


def test_every_option() -> None:
    args = _parse(
        "--scenario", "interruption", "--speed", "max", "--no-serve",
        "--to", "http://127.0.0.1:9/", "--api-key", "rk_live_x",
    )  # fmt: skip
    assert args.scenario == "interruption"
    assert args.speed is None
    assert not args.serve
    assert (args.to, args.api_key) == ("http://127.0.0.1:9/", "rk_live_x")


@pytest.mark.parametrize(("given", "speed"), [("1", 1.0), ("2", 2.0), ("4", 4.0), ("MAX", None)])
def test_speeds(given: str, speed: float | None) -> None:
    assert demo_cli.parse_speed(given) == speed


@pytest.mark.parametrize("given", ["0", "-2", "fast"])
def test_bad_speeds_are_refused(given: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        demo_cli.parse_speed(given)


def test_unknown_scenarios_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("--scenario", "karaoke")
    assert "invalid choice" in capsys.readouterr().err


def test_a_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "pocketsphinx" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingExtraError, match=r"\[demo\] extra \(pocketsphinx"):
        demo_cli._run(_parse("--no-serve"))


def test_to_without_a_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROARK_API_KEY", raising=False)
    assert demo_cli._run(_parse("--to", "http://127.0.0.1:9")) == 2


def test_the_module_imports_only_the_standard_library() -> None:
    heavy = {"pipecat", "numpy", "rich", "hibari", "pocketsphinx", "loguru"}
    code = f"import sys, pipecat_roark.demo.cli; print(sorted({heavy!r} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_pipecat_0x_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.108")
    assert demo_cli._run(_parse("--no-serve")) == 2
    assert "needs Pipecat 1.x (found 0.0.108)" in capsys.readouterr().err


def test_serving_says_how_to_stop_it_when_ctrl_c_is_ignored() -> None:
    # A script's `pipecat-roark demo &` (or nohup) starts it with SIGINT ignored, and a demo
    # that still said "press Ctrl-C" would never stop for it.
    pytest.importorskip("rich", reason="needs the [demo] extra")
    code = (
        "import os, signal\n"
        "from pipecat_roark.demo.runner import how_to_stop\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "print(how_to_stop())\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print(how_to_stop())\n"
        "print(os.getpid())\n"
    )
    attended, ignored, pid = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert attended == "press Ctrl-C to stop"
    assert ignored == f"Ctrl-C is ignored in this process (started in the background): kill {pid}"
