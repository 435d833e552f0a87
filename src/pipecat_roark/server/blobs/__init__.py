"""Where chunk and recording bytes live: a local folder or an S3-compatible bucket.

Both stores write a blob completely or not at all (temp file + rename, or one finished S3
request), so a failure never leaves half a chunk where the stitcher would read it. Keys are
built from the server's own call UUID, never from a client's call id.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from loguru import logger

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "call_prefix",
    "chunk_index_of",
    "chunk_key",
    "open_blob_store",
    "recording_key",
]

PIECE_SIZE = 256 * 1024


class BlobNotFound(Exception):
    """The blob does not exist (deleted, or never uploaded)."""


class BlobStore(Protocol):
    kind: str

    async def check(self) -> None:
        """Raise if the store cannot be reached or written."""

    async def write_stream(self, key: str, body: AsyncIterator[bytes]) -> int:
        """Store the streamed bytes under ``key`` atomically; return their size."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store a local file under ``key`` atomically."""

    def read(self, key: str, piece_size: int = PIECE_SIZE) -> AsyncGenerator[bytes, None]:
        """The blob's bytes in pieces, never the whole blob in memory."""

    async def sizes(self, prefix: str) -> dict[str, int]:
        """Every blob under ``prefix`` with its size."""

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every blob under ``prefix``; missing blobs are not an error."""

    async def presign_put(self, key: str, content_type: str, ttl: int) -> str | None:
        """A URL that accepts a PUT of this blob directly, or None if the server must sign."""

    async def presign_get(self, key: str, ttl: int) -> str | None:
        """A URL that serves this blob directly, or None if the server serves it."""

    def local_path(self, key: str) -> Path | None:
        """The blob's file when the store is a local folder."""

    async def close(self) -> None: ...


def call_prefix(call_id: str) -> str:
    return f"calls/{call_id}/"


def chunk_key(call_id: str, chunk_index: int) -> str:
    return f"{call_prefix(call_id)}chunks/{chunk_index:07d}.pcm"


def chunk_index_of(key: str) -> int | None:
    """The chunk index a key was built from, or None for any other blob."""
    name = key.rsplit("/", 1)[-1]
    if "/chunks/" not in key or not name.endswith(".pcm"):
        return None
    stem = name[: -len(".pcm")]
    return int(stem) if stem.isdigit() else None


def recording_key(call_id: str) -> str:
    return f"{call_prefix(call_id)}recording.wav"


async def open_blob_store(
    blob_url: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_public_endpoint_url: str | None = None,
    s3_region: str = "us-east-1",
) -> BlobStore:
    """The store a URL names: ``s3://bucket/prefix``, ``file:///path`` or a plain path."""
    parsed = urlparse(blob_url)
    if parsed.scheme == "s3":
        from ..errors import StorageUnavailable
        from .s3 import S3BlobStore

        store = await S3BlobStore.open(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint_url=s3_endpoint_url,
            public_endpoint_url=s3_public_endpoint_url,
            region=s3_region,
        )
        try:
            await store.ensure_bucket()
        except StorageUnavailable as exc:
            # Start anyway: /readyz reports it, requests answer 503 until the bucket is back.
            logger.warning("bucket not reachable at start: {}", exc)
        return store
    return _folder_store(blob_url)


def _folder_store(blob_url: str) -> BlobStore:
    from .folder import FolderBlobStore

    parsed = urlparse(blob_url)
    if parsed.scheme == "file":
        return FolderBlobStore(Path(unquote(parsed.path)))
    if parsed.scheme == "":
        return FolderBlobStore(Path(blob_url).expanduser())
    raise ValueError(f"blob URL: unsupported scheme {parsed.scheme!r} (use s3:// or file://)")
