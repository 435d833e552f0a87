"""Fixtures shared by every test: a recording backend on 127.0.0.1 and captured logs."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from loguru import logger

from tests.support.backend import RecordingBackend


@pytest.fixture
async def backend() -> AsyncIterator[RecordingBackend]:
    server = RecordingBackend()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class LogCapture:
    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def at(self, level: str) -> list[str]:
        return [message for lvl, message in self.records if lvl == level]

    def matching(self, text: str) -> list[str]:
        return [message for _, message in self.records if text in message]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    sink_id = logger.add(
        lambda message: capture.records.append(
            (message.record["level"].name, message.record["message"])
        ),
        level="DEBUG",
    )
    try:
        yield capture
    finally:
        logger.remove(sink_id)


def _to_the_current_stderr(message: str) -> None:
    sys.stderr.write(message)


@pytest.fixture(autouse=True)
def _log_to_the_current_stderr() -> Iterator[None]:
    """Each test ends with loguru writing to whatever stderr is current.

    A test that configures logging as a program does (``serve``, the demo's command line)
    binds a sink to the stderr of that moment, a capture pytest closes when the test ends;
    every record of every later test in the process would then fail to write, each with a
    traceback."""
    yield
    logger.remove()
    logger.add(_to_the_current_stderr, level="DEBUG")


@pytest.fixture(autouse=True)
async def _close_the_sender() -> AsyncIterator[None]:
    """Each test's event loop ends with its sender closed, as a process would at exit."""
    yield
    from pipecat_roark.delivery.delivery import default_delivery

    await default_delivery().aclose()


@pytest.fixture(autouse=True)
def _no_roark_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ROARK_API_KEY", "ROARK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROARK_SPOOL_DIR", str(tmp_path / "spool"))
