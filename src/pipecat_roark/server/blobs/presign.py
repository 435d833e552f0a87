"""SigV4 query-string presigning of path-style S3 URLs, a few hashes per URL.

Every chunk of every call asks for an upload URL. botocore builds each one through its
whole request pipeline (parameter validation, endpoint rules, event hooks), which cost
more replica CPU than the chunk's database write. The URL's shape does not change between
calls: the store learns it from one URL botocore presigned (``learn``), then signs the same
way itself (AWS Signature Version 4, query parameters, unsigned payload). Credentials still
come from botocore's provider chain, refreshed as it refreshes them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

__all__ = ["UrlSigner", "learn"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_SERVICE = "s3"
_DEFAULT_PORTS = {"http": 80, "https": 443}

Credentials = Callable[[], Awaitable[Any]]
"""Returns an object with ``access_key``, ``secret_key`` and ``token`` (botocore's frozen
credentials)."""


def _query_quote(value: str) -> str:
    return quote(value, safe="-_.~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@dataclass
class UrlSigner:
    """Presigns requests to ``{origin}/{bucket}/{key}`` in ``region``."""

    origin: str
    host: str
    region: str
    credentials: Credentials
    _keys: tuple[str, str, bytes] = field(default=("", "", b""), repr=False)
    """The last signing key: (day, secret, key); it changes once a day."""

    async def presign(
        self,
        method: str,
        bucket: str,
        key: str,
        ttl: int,
        *,
        content_type: str | None = None,
        now: datetime | None = None,
    ) -> str:
        frozen = await self.credentials()
        moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        stamp = moment.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        scope = f"{day}/{self.region}/{_SERVICE}/aws4_request"
        path = f"/{quote(bucket, safe='~')}/{quote(key, safe='/~')}"
        headers = {"host": self.host}
        if content_type is not None:
            headers["content-type"] = content_type
        signed_headers = ";".join(sorted(headers))
        query = {
            "X-Amz-Algorithm": _ALGORITHM,
            "X-Amz-Credential": f"{frozen.access_key}/{scope}",
            "X-Amz-Date": stamp,
            "X-Amz-Expires": str(ttl),
            "X-Amz-SignedHeaders": signed_headers,
        }
        if frozen.token:
            query["X-Amz-Security-Token"] = frozen.token
        canonical_query = "&".join(
            f"{_query_quote(name)}={_query_quote(value)}" for name, value in sorted(query.items())
        )
        canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in sorted(headers))
        canonical = "\n".join(
            (method, path, canonical_query, canonical_headers, signed_headers, "UNSIGNED-PAYLOAD")
        )
        to_sign = "\n".join(
            (_ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
        )
        signature = hmac.new(
            self._signing_key(day, frozen.secret_key), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        return f"{self.origin}{path}?{canonical_query}&X-Amz-Signature={signature}"

    def _signing_key(self, day: str, secret: str) -> bytes:
        known_day, known_secret, known = self._keys
        if known_day == day and known_secret == secret:
            return known
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (self.region, _SERVICE, "aws4_request"):
            key = _hmac(key, part)
        self._keys = (day, secret, key)
        return key


def learn(url: str, bucket: str, credentials: Credentials) -> UrlSigner | None:
    """The signer of URLs shaped like ``url``, one botocore presigned for ``bucket``; None
    when it is not a path-style SigV4 URL this module can make (botocore keeps signing)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if query.get("X-Amz-Algorithm") != [_ALGORITHM] or not parts.hostname:
        return None
    scope = query.get("X-Amz-Credential", [""])[0].split("/")
    if len(scope) != 5 or scope[3:] != [_SERVICE, "aws4_request"]:
        return None
    if not parts.path.startswith(f"/{quote(bucket, safe='~')}/"):
        return None
    if ":" in parts.hostname:  # an IPv6 literal: leave its brackets and quirks to botocore
        return None
    host = parts.hostname
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return UrlSigner(
        origin=f"{parts.scheme}://{parts.netloc}",
        host=host,
        region=scope[2],
        credentials=credentials,
    )
