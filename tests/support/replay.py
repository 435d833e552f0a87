"""``pipecat-roark replay`` run as a user runs it: its own process, the test's environment."""

from __future__ import annotations

import asyncio
import subprocess
import sys


async def run_replay(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``pipecat-roark replay ARGS``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipecat_roark.cli",
        "replay",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
