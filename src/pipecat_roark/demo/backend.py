"""Where the demo call goes: the local server embedded in this process, or a given backend.

The embedded server keeps its SQLite file and blobs under the user data folder. Its demo
project's key is created on first use and kept beside the data (readable by this user
only), so every demo call lands in the same project and stays in the dashboard.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEMO_PROJECT", "Backend", "embedded_backend"]

DEMO_PROJECT = "demo"
_KEY_FILE = "demo-api-key"


@dataclass(frozen=True)
class Backend:
    """A backend the observer sends the call to."""

    base_url: str
    api_key: str
    embedded: bool


@contextlib.asynccontextmanager
async def embedded_backend(data_dir: Path | None = None) -> AsyncIterator[Backend]:
    """Serves the local backend on a free 127.0.0.1 port for as long as the block runs."""
    from pipecat_roark.server.embed import ensure_project_key, serve_in_background
    from pipecat_roark.server.settings import ServerSettings, default_data_dir

    data_dir = data_dir or default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = ServerSettings.from_sources({"data_dir": data_dir})
    key_file = data_dir / _KEY_FILE
    if key_file.exists():
        api_key = key_file.read_text().strip()
    else:
        api_key = await ensure_project_key(settings, DEMO_PROJECT)
        _write_private(key_file, api_key)
    async with serve_in_background(settings) as base_url:
        yield Backend(base_url=base_url, api_key=api_key, embedded=True)


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
