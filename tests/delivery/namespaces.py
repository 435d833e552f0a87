"""Processes in their own pid namespace, as containers sharing a spool volume run.

Each process gets a pid chosen by the test (written to ``ns_last_pid`` inside its new
namespace before it starts), so two of them never both run as pid 1: a pid-based lease
would then look dead to the other, which is the case a shared spool has to survive.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys

import pytest

__all__ = ["PYTHON_PID", "in_pid_namespace", "pid_of", "require_pid_namespaces"]

PYTHON_PID = (
    "import os, sys; print('pid', os.getpid(), file=sys.stderr, flush=True); "
    "sys.argv[0] = 'pipecat-roark'; from pipecat_roark.cli import main; sys.exit(main())"
)
"""``python -c`` code that says its pid, then runs ``pipecat-roark`` with its arguments."""


def _unshare(first_pid: int) -> list[str]:
    command = ["unshare", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        command.append("--map-root-user")
    # Not exec'd: the shell stays pid 1, and the command gets the pid asked for.
    script = f'echo {first_pid - 1} > /proc/sys/kernel/ns_last_pid || exit 97; "$@"; exit $?'
    return [*command, "sh", "-c", script, "sh"]


@functools.cache
def _available() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(
        [*_unshare(4321), sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() != "4321":
        return f"pid namespaces are not available here: {probe.stderr.strip()[:200]}"
    return None


def require_pid_namespaces() -> None:
    reason = _available()
    if reason is not None:
        pytest.skip(reason)


async def in_pid_namespace(
    first_pid: int, *argv: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``argv`` as pid ``first_pid`` of a new pid namespace. SIGKILL to the returned
    process kills everything in that namespace."""
    return await asyncio.create_subprocess_exec(
        *_unshare(first_pid),
        *argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def pid_of(stderr: bytes) -> int:
    """The pid a process started with ``PYTHON_PID`` said it had."""
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("pid "):
            return int(line.split()[1])
    raise AssertionError(f"no pid line in: {stderr[-500:]!r}")
