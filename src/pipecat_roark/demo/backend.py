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
from typing import Any

__all__ = ["DEMO_PROJECT", "KEY_FILE", "Backend", "StoredCall", "embedded_backend", "find_call"]

DEMO_PROJECT = "demo"
KEY_FILE = "demo-api-key"


@dataclass(frozen=True)
class Backend:
    """A backend the observer sends the call to."""

    base_url: str
    api_key: str
    embedded: bool
    data_dir: Path | None = None
    """The embedded server's folder (absolute): where the call stays once it has stopped."""


@dataclass(frozen=True)
class StoredCall:
    """The call as the backend knows it."""

    call_id: str
    """The backend's own id for the call (its dashboard page is ``/calls/{call_id}``)."""
    link: str
    """A dashboard login link to the call where the backend offers one, else its REST
    resource. Either works only while this backend is serving."""


@contextlib.asynccontextmanager
async def embedded_backend(data_dir: Path | None = None) -> AsyncIterator[Backend]:
    """Serves the local backend on a free 127.0.0.1 port for as long as the block runs."""
    from pipecat_roark.server.embed import ensure_project_key, serve_in_background
    from pipecat_roark.server.settings import ServerSettings, default_data_dir

    data_dir = (data_dir or default_data_dir()).absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = ServerSettings.from_sources({"data_dir": data_dir})
    key_file = data_dir / KEY_FILE
    if key_file.exists():
        api_key = key_file.read_text().strip()
    else:
        api_key = await ensure_project_key(settings, DEMO_PROJECT)
        _write_private(key_file, api_key)
    async with serve_in_background(settings) as base_url:
        yield Backend(base_url=base_url, api_key=api_key, embedded=True, data_dir=data_dir)


async def find_call(backend: Backend, pipecat_call_id: str) -> StoredCall | None:
    """The call's id and link on the backend; None if the backend does not know the call.

    The backend names calls with its own ids, so the call is looked up by its Pipecat id.
    """
    import aiohttp

    headers = {"Authorization": f"Bearer {backend.api_key}"}
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            call_id = await _find_call(http, backend.base_url, pipecat_call_id)
            if call_id is None:
                return None
            login = await _login_link(http, backend.base_url, f"/calls/{call_id}")
            return StoredCall(call_id, login or f"{backend.base_url}/v1/call/{call_id}")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def _find_call(http: Any, base_url: str, pipecat_call_id: str) -> str | None:
    params = {"searchText": pipecat_call_id, "limit": "5"}
    async with http.get(f"{base_url}/v1/call", params=params) as response:
        if response.status != 200:
            return None
        calls = _data(await response.json())
    if not isinstance(calls, list) or not calls or not isinstance(calls[0], dict):
        return None
    return str(calls[0].get("id"))


async def _login_link(http: Any, base_url: str, page: str) -> str | None:
    """A short-lived link that opens ``page`` in the dashboard, if the backend has one."""
    async with http.post(f"{base_url}/v1/dashboard/login-links", json={"next": page}) as response:
        if response.status not in (200, 201):
            return None
        link = _data(await response.json())
    url = link.get("url") if isinstance(link, dict) else None
    return str(url) if url else None


def _data(body: Any) -> Any:
    return body.get("data") if isinstance(body, dict) else None


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
