"""Starting benchmark workers: which interpreter runs which variant, and what they report.

This project's observer and pipecat-roark 0.2.5 are both the module ``pipecat_roark``, so each
variant runs in a worker process (``benchmarks.worker``) started with the interpreter of the
venv it needs. ``scripts/bench`` makes the venvs and names their interpreters here:

| variable | venv | when unset |
|---|---|---|
| ``ROARK_BENCH_PYTHON`` | this project (editable), Pipecat 1.x | the running interpreter |
| ``ROARK_BENCH_PYTHON_025`` | pipecat-roark 0.2.5, Pipecat 1.x | its rows are left out |
| ``ROARK_BENCH_PYTHON_P108`` | this project, Pipecat 0.0.108 | no 0.0.x table |
| ``ROARK_BENCH_PYTHON_025_P108`` | pipecat-roark 0.2.5, Pipecat 0.0.108 | its rows are left out |
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.worker import Spec

__all__ = [
    "ROOT",
    "BenchError",
    "Line",
    "Worker",
    "WorkerOutput",
    "lines",
    "run_module",
    "run_worker",
]

ROOT = Path(__file__).resolve().parent.parent
_STDERR_TAIL = 3000


class BenchError(RuntimeError):
    """A worker failed; the message ends with what it printed on stderr."""


@dataclass(frozen=True)
class Line:
    """The interpreters for one Pipecat line: ours, and pipecat-roark 0.2.5 if installed."""

    name: str
    ours: str | None
    roark_025: str | None

    def python_for(self, variant: str) -> str | None:
        return self.roark_025 if variant == "roark-0.2.5" else self.ours


def lines() -> list[Line]:
    """The Pipecat lines to benchmark: 1.x always, 0.0.x when its venv is named."""
    env = os.environ
    found = [
        Line(
            "1.x",
            env.get("ROARK_BENCH_PYTHON") or sys.executable,
            env.get("ROARK_BENCH_PYTHON_025") or None,
        )
    ]
    if env.get("ROARK_BENCH_PYTHON_P108"):
        found.append(
            Line("0.0.x", env["ROARK_BENCH_PYTHON_P108"], env.get("ROARK_BENCH_PYTHON_025_P108"))
        )
    return found


@dataclass
class WorkerOutput:
    pipecat: str
    python: str
    observer: str | None
    calls: list[dict[str, Any]] = field(default_factory=list)


async def _start(
    python: str, spec: Spec, wrapper: Sequence[str] = (), **kwargs: Any
) -> asyncio.subprocess.Process:
    kwargs.setdefault("stderr", asyncio.subprocess.PIPE)
    return await asyncio.create_subprocess_exec(
        *wrapper,
        python,
        "-m",
        "benchmarks.worker",
        json.dumps(asdict(spec)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        **kwargs,
    )


async def run_module(
    python: str, module: str, argument: Any, *, what: str, timeout: float
) -> list[dict[str, Any]]:
    """Runs ``python -m module JSON(argument)`` to the end (or ``timeout`` seconds) and
    returns the JSON lines it printed; ``what`` names it in errors."""
    process = await asyncio.create_subprocess_exec(
        python,
        "-m",
        module,
        json.dumps(argument),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise BenchError(f"{what} ({python}) did not finish in {timeout:.0f}s") from None
    if process.returncode != 0:
        raise BenchError(
            f"{what} ({python}) exited {process.returncode}:\n"
            + stderr.decode(errors="replace")[-_STDERR_TAIL:]
        )
    return [json.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]


async def run_worker(python: str, spec: Spec, *, timeout: float) -> WorkerOutput:
    """Runs one worker to the end (or ``timeout`` seconds) and returns what it measured."""
    head, *calls = await run_module(
        python, "benchmarks.worker", asdict(spec), what=f"{spec.variant} worker", timeout=timeout
    )
    return WorkerOutput(head["pipecat"], head["python"], head.get("observer"), calls)


class Worker:
    """A worker that plays one call each time it is asked (``Spec.calls == 0``), run by
    ``python`` itself or under ``wrapper`` (a command that runs the rest, e.g. callgrind)."""

    def __init__(self, python: str, spec: Spec, *, wrapper: Sequence[str] = ()) -> None:
        self.python = python
        self.wrapper = tuple(wrapper)
        self.spec = replace(spec, calls=0)
        self.output: WorkerOutput | None = None
        self._process: asyncio.subprocess.Process | None = None
        # A file, not a pipe: nobody reads stderr while the worker plays, and a full pipe
        # would stop it.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())

    async def start(self, *, timeout: float) -> WorkerOutput:
        """Starts the process and waits until its warm-up call is done."""
        self._process = await _start(
            self.python,
            self.spec,
            self.wrapper,
            stdin=asyncio.subprocess.PIPE,
            stderr=self._stderr,
        )
        head = await self._read(timeout)
        self.output = WorkerOutput(head["pipecat"], head["python"], head.get("observer"))
        return self.output

    async def play(self, *, timeout: float) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(b"play\n")
        await self._process.stdin.drain()
        call = await self._read(timeout)
        assert self.output is not None
        self.output.calls.append(call)
        return call

    async def close(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        self._stderr.close()

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        try:
            while True:
                line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
                if not line:
                    raise BenchError(await self._failure("exited"))
                if line.startswith(b"{"):
                    record: dict[str, Any] = json.loads(line)
                    return record
        except asyncio.TimeoutError:
            self._process.kill()
            raise BenchError(await self._failure(f"did not answer in {timeout:.0f}s")) from None

    async def _failure(self, what: str) -> str:
        assert self._process is not None
        await self._process.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read()
        return (
            f"{self.spec.variant} worker ({self.python}) {what}:\n"
            + stderr.decode(errors="replace")[-_STDERR_TAIL:]
        )
