"""Everything the server writes under its data dir is its owner's alone (0700 / 0600).

The database holds transcripts and the folder store holds recordings, so nothing there is
for other accounts on the machine. Modes are given when a file or folder is made, never
through the process-wide umask, so an embedding application keeps its own.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "make_private_dirs", "make_private_file", "open_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dirs(path: Path, *, tighten: bool = False) -> Path:
    """``path`` and any missing parents, each made owner-only. Folders that exist are left
    as they are, unless ``tighten`` (the server's own data dir, from before modes were set)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)
    if tighten and not missing and path.stat().st_uid == os.geteuid():
        os.chmod(path, DIR_MODE)
    return path


def make_private_file(path: Path) -> Path:
    """Create ``path`` empty and owner-only if it is missing; make it owner-only if not."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    if path.stat().st_uid == os.geteuid():
        os.chmod(path, FILE_MODE)
    return path


def open_private(path: Path) -> int:
    """A new owner-only file opened for writing (a descriptor); it must not exist yet."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
