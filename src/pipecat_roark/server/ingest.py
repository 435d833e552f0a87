"""The ingestion protocol's routes: call-started, call-ended and chunk-upload-url.

Bodies are parsed with the shared protocol models (``pipecat_roark.wire``), so the server
accepts exactly what the observer sends. Each request is one transaction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from loguru import logger
from pydantic import Field

from ..wire import (
    CHUNK_CONTENT_TYPE,
    CHUNK_UPLOAD_URL_PATH,
    EVENTS_PATH,
    CallEnded,
    CallStarted,
    ChunkUploadUrlRequest,
    ChunkUploadUrlResponse,
)
from .auth import ProjectId
from .blobs import chunk_key
from .calls import check_call_id, record_call_ended, record_call_started, record_chunk_requested
from .clean_route import SanitisedJsonRoute, request_repairs
from .errors import ERROR_RESPONSES, ApiError
from .models import EventAck, IngestWarning
from .state import ServerState, get_state
from .uploads import upload_url

__all__ = ["router"]

router = APIRouter(responses=ERROR_RESPONSES, route_class=SanitisedJsonRoute)

# A late chunk's bytes may be on their way to a bucket; look for them after this long.
_LATE_CHUNK_DELAY = 2.0

LifecycleEvent = Annotated[CallStarted | CallEnded, Field(discriminator="event")]


@router.post(EVENTS_PATH, response_model=EventAck, summary="call-started or call-ended")
async def post_event(
    body: Annotated[LifecycleEvent, Body()],
    request: Request,
    project_id: ProjectId,
    state: Annotated[ServerState, Depends(get_state)],
) -> EventAck:
    check_call_id(body.pipecatCallId)
    repairs = list(request_repairs(request))
    async with state.begin() as connection:
        if isinstance(body, CallStarted):
            call, changed = await record_call_started(connection, project_id, body, repairs)
        else:
            call, changed = await record_call_ended(connection, project_id, body, repairs)
    if isinstance(body, CallEnded):
        state.stitch_wanted.set()
    if repairs:
        logger.bind(call_id=call.id).info(
            "stored with {} repaired value(s): {}",
            len(repairs),
            ", ".join(sorted({f"{item['field']} ({item['code']})" for item in repairs})),
        )
    return EventAck(
        ok=True,
        callId=call.id,
        status=call.status,  # type: ignore[arg-type]
        changed=changed,
        warnings=[IngestWarning.model_validate(item) for item in repairs],
    )


@router.post(
    CHUNK_UPLOAD_URL_PATH,
    response_model=ChunkUploadUrlResponse,
    response_model_exclude_none=True,
    summary="A short-lived URL to PUT one chunk's PCM bytes to",
)
async def post_chunk_upload_url(
    body: ChunkUploadUrlRequest,
    request: Request,
    project_id: ProjectId,
    state: Annotated[ServerState, Depends(get_state)],
) -> ChunkUploadUrlResponse:
    check_call_id(body.pipecatCallId)
    if body.contentType != CHUNK_CONTENT_TYPE:
        raise ApiError(
            422, "invalid_field", f"contentType: must be {CHUNK_CONTENT_TYPE!r}", "contentType"
        )
    ttl = state.settings.upload_url_ttl
    async with state.at_once() as connection:
        call = await record_chunk_requested(
            connection, project_id, body.pipecatCallId, body.chunkIndex, ttl, _LATE_CHUNK_DELAY
        )
    key = chunk_key(call.id, body.chunkIndex)
    url = await state.blobs.presign_put(key, CHUNK_CONTENT_TYPE, ttl)
    return ChunkUploadUrlResponse(
        uploadUrl=url or upload_url(state, request, call.id, body.chunkIndex),
        s3Key=key,
        chunkIndex=body.chunkIndex,
        expiresInSeconds=ttl,
        method="PUT",
        contentType=CHUNK_CONTENT_TYPE,
    )
