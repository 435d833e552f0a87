"""Stitched recordings: the signed, expiring ``recordingUrl`` and the download itself.

With a folder store the server signs its own URL and serves the file (with HTTP range
requests); with S3 the URL is a presigned GET on the bucket, which handles ranges itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select

from . import schema, signing
from .auth import ProjectId
from .errors import ERROR_RESPONSES, ApiError
from .state import ServerState, get_state

__all__ = ["public_base_url", "recording_url", "router"]

_PURPOSE = "recording"

router = APIRouter(responses=ERROR_RESPONSES)


def public_base_url(state: ServerState, request: Request) -> str:
    """Where clients reach this server (behind a load balancer: ``--public-url``)."""
    return (state.settings.public_url or str(request.base_url)).rstrip("/")


async def recording_url(
    state: ServerState, request: Request, call_id: str, key: str | None
) -> str | None:
    """A URL that downloads the call's recording for ``recording_url_ttl`` seconds."""
    if key is None:
        return None
    ttl = state.settings.recording_url_ttl
    presigned = await state.blobs.presign_get(key, ttl)
    if presigned is not None:
        return presigned
    expires, signature = signing.sign(state.secret, _PURPOSE, call_id, 0, ttl)
    return (
        f"{public_base_url(state, request)}/v1/recordings/{call_id}.wav"
        f"?expires={expires}&signature={signature}"
    )


async def _serve(state: ServerState, key: str) -> Response:
    path = state.blobs.local_path(key)
    if path is not None:
        if not path.is_file():
            raise ApiError(404, "not_found", "recording: not stitched yet", "callId")
        return FileResponse(path, media_type="audio/wav")
    presigned = await state.blobs.presign_get(key, state.settings.recording_url_ttl)
    assert presigned is not None
    return RedirectResponse(presigned, status_code=307)


async def _recording_key(state: ServerState, call_id: str, project_id: str | None) -> str:
    query = select(schema.calls.c.recording_key).where(schema.calls.c.id == call_id)
    if project_id is not None:
        query = query.where(schema.calls.c.project_id == project_id)
    async with state.reader.connect() as connection:
        row = (await connection.execute(query)).first()
    if row is None:
        raise ApiError(404, "not_found", "callId: no such call", "callId")
    if row.recording_key is None:
        raise ApiError(404, "not_found", "recording: not stitched yet", "callId")
    return str(row.recording_key)


@router.get(
    "/v1/call/{callId}/recording",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}, 206: {"content": {"audio/wav": {}}}, 307: {}},
    summary="Download a call's stitched recording (extension)",
)
async def download_recording(
    callId: str,
    project_id: ProjectId,
    state: Annotated[ServerState, Depends(get_state)],
) -> Response:
    return await _serve(state, await _recording_key(state, callId, project_id))


@router.get(
    "/v1/recordings/{callId}.wav",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}, 206: {"content": {"audio/wav": {}}}},
    summary="Download a recording by its signed, expiring URL",
)
async def download_signed_recording(
    callId: str,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
    state: Annotated[ServerState, Depends(get_state)],
) -> Response:
    if not signing.verify(state.secret, _PURPOSE, callId, 0, expires, signature):
        raise ApiError(403, "bad_signature", "signature: invalid or expired", "signature")
    return await _serve(state, await _recording_key(state, callId, None))
