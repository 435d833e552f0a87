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

__all__ = ["DEMO_PROJECT", "Backend", "call_url", "embedded_backend"]

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


async def call_url(backend: Backend, pipecat_call_id: str) -> str | None:
    """Where the backend shows the call (its REST resource), or None if it can't be found.

    The backend names calls with its own ids, so the call is looked up by its Pipecat id.
    """
    import aiohttp

    headers = {"Authorization": f"Bearer {backend.api_key}"}
    params = {"searchText": pipecat_call_id, "limit": "5"}
    try:
        async with (
            aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(f"{backend.base_url}/v1/call", params=params) as response,
        ):
            if response.status != 200:
                return None
            body = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    calls = body.get("data") if isinstance(body, dict) else None
    if not isinstance(calls, list) or not calls or not isinstance(calls[0], dict):
        return None
    return f"{backend.base_url}/v1/call/{calls[0].get('id')}"


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
