"""Which id a call is known by, on every request and in traces."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from ..wire import CALL_ID_PATTERN, MAX_CALL_ID_LENGTH

__all__ = ["resolve_call_id"]


def resolve_call_id(explicit: str | None, runner_args: object | None) -> str:
    """Choose the call id: an explicit one wins, then the runner's, then a fresh UUID.

    The runner's id lets a call be matched with the transport's own records: SmallWebRTC's
    peer-connection id names the connection carrying the media, Pipecat Cloud's session id
    names the session.
    """
    if explicit is not None:
        if not _usable(explicit):
            raise ValueError(
                f"pipecat_call_id must be a non-empty string of at most {MAX_CALL_ID_LENGTH} "
                "characters, without control characters"
            )
        return explicit
    connection = _read(runner_args, "webrtc_connection")
    for candidate in (_read(connection, "pc_id"), _read(runner_args, "session_id")):
        if _usable(candidate):
            return str(candidate)
    return str(uuid.uuid4())


def _usable(candidate: object) -> bool:
    return (
        isinstance(candidate, str)
        and bool(candidate.strip())
        and len(candidate) <= MAX_CALL_ID_LENGTH
        and re.fullmatch(CALL_ID_PATTERN, candidate) is not None
    )


def _read(value: object | None, key: str) -> object | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(key)
    return getattr(value, key, None)
