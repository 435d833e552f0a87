"""The protocol's three HTTP requests, and how a failure should be treated.

Every failure becomes a ``DeliveryError`` that says whether retrying can help and how
long the server asked to wait, so the sender's policy lives in one place. Uses aiohttp,
which Pipecat already depends on.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from loguru import logger

from ..wire import (
    API_KEY_HEADER,
    CHUNK_CONTENT_TYPE,
    CHUNK_UPLOAD_URL_PATH,
    EVENTS_PATH,
    EXTENSION_FIELDS,
    finite_json,
    unwrap_data,
)

__all__ = ["BackendClient", "DeliveryError", "parse_retry_after", "without_extensions"]

_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_MAX_ERROR_BODY = 300


@dataclass
class DeliveryError(Exception):
    """A request that did not get a 2xx."""

    endpoint: str
    status: int | None
    retryable: bool
    detail: str = ""
    retry_after: float | None = None

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{self.endpoint}: {where} {self.detail}".rstrip()

    @property
    def failure_class(self) -> str:
        """What kind of failure this is, for logging each kind once per call."""
        return f"{self.endpoint}:{self.status if self.status is not None else 'network'}"

    @property
    def is_auth(self) -> bool:
        return self.status in (401, 403)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class BackendClient:
    """Talks to one backend with one API key over a shared aiohttp session.

    ``refusing_extensions`` is the set of backends known to refuse call-ended's extension
    fields; clients of one delivery share theirs, so a backend is asked once.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        refusing_extensions: set[str] | None = None,
    ) -> None:
        self._refuse_extensions = set() if refusing_extensions is None else refusing_extensions
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._headers = {API_KEY_HEADER: api_key, "authorization": f"Bearer {api_key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def base_url(self) -> str:
        return self._base_url

    async def post_event(self, body: dict[str, Any]) -> None:
        await self._request_json("event", EVENTS_PATH, body)

    async def post_call_ended(self, body: dict[str, Any]) -> None:
        """Post call-ended; a backend that refuses this project's extension fields gets it
        again without them, and keeps getting it without them from this client's delivery,
        so a call is never lost for the sake of its metrics."""
        if self._base_url in self._refuse_extensions:
            body = without_extensions(body)
        try:
            await self.post_event(body)
        except DeliveryError as exc:
            stripped = without_extensions(body)
            if exc.status not in (400, 422) or stripped == body:
                raise
            self._refuse_extensions.add(self._base_url)
            logger.warning(
                f"pipecat-roark: {self._base_url} refused call-ended's extension fields "
                f"({', '.join(EXTENSION_FIELDS)}) with HTTP {exc.status}; sending call-ended "
                "without them from now on"
            )
            await self.post_event(stripped)

    async def upload_chunk(self, call_id: str, chunk_index: int, pcm: bytes) -> None:
        """Presign and PUT one chunk; an expired or rejected URL gets a fresh one, once."""
        url = await self.presign(call_id, chunk_index)
        try:
            await self.upload(url, pcm)
        except DeliveryError as exc:
            if exc.status != 403:
                raise
            await self.upload(await self.presign(call_id, chunk_index), pcm)

    async def presign(self, call_id: str, chunk_index: int) -> str:
        """The URL to PUT chunk ``chunk_index`` to."""
        body = {
            "pipecatCallId": call_id,
            "chunkIndex": chunk_index,
            "contentType": CHUNK_CONTENT_TYPE,
        }
        answer = unwrap_data(await self._request_json("presign", CHUNK_UPLOAD_URL_PATH, body))
        url = answer.get("uploadUrl") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DeliveryError("presign", 200, True, "answer has no uploadUrl")
        return url

    async def upload(self, url: str, pcm: bytes) -> None:
        # No auth headers: S3 rejects headers it did not sign.
        headers = {"content-type": CHUNK_CONTENT_TYPE}
        await self._send("upload", "PUT", url, data=pcm, headers=headers)

    async def _request_json(self, endpoint: str, path: str, body: dict[str, Any]) -> Any:
        return await self._send(
            endpoint,
            "POST",
            self._base_url + path,
            json=finite_json(body),
            headers=self._headers,
            parse=True,
        )

    async def _send(
        self,
        endpoint: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        parse: bool = False,
        **kwargs: Any,
    ) -> Any:
        try:
            async with self._session.request(
                method, url, headers=headers, timeout=self._timeout, **kwargs
            ) as response:
                if response.status >= 300:
                    detail = (await response.text(errors="replace"))[:_MAX_ERROR_BODY]
                    raise DeliveryError(
                        endpoint,
                        response.status,
                        response.status >= 500 or response.status in _RETRYABLE_STATUSES,
                        detail,
                        parse_retry_after(response.headers.get("retry-after")),
                    )
                if not parse:
                    return None
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    return None
        except DeliveryError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise DeliveryError(endpoint, None, True, type(exc).__name__) from exc


def without_extensions(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in EXTENSION_FIELDS}
