"""The observer's connection settings: the API key and the backend, from arguments or the
environment, refused before the call starts when they cannot work."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..wire import DEFAULT_BASE_URL

__all__ = ["resolve_api_key", "resolve_base_url"]


def resolve_api_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get("ROARK_API_KEY", "")
    if not isinstance(key, str) or not key.strip():
        raise ValueError(
            "RoarkObserver needs an API key: pass api_key=... or set the ROARK_API_KEY "
            "environment variable"
        )
    return key.strip()


def resolve_base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get("ROARK_BASE_URL") or DEFAULT_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url (or ROARK_BASE_URL) must be an http(s) URL such as {DEFAULT_BASE_URL}, "
            f"not {url!r}"
        )
    return url.rstrip("/")
