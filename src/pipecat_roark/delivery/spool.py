"""The durable outbox: requests that could not be delivered, kept on disk until they are.

One file per request, written the way mail queues write: to a temporary file, fsync'd,
then renamed into place, so a crash leaves either a whole record or an orphaned
temporary file, never half a record. Each record is one JSON header line (what it is,
where it was going, a SHA-256 of its body) followed by the body: the JSON of an event or
the PCM of a chunk. No API key is ever written.

A process takes a record by renaming it (a lease) and deletes it only after the backend
has answered 2xx, so two processes never send the same record at once, and a process
that dies holding leases leaves them to be taken again. The folder is bounded by size
and by age; the oldest records go first, and what was dropped is counted and logged once.

Everything here is blocking file I/O: callers on an event loop run it in a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BYTES",
    "ORDER_CALL_ENDED",
    "ORDER_CALL_STARTED",
    "Lease",
    "RecordInfo",
    "Spool",
    "SpoolRecord",
    "default_spool_dir",
]

DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
ORDER_CALL_STARTED = 0
ORDER_CALL_ENDED = 10**11
"""Records of a call sort in protocol order: call-started, chunks by index, call-ended."""

_SUFFIX = ".rec"
_LEASE = ".lease-"
_TMP = ".tmp-"
_STALE_LEASE_SECS = 15 * 60
_VERSION = 1


def default_spool_dir() -> Path:
    configured = os.environ.get("ROARK_SPOOL_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("pipecat-roark", appauthor=False)) / "spool"


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    kind: str
    """"call-started", "chunk" or "call-ended"."""
    call_id: str
    base_url: str
    order: int
    body: bytes
    created_at: float = field(default_factory=time.time)

    @property
    def chunk_index(self) -> int | None:
        return self.order - 1 if self.kind == "chunk" else None

    def json_body(self) -> dict[str, Any]:
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise ValueError("an event record's body is not a JSON object")
        return value


@dataclass(frozen=True, slots=True)
class RecordInfo:
    kind: str
    call_id: str
    base_url: str
    order: int
    size: int


@dataclass(slots=True)
class Lease:
    """Records of one call taken by this process, in protocol order."""

    call_id: str
    base_url: str
    paths: list[Path]
    records: list[SpoolRecord]


class Spool:
    """A folder of undelivered requests, shared safely by several processes."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.dropped = 0
        self.torn = 0
        self._lock = threading.Lock()
        self._dropped_logged = False

    # -- writing ------------------------------------------------------------------------

    def write(self, record: SpoolRecord) -> Path:
        """Store ``record`` durably; drops the oldest records if the folder is full."""
        header = {
            "v": _VERSION,
            "kind": record.kind,
            "callId": record.call_id,
            "baseUrl": record.base_url,
            "order": record.order,
            "createdAt": record.created_at,
            "length": len(record.body),
            "sha256": hashlib.sha256(record.body).hexdigest(),
        }
        data = json.dumps(header, separators=(",", ":")).encode() + b"\n" + record.body
        with self._lock:
            self._make_room(len(data))
            folder = self.directory / _call_key(record.base_url, record.call_id)
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{record.order:012d}-{record.kind}{_SUFFIX}"
            temporary = folder / f"{_TMP}{os.getpid()}-{secrets.token_hex(6)}"
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
            _fsync_dir(folder)
        return final

    # -- taking records -----------------------------------------------------------------

    def lease_calls(self, base_url: str | None = None) -> Iterator[Lease]:
        """Take every record this process can have, one call at a time, oldest call first.

        Records of other base URLs are left alone unless ``base_url`` is None. Records too
        old to keep, and temporary files left by a process that died mid-write, are removed
        on the way (each counted, and logged once per pass).
        """
        if not self.directory.is_dir():
            return
        self._expire_and_clean()
        for folder in self._call_folders():
            lease = self._lease_folder(folder, base_url)
            if lease is not None:
                yield lease

    def done(self, path: Path) -> None:
        """The record was delivered (or rejected for good): it leaves the spool."""
        path.unlink(missing_ok=True)
        _remove_if_empty(path.parent)

    def release(self, path: Path) -> None:
        """Give a leased record back, to be taken by a later pass."""
        original = path.with_name(path.name.split(_LEASE, 1)[0])
        try:
            os.replace(path, original)
        except FileNotFoundError:
            pass

    def pending(self, base_url: str | None = None) -> int:
        """How many records wait (leased ones included)."""
        count = 0
        for folder in self._call_folders():
            for path in folder.iterdir():
                is_record = _SUFFIX in path.name and not path.name.startswith(_TMP)
                if is_record and (base_url is None or _header_base_url(path) == base_url):
                    count += 1
        return count

    def inventory(self) -> list[RecordInfo]:
        """What the spool holds, from the records' headers; nothing is taken."""
        found: list[RecordInfo] = []
        for path, _ in self._all_records():
            header = _header(path)
            if _SUFFIX not in path.name or not header:
                continue
            found.append(
                RecordInfo(
                    str(header.get("kind")),
                    str(header.get("callId")),
                    str(header.get("baseUrl")),
                    int(header.get("order", 0)),
                    _size(path),
                )
            )
        return sorted(found, key=lambda info: (info.base_url, info.call_id, info.order))

    def size(self) -> int:
        return sum(path.stat().st_size for path, _ in self._all_records())

    # -- private --------------------------------------------------------------------------

    def _call_folders(self) -> list[Path]:
        try:
            folders = [p for p in self.directory.iterdir() if p.is_dir()]
        except FileNotFoundError:
            return []
        return sorted(folders, key=_oldest_mtime)

    def _lease_folder(self, folder: Path, base_url: str | None) -> Lease | None:
        token = f"{_LEASE}{os.getpid()}-{secrets.token_hex(4)}"
        paths: list[Path] = []
        records: list[SpoolRecord] = []
        for path in sorted(folder.iterdir()):
            name = path.name
            if name.startswith(_TMP) or _SUFFIX not in name:
                continue
            if _LEASE in name and not _lease_is_stale(path):
                continue  # another live process is sending it
            leased = folder / (name.split(_LEASE, 1)[0] + token)
            try:
                os.replace(path, leased)
                os.utime(leased)  # the lease's age, for telling a live lease from a stale one
            except FileNotFoundError:
                continue  # taken by another process a moment ago
            record = self._read(leased)
            if record is None or (base_url is not None and record.base_url != base_url):
                if record is not None:
                    self.release(leased)
                continue
            paths.append(leased)
            records.append(record)
        if not records:
            return None
        return Lease(records[0].call_id, records[0].base_url, paths, records)

    def _read(self, path: Path) -> SpoolRecord | None:
        try:
            raw = path.read_bytes()
            header_line, _, body = raw.partition(b"\n")
            header = json.loads(header_line)
            if (
                header.get("v") != _VERSION
                or len(body) != header["length"]
                or hashlib.sha256(body).hexdigest() != header["sha256"]
            ):
                raise ValueError("length or checksum mismatch")
            return SpoolRecord(
                kind=header["kind"],
                call_id=header["callId"],
                base_url=header["baseUrl"],
                order=int(header["order"]),
                body=body,
                created_at=float(header["createdAt"]),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            self.torn += 1
            logger.warning(f"pipecat-roark: skipping a damaged spool record {path.name}: {exc}")
            corrupt = self.directory / "corrupt"
            corrupt.mkdir(parents=True, exist_ok=True)
            os.replace(path, corrupt / f"{path.parent.name}-{path.name}")
            return None

    def _expire_and_clean(self) -> None:
        now = time.time()
        expired = torn = 0
        for folder in self._call_folders():
            for path in list(folder.iterdir()):
                name = path.name
                if name.startswith(_TMP):
                    if not _pid_alive(_pid_of(name, _TMP)):
                        path.unlink(missing_ok=True)
                        torn += 1
                elif _SUFFIX in name and now - _created_at(path) > self.max_age:
                    path.unlink(missing_ok=True)
                    expired += 1
            _remove_if_empty(folder)
        if torn:
            self.torn += torn
            logger.warning(
                f"pipecat-roark: skipped {torn} spool record(s) left half-written by a process "
                "that stopped while writing them"
            )
        if expired:
            self.dropped += expired
            logger.warning(
                f"pipecat-roark: dropped {expired} spool record(s) older than "
                f"{self.max_age / 86400:g} days"
            )

    def _all_records(self) -> list[tuple[Path, float]]:
        found: list[tuple[Path, float]] = []
        for folder in self._call_folders():
            for path in folder.iterdir():
                if not path.name.startswith(_TMP):
                    try:
                        found.append((path, path.stat().st_mtime))
                    except FileNotFoundError:
                        pass
        return found

    def _make_room(self, incoming: int) -> None:
        records = sorted(self._all_records(), key=lambda item: item[1])
        total = sum(_size(path) for path, _ in records)
        dropped = 0
        while records and total + incoming > self.max_bytes:
            path, _ = records.pop(0)
            total -= _size(path)
            path.unlink(missing_ok=True)
            _remove_if_empty(path.parent)
            dropped += 1
        if dropped:
            self.dropped += dropped
            if not self._dropped_logged:
                self._dropped_logged = True
                logger.warning(
                    f"pipecat-roark: the spool at {self.directory} is full "
                    f"({self.max_bytes} bytes); dropping the oldest records to keep new calls "
                    "(counted in delivery stats, logged once)"
                )


def _call_key(base_url: str, call_id: str) -> str:
    return hashlib.sha256(f"{base_url}\0{call_id}".encode()).hexdigest()[:32]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _oldest_mtime(folder: Path) -> float:
    try:
        return min((p.stat().st_mtime for p in folder.iterdir()), default=0.0)
    except FileNotFoundError:
        return 0.0


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_of(name: str, marker: str) -> int:
    try:
        return int(name.split(marker, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return -1


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lease_is_stale(path: Path) -> bool:
    if not _pid_alive(_pid_of(path.name, _LEASE)):
        return True
    try:
        return time.time() - path.stat().st_mtime > _STALE_LEASE_SECS
    except FileNotFoundError:
        return False


def _header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.readline())
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def _header_base_url(path: Path) -> str | None:
    value = _header(path).get("baseUrl")
    return value if isinstance(value, str) else None


def _created_at(path: Path) -> float:
    value = _header(path).get("createdAt")
    return float(value) if isinstance(value, (int, float)) else _mtime(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
