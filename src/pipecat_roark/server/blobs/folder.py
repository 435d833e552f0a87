"""Blobs as files under one folder, written by temp file + fsync + rename."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from ..private_files import FILE_MODE, make_private_dirs, open_private
from . import PIECE_SIZE, BlobNotFound

__all__ = ["FolderBlobStore"]


class FolderBlobStore:
    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._tmp = make_private_dirs(self.root / ".tmp")
        make_private_dirs(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys are built from server UUIDs; this guards the invariant, not client input.
        if self.root not in path.parents:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    async def check(self) -> None:
        probe = self._tmp / f"probe-{uuid.uuid4().hex}"
        await asyncio.to_thread(probe.write_bytes, b"ok")
        await asyncio.to_thread(probe.unlink)

    async def write_stream(self, key: str, body: AsyncIterator[bytes]) -> int:
        target = self._path(key)
        temp = self._tmp / uuid.uuid4().hex
        size = 0
        handle: BinaryIO | None = None
        # Pieces are gathered up to PIECE_SIZE before each write: a thread round trip per
        # network read would cost more than the write itself.
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for piece in body:
                if not piece:
                    continue
                pending.append(piece)
                pending_size += len(piece)
                size += len(piece)
                if pending_size >= PIECE_SIZE:
                    handle = await asyncio.to_thread(self._append, handle, temp, pending)
                    pending, pending_size = [], 0
            await asyncio.to_thread(self._finish, handle, temp, pending, target)
        except BaseException:
            if handle is not None:
                handle.close()
            temp.unlink(missing_ok=True)
            raise
        return size

    def _append(self, handle: BinaryIO | None, temp: Path, pieces: list[bytes]) -> BinaryIO:
        opened = handle is None
        if handle is None:
            handle = os.fdopen(open_private(temp), "wb")
        try:
            for piece in pieces:
                self._write_piece(handle, piece)
        except BaseException:
            if opened:
                handle.close()
            raise
        return handle

    def _finish(
        self, handle: BinaryIO | None, temp: Path, pieces: list[bytes], target: Path
    ) -> None:
        """Write the last pieces, make the file durable and move it into place."""
        handle = self._append(handle, temp, pieces)
        try:
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            handle.close()
        _move_into_place(temp, target)

    def _write_piece(self, handle: BinaryIO, piece: bytes) -> None:
        handle.write(piece)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self._path(key)
        temp = self._tmp / uuid.uuid4().hex
        try:
            await asyncio.to_thread(shutil.copyfile, path, temp)
            await asyncio.to_thread(os.chmod, temp, FILE_MODE)
            await asyncio.to_thread(_fsync_path, temp)
            await asyncio.to_thread(_move_into_place, temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def read(self, key: str, piece_size: int = PIECE_SIZE) -> AsyncGenerator[bytes, None]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        try:
            while piece := await asyncio.to_thread(handle.read, piece_size):
                yield piece
        finally:
            handle.close()

    async def sizes(self, prefix: str) -> dict[str, int]:
        return await asyncio.to_thread(self._sizes, prefix)

    def _sizes(self, prefix: str) -> dict[str, int]:
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return {}
        found: dict[str, int] = {}
        for path in base.rglob("*"):
            if path.is_file():
                found[path.relative_to(self.root).as_posix()] = path.stat().st_size
        return found

    async def delete_prefix(self, prefix: str) -> None:
        base = self._path(prefix.rstrip("/"))
        await asyncio.to_thread(shutil.rmtree, base, True)

    async def presign_put(self, key: str, content_type: str, ttl: int) -> str | None:
        return None

    async def presign_get(self, key: str, ttl: int) -> str | None:
        return None

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def close(self) -> None:
        return None


def _fsync_path(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _move_into_place(temp: Path, target: Path) -> None:
    make_private_dirs(target.parent)
    os.replace(temp, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
