"""The lock that makes one process the owner of one spooled call.

An OS file lock (``flock``) on the call's ``.lock`` file. The kernel holds it for the open
file, not for a pid, so it works the same across processes, containers and pid namespaces
that share a filesystem on one host, and it is released the moment its owner dies: there is
no expiry to wait for and no pid to judge. Linux's NFS client turns ``flock`` into a
byte-range lock held by the NFS server, so it also holds across NFS clients; a client that
crashes keeps its locks until the server's lease time runs out (90 s by default for NFSv4).

The owner writes who it is and since when into the file, for ``pipecat-roark replay`` to
report; nothing relies on that text.

Blocking file I/O: callers on an event loop run it in a thread.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LOCK_NAME", "CallLock", "LockHolder", "holder_of"]

LOCK_NAME = ".lock"
_POLL_SECS = 0.05


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who said they hold a call, and since when (wall clock)."""

    host: str
    pid: int
    since: float


class CallLock:
    """The lock of one call folder. Not reentrant; one instance per owner."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, create: bool, wait: float = 0.0) -> bool:
        """Take the lock; False if another owner holds it for longer than ``wait`` seconds,
        or (unless ``create``) if the call is gone."""
        deadline = time.monotonic() + wait
        while True:
            taken = self._try(create)
            if taken is not None:
                return taken
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECS)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the file drops the lock

    def remove_call(self) -> bool:
        """Delete the call folder if nothing is left in it but the lock; then release.

        The lock file is unlinked while still held, so a process that opened it before and
        gets the lock after sees that its file is no longer the call's and lets go.
        """
        removed = False
        if self._fd is not None:
            try:
                leftovers = [p for p in os.listdir(self.folder) if p != LOCK_NAME]
                if not leftovers:
                    os.unlink(self.folder / LOCK_NAME)
                    os.rmdir(self.folder)
                    removed = True
            except OSError:
                pass
        self.release()
        return removed

    def _try(self, create: bool) -> bool | None:
        """True: taken. False: the call is gone. None: someone else holds it."""
        path = self.folder / LOCK_NAME
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if create:
                return None  # removed between mkdir and open: try again
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if not _still_the_lock_of(path, fd):
            os.close(fd)  # the previous owner removed the call while we waited
            return None if create else False
        self._fd = fd
        _write_holder(fd)
        return True


def holder_of(folder: Path) -> LockHolder | None:
    """What the current (or last) owner of a call wrote about itself."""
    try:
        data = json.loads((folder / LOCK_NAME).read_bytes() or b"null")
        return LockHolder(str(data["host"]), int(data["pid"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _still_the_lock_of(path: Path, fd: int) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _write_holder(fd: int) -> None:
    text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass  # only informative
