"""Blobs in an S3-compatible bucket; clients PUT chunks straight to it by presigned URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from loguru import logger

from ...wire import CHUNK_CONTENT_TYPE
from ..errors import StorageUnavailable
from . import PIECE_SIZE, BlobNotFound
from .presign import UrlSigner, learn

__all__ = ["S3BlobStore"]

_MULTIPART_PART = 8 * 1024 * 1024
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _storage_errors(
    method: Callable[_P, Coroutine[Any, Any, _T]],
) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Report an unreachable or failing bucket as StorageUnavailable (a 503)."""

    @wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await method(*args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            if _is_not_found(exc):
                raise BlobNotFound(str(exc)) from exc
            raise StorageUnavailable(f"S3: {exc}") from exc

    return wrapper


def _is_denied(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("AccessDenied", "403", "Forbidden")


async def _url_signer(signer: Any, session: Any, bucket: str) -> UrlSigner | None:
    """The lean signer of this store's URLs, learnt from one botocore signed; None (botocore
    signs each) without credentials to sign with, or for a URL shape it does not make."""
    try:
        credentials = await session.get_credentials()
        if credentials is None:
            return None
        probe = await signer.generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": "probe", "ContentType": CHUNK_CONTENT_TYPE},
            ExpiresIn=60,
        )
    except (BotoCoreError, ClientError) as exc:
        logger.debug(f"S3: presigning with botocore for every URL ({exc})")
        return None
    return learn(probe, bucket, credentials.get_frozen_credentials)


def _is_not_found(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


class S3BlobStore:
    kind = "s3"

    def __init__(
        self,
        client: Any,
        stack: AsyncExitStack,
        bucket: str,
        prefix: str,
        signer: Any = None,
        url_signer: UrlSigner | None = None,
    ) -> None:
        self._client = client
        self._signer = signer if signer is not None else client
        self._url_signer = url_signer
        self._stack = stack
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""

    @classmethod
    async def open(
        cls,
        *,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        region: str,
        public_endpoint_url: str | None = None,
    ) -> S3BlobStore:
        """``public_endpoint_url``: the address presigned URLs are signed for, when clients
        reach the store elsewhere than the server does (SigV4 signs the host)."""
        if not bucket:
            raise ValueError("blob URL: s3:// needs a bucket name")
        stack = AsyncExitStack()
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        session = get_session()
        client = await stack.enter_async_context(
            session.create_client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )
        )
        signer = None
        if public_endpoint_url and public_endpoint_url != endpoint_url:
            # Only signs URLs: it never sends a request, so it needs no route to the store.
            signer = await stack.enter_async_context(
                session.create_client(
                    "s3", endpoint_url=public_endpoint_url, region_name=region, config=config
                )
            )
        url_signer = await _url_signer(signer or client, session, bucket)
        return cls(client, stack, bucket, prefix, signer, url_signer)

    def _key(self, key: str) -> str:
        return self.prefix + key

    @_storage_errors
    async def ensure_bucket(self) -> None:
        """Create the bucket only if it is missing: a bucket-only identity can run the server."""
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _is_denied(exc):
                raise StorageUnavailable(
                    f"S3: bucket {self.bucket!r} refused these credentials (403): check them, "
                    "and that they may list the bucket (s3:ListBucket)"
                ) from exc
            if not _is_not_found(exc):
                raise
            try:
                await self._client.create_bucket(Bucket=self.bucket)
            except ClientError as denied:
                if not _is_denied(denied):
                    raise
                raise StorageUnavailable(
                    f"S3: bucket {self.bucket!r} does not exist and these credentials may "
                    "not create it: create it once with an administrator identity"
                ) from denied

    @_storage_errors
    async def check(self) -> None:
        await self._client.head_bucket(Bucket=self.bucket)

    @_storage_errors
    async def write_stream(self, key: str, body: AsyncIterator[bytes]) -> int:
        data = bytearray()
        async for piece in body:
            data.extend(piece)
        await self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data))
        return len(data)

    @_storage_errors
    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        size = (await asyncio.to_thread(path.stat)).st_size
        if size <= _MULTIPART_PART:
            await self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=await asyncio.to_thread(path.read_bytes),
                ContentType=content_type,
            )
            return
        handle = await asyncio.to_thread(open, path, "rb")
        try:
            await self._multipart(key, handle, content_type)
        finally:
            handle.close()

    async def _multipart(self, key: str, handle: Any, content_type: str) -> None:
        upload = await self._client.create_multipart_upload(
            Bucket=self.bucket, Key=self._key(key), ContentType=content_type
        )
        upload_id = upload["UploadId"]
        parts = []
        try:
            number = 1
            while part := await asyncio.to_thread(handle.read, _MULTIPART_PART):
                answer = await self._client.upload_part(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                number += 1
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
            )
            raise

    async def read(self, key: str, piece_size: int = PIECE_SIZE) -> AsyncGenerator[bytes, None]:
        try:
            answer = await self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFound(key) from exc
            raise StorageUnavailable(f"S3: {exc}") from exc
        async with answer["Body"] as stream:
            while piece := await stream.read(piece_size):
                yield piece

    @_storage_errors
    async def sizes(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", ()):
                found[item["Key"][len(self.prefix) :]] = int(item["Size"])
        return found

    @_storage_errors
    async def delete_prefix(self, prefix: str) -> None:
        keys = list(await self.sizes(prefix))
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(key)} for key in keys[start : start + 1000]]
            await self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )

    async def presign_put(self, key: str, content_type: str, ttl: int) -> str | None:
        if self._url_signer is not None:
            return await self._url_signer.presign(
                "PUT", self.bucket, self._key(key), ttl, content_type=content_type
            )
        url: str = await self._signer.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self._key(key), "ContentType": content_type},
            ExpiresIn=ttl,
        )
        return url

    async def presign_get(self, key: str, ttl: int) -> str | None:
        if self._url_signer is not None:
            return await self._url_signer.presign("GET", self.bucket, self._key(key), ttl)
        url: str = await self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=ttl
        )
        return url

    def local_path(self, key: str) -> Path | None:
        return None

    async def close(self) -> None:
        await self._stack.aclose()
