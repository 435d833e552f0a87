"""Which id a call is known by, on every request and in traces."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from .wire import MAX_CALL_ID_LENGTH

__all__ = ["resolve_call_id"]


def resolve_call_id(explicit: str | None, runner_args: object | None) -> str:
    """Choose the call id: an explicit one wins, then the runner's, then a fresh UUID.

    The runner's id lets a call be matched with the transport's own records: SmallWebRTC's
    peer-connection id names the connection carrying the media, Pipecat Cloud's session id
    names the session.
    """
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit.strip():
            raise ValueError("pipecat_call_id must be a non-empty string")
        if len(explicit) > MAX_CALL_ID_LENGTH:
            raise ValueError(f"pipecat_call_id must be at most {MAX_CALL_ID_LENGTH} characters")
        return explicit
    connection = _read(runner_args, "webrtc_connection")
    for candidate in (_read(connection, "pc_id"), _read(runner_args, "session_id")):
        if isinstance(candidate, str) and 0 < len(candidate) <= MAX_CALL_ID_LENGTH:
            return candidate
    return str(uuid.uuid4())


def _read(value: object | None, key: str) -> object | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(key)
    return getattr(value, key, None)
