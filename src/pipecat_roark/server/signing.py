"""Short-lived URLs signed by the server itself (folder-store uploads, recording downloads).

A signature is an HMAC-SHA256 over a purpose, the call's server id, a number (the chunk
index, or 0) and the expiry, so a URL cannot be reused for another call, chunk or purpose,
nor after it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["sign", "verify"]


def _mac(secret: str, purpose: str, call_id: str, number: int, expires: int) -> str:
    message = f"{purpose}\n{call_id}\n{number}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, purpose: str, call_id: str, number: int, ttl_seconds: int) -> tuple[int, str]:
    """Return ``(expires, signature)`` for a URL valid for ``ttl_seconds`` from now."""
    expires = int(time.time()) + ttl_seconds
    return expires, _mac(secret, purpose, call_id, number, expires)


def verify(
    secret: str, purpose: str, call_id: str, number: int, expires: int, signature: str
) -> bool:
    """True when the signature matches and the expiry has not passed."""
    if expires < int(time.time()):
        return False
    expected = _mac(secret, purpose, call_id, number, expires)
    return hmac.compare_digest(expected.encode(), signature.encode())
