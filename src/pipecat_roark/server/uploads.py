"""Chunk uploads to the folder store: the server's own signed, short-lived PUT URLs.

The URL carries the server's call UUID and the chunk index, signed with an expiry, so it
needs no API key (clients send none to upload URLs) and cannot be bent to another call or
chunk. It stores bytes once: after a PUT succeeded, the same bytes again (a client's retry
after a lost answer) are acknowledged and change nothing, and other bytes are refused, so
a URL that leaked cannot replace a chunk. A PUT that failed can be retried. With S3 the
presign route hands out bucket URLs instead and this route is unused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from loguru import logger
from pydantic import BaseModel
from sqlalchemy import and_, bindparam, select

from ..wire import CHUNK_CONTENT_TYPE
from . import schema, signing
from .blobs import call_prefix, chunk_key
from .calls import ENDED, record_chunk_uploaded
from .errors import ERROR_RESPONSES, ApiError
from .recordings import public_base_url
from .state import ServerState, get_state
from .stitch import SAMPLE_WIDTH

__all__ = ["UPLOAD_PREFIX", "router", "upload_url"]

UPLOAD_PREFIX = "/v1/integrations/pipecat/chunks/"
_PURPOSE = "chunk-upload"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

router = APIRouter(responses=ERROR_RESPONSES)
# Built once: a chunk comes every few seconds of every call.
_CHUNK_STATE = (
    select(schema.calls.c.num_channels, schema.chunks.c.uploaded_at, schema.chunks.c.sha256)
    .select_from(
        schema.calls.outerjoin(
            schema.chunks,
            and_(
                schema.chunks.c.call_id == schema.calls.c.id,
                schema.chunks.c.chunk_index == bindparam("chunk_index"),
            ),
        )
    )
    .where(schema.calls.c.id == bindparam("call_id"))
)


class UploadAck(BaseModel):
    ok: bool
    chunkIndex: int
    size: int


def upload_url(state: ServerState, request: Request, call_id: str, chunk_index: int) -> str:
    expires, signature = signing.sign(
        state.secret, _PURPOSE, call_id, chunk_index, state.settings.upload_url_ttl
    )
    return (
        f"{public_base_url(state, request)}{UPLOAD_PREFIX}{call_id}/{chunk_index}"
        f"?expires={expires}&signature={signature}"
    )


async def _whole_samples(
    body: AsyncIterator[bytes], frame_bytes: int, chunk_index: int, digest: Any
) -> AsyncIterator[bytes]:
    """Pass the body through, into ``digest`` too; refuse it unless it is whole frames."""
    size = 0
    async for piece in body:
        size += len(piece)
        digest.update(piece)
        yield piece
    if size % frame_bytes:
        raise ApiError(
            422,
            "partial_frame",
            f"body: {size} bytes is not a whole number of {frame_bytes}-byte frames "
            f"(chunk {chunk_index})",
            "body",
        )


@router.put(
    UPLOAD_PREFIX + "{callId}/{chunkIndex}",
    response_model=UploadAck,
    summary="Upload a chunk's PCM bytes to a URL from chunk-upload-url",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {CHUNK_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_chunk(
    request: Request,
    callId: str,
    chunkIndex: Annotated[int, Path(ge=0, le=1_000_000)],
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
    state: Annotated[ServerState, Depends(get_state)],
) -> UploadAck:
    if not _UUID.match(callId) or not signing.verify(
        state.secret, _PURPOSE, callId, chunkIndex, expires, signature
    ):
        raise ApiError(
            403, "bad_signature", "signature: invalid or expired upload URL", "signature"
        )
    async with state.reader.connect() as connection:
        found = (
            await connection.execute(_CHUNK_STATE, {"call_id": callId, "chunk_index": chunkIndex})
        ).first()
    # Channels are known only once call-ended has come; until then, whole samples.
    frame_bytes = SAMPLE_WIDTH * ((found.num_channels if found else None) or 1)
    digest = hashlib.sha256()
    body = _whole_samples(request.stream(), frame_bytes, chunkIndex, digest)
    if found is not None and found.uploaded_at is not None:
        return await _again(body, digest, found.sha256, chunkIndex)
    size = await state.blobs.write_stream(chunk_key(callId, chunkIndex), body)
    async with state.begin() as connection:
        status = await record_chunk_uploaded(
            connection, callId, chunkIndex, size, digest.hexdigest()
        )
    if status is None:
        logger.bind(call_id=callId).info("chunk {} arrived for a deleted call", chunkIndex)
        await state.blobs.delete_prefix(call_prefix(callId))
        raise ApiError(404, "not_found", "callId: the call no longer exists", "callId")
    if status == ENDED:
        state.stitch_wanted.set()
    return UploadAck(ok=True, chunkIndex=chunkIndex, size=size)


async def _again(
    body: AsyncIterator[bytes], digest: Any, stored_sha256: str | None, chunk_index: int
) -> UploadAck:
    """A PUT to a chunk already stored: the same bytes are a retry, others are refused."""
    size = 0
    async for piece in body:
        size += len(piece)
    if stored_sha256 is not None and digest.hexdigest() == stored_sha256:
        return UploadAck(ok=True, chunkIndex=chunk_index, size=size)
    raise ApiError(
        409,
        "chunk_already_uploaded",
        f"chunkIndex: chunk {chunk_index} is already stored; an upload URL stores its bytes once",
        "chunkIndex",
    )
