"""The secret that signs URLs, sessions and login links lives outside the database.

A copy of the database (a backup) must not be enough to forge an upload, download or login.
The secret is ``ROARK_SERVER_SECRET_KEY`` when set (replicas on several machines share it
that way), else a 0600 file, ``url-signing-key``, beside the SQLite database or, with
PostgreSQL, in the data dir; it is made once, by whichever process starts first. A secret
an older version kept in the database is moved into that file, and deleted there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from pathlib import Path

from loguru import logger
from sqlalchemy import delete, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from . import schema
from .private_files import make_private_dirs, open_private
from .settings import ServerSettings

__all__ = ["MIN_SECRET_LENGTH", "SECRET_FILE_NAME", "load_signing_secret", "secret_path"]

SECRET_FILE_NAME = "url-signing-key"
MIN_SECRET_LENGTH = 16
_LEGACY_ROW = "url-signing-key"


def secret_path(settings: ServerSettings) -> Path:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().parent / SECRET_FILE_NAME
    return settings.resolved_data_dir / SECRET_FILE_NAME


def _read_or_create(path: Path, initial: str) -> tuple[str, bool]:
    """The file's secret, or ``initial`` written to it first; and whether it was created.

    Written to a temporary file and linked into place, so a process starting at the same
    moment reads either nothing yet (and links its own, which fails) or the whole secret.
    """
    if path.exists():
        return path.read_text().strip(), False
    make_private_dirs(path.parent)
    temp = path.with_name(f".{SECRET_FILE_NAME}.{uuid.uuid4().hex}")
    with os.fdopen(open_private(temp), "w") as handle:
        handle.write(initial + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return path.read_text().strip(), created


async def load_signing_secret(settings: ServerSettings, engine: AsyncEngine) -> str:
    """The secret this process signs with; the database is left holding none.

    Raises ``ValueError`` for a secret too short to sign with (a file emptied by hand).
    """
    async with engine.begin() as connection:
        legacy = await connection.scalar(
            select(schema.server_secrets.c.value).where(schema.server_secrets.c.name == _LEGACY_ROW)
        )
        if settings.secret_key:
            secret = settings.secret_key
        else:
            path = secret_path(settings)
            secret, created = _read_or_create(path, legacy or secrets.token_hex(32))
            if created:
                logger.info(
                    "URL-signing secret {} {}; replicas on other machines must share it "
                    "(ROARK_SERVER_SECRET_KEY)",
                    "moved from the database to" if legacy else "created in",
                    path,
                )
        if legacy is not None:
            await connection.execute(delete(schema.server_secrets))
    if len(secret) < MIN_SECRET_LENGTH:
        where = "ROARK_SERVER_SECRET_KEY" if settings.secret_key else str(secret_path(settings))
        raise ValueError(
            f"{where}: the URL-signing secret must be at least {MIN_SECRET_LENGTH} characters "
            "(make one with `openssl rand -hex 32`; delete the file to have one made)"
        )
    return secret
