"""Liveness and readiness: ``/healthz`` says the process runs, ``/readyz`` that storage answers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel
from sqlalchemy import text

from .state import ServerState, get_state

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"] | None = None
    blobs: Literal["ok", "unavailable"] | None = None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(state: Annotated[ServerState, Depends(get_state)]) -> JSONResponse:
    database = blobs = "ok"
    try:
        async with state.reader.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: database unavailable: {!r}", exc)
        database = "unavailable"
    try:
        await state.blobs.check()
    except Exception as exc:
        logger.warning("readiness: blob store unavailable: {!r}", exc)
        blobs = "unavailable"
    ready = database == blobs == "ok"
    body = Health(status="ok" if ready else "unavailable", database=database, blobs=blobs)  # type: ignore[arg-type]
    return JSONResponse(
        body.model_dump(),
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": str(state.settings.retry_after)},
    )
