"""The durable outbox: requests that could not be delivered, kept on disk until they are.

One folder per call, named by when the call was first spooled (so a sorted listing is
oldest call first, with no file opened) and a hash of its backend and id. In it, one file
per request, written the way mail queues write: to a temporary file, fsync'd, then
renamed into place, so a crash leaves either a whole record or a temporary file, never
half a record. Each record is one JSON header line (what it is, where it was going, a
SHA-256 of its body) followed by the body: the JSON of an event or the PCM of a chunk. No
API key is ever written.

A call is owned whole by whoever holds its lock (``call_lock.py``): the observer writing
it, or one replay sending it, in protocol order, deleting each record after its 2xx. Only
the owner writes, reads or deletes anything in the folder, so a temporary file found by
the owner was left by a writer that died (no live writer can be writing it) and is
removed; nothing else is ever deleted on a guess.

What a write or a replay costs does not depend on how much the spool holds: a write
touches its own call's folder; the size bound is checked against a running total that is
recounted only after as many writes as the last count found (amortized O(1)); a replay
pass lists the call folders' names once, then opens only the calls it sends. The folder
is bounded by size and by age; the oldest records go first, and what was dropped is
counted and logged once.

Everything here is blocking file I/O: callers on an event loop run it in a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from .call_lock import LOCK_NAME, CallLock, LockHolder, holder_of

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BYTES",
    "ORDER_CALL_ENDED",
    "ORDER_CALL_STARTED",
    "BusyCall",
    "CallWriter",
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
_TMP = ".tmp-"
_VERSION = 1
_CALL_FOLDER = re.compile(r"^\d{13}-[0-9a-f]{32}$")
_EARLIER_FOLDER = re.compile(r"^[0-9a-f]{32}$")
"""A call folder of the layout before call locks (no age in its name, leases by rename):
still read, so that an upgrade loses nothing it had spooled."""
_EARLIER_LEASE = ".lease-"
_WRITER_WAIT_SECS = 5.0
"""A writer waits this long at most for a replay that is looking at its brand-new folder."""
_ROOM_AFTER_DROP = 0.9
"""Dropping for room goes down to this share of the cap, so the next writes do not drop."""
_RECENT_CALLS = 256


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
    started: bool = True
    """The call has a call-started (delivered, or earlier in the spool). Records from a
    spool written before this mark was kept read as False: nobody knows."""

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


@dataclass(frozen=True, slots=True)
class BusyCall:
    """A call another owner holds right now: an observer still writing it, or a replay."""

    name: str
    records: int
    holder: LockHolder | None

    def age(self, now: float | None = None) -> float | None:
        """Seconds since its owner took it, if the owner said."""
        if self.holder is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.holder.since)


class Lease:
    """One call, owned by this process until ``close()``: its records in protocol order."""

    def __init__(
        self, lock: CallLock, paths: list[Path], records: list[SpoolRecord], spool: Spool
    ) -> None:
        self.call_id = records[0].call_id
        self.base_url = records[0].base_url
        self.paths = paths
        self.records = records
        self._lock = lock
        self._spool = spool

    @property
    def orphan(self) -> bool:
        """Chunks of a call that never started: no call-started in the spool, and no record
        says one was delivered. Sending them would make a call the backend never saw
        start; they stay until ``pipecat-roark replay --send-orphans``."""
        kinds = {record.kind for record in self.records}
        return (
            "chunk" in kinds
            and "call-started" not in kinds
            and not any(record.started for record in self.records)
        )

    def done(self, path: Path) -> None:
        """The record was delivered (or rejected for good): it leaves the spool."""
        size = _size(path)
        path.unlink(missing_ok=True)
        self._spool.forget_bytes(size)

    def close(self) -> None:
        """Give the call back: what is left stays for a later pass; an empty call goes."""
        self._lock.remove_call()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class CallWriter:
    """Writes one call's records while holding its lock, so no replay takes the call half
    written; ``close()`` lets replays have it."""

    def __init__(self, spool: Spool, folder: Path) -> None:
        self.folder = folder
        self._spool = spool
        self._lock = CallLock(folder)
        self._mutex = threading.Lock()

    def write(self, record: SpoolRecord) -> Path:
        with self._mutex:
            if not self._lock.held and not self._lock.acquire(create=True, wait=_WRITER_WAIT_SECS):
                raise TimeoutError(f"the call's folder {self.folder.name} stayed locked")
            return self._spool.write_into(self.folder, record)

    def close(self) -> None:
        with self._mutex:
            self._lock.release()


class Spool:
    """A folder of undelivered requests, shared safely by processes and containers."""

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
        self._bytes: int | None = None
        self._records_at_count = 0
        self._writes_since_count = 0
        self._recent: OrderedDict[str, str] = OrderedDict()

    # -- writing ------------------------------------------------------------------------

    def open_call(self, base_url: str, call_id: str) -> CallWriter:
        """A writer for one call's records (its folder is made on the first write). A call
        is written by one writer, so the spool is not searched for an earlier folder of it
        (that would cost a listing of every call)."""
        return CallWriter(self, self._folder_for(base_url, call_id, search=False))

    def write(self, record: SpoolRecord) -> Path:
        """Store one record durably (taking and releasing its call's lock), in the folder
        the call already has, if any."""
        folder = self._folder_for(record.base_url, record.call_id, search=True)
        writer = CallWriter(self, folder)
        try:
            return writer.write(record)
        finally:
            writer.close()

    def write_into(self, folder: Path, record: SpoolRecord) -> Path:
        """Store ``record`` in ``folder``, whose lock the caller holds; drops the oldest
        records of other calls if the spool is full."""
        header = {
            "v": _VERSION,
            "kind": record.kind,
            "callId": record.call_id,
            "baseUrl": record.base_url,
            "order": record.order,
            "createdAt": record.created_at,
            "length": len(record.body),
            "sha256": hashlib.sha256(record.body).hexdigest(),
            "started": record.started,
        }
        data = json.dumps(header, separators=(",", ":")).encode() + b"\n" + record.body
        with self._lock:
            self._make_room(len(data))
            self._bytes = (self._bytes or 0) + len(data)
            self._writes_since_count += 1
        final = folder / f"{record.order:012d}-{record.kind}{_SUFFIX}"
        temporary = folder / f"{_TMP}{secrets.token_hex(8)}"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        _fsync_dir(folder)
        return final

    def forget_bytes(self, size: int) -> None:
        with self._lock:
            if self._bytes is not None:
                self._bytes = max(0, self._bytes - size)

    # -- taking calls -------------------------------------------------------------------

    def call_names(self) -> list[str]:
        """Every call folder, oldest first: one directory listing, no file opened."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        earlier = sorted(name for name in names if _EARLIER_FOLDER.match(name))
        return earlier + sorted(name for name in names if _CALL_FOLDER.match(name))

    def lease(
        self, name: str, *, base_url: str | None = None, wait: float = 0.0
    ) -> Lease | BusyCall | None:
        """Take call ``name`` if no one else holds it (waiting up to ``wait`` seconds).

        None when the call is gone, has nothing left to send, or belongs to another
        backend than ``base_url``. Records too old to keep, damaged records and temporary
        files left by a writer that died are removed on the way (counted and logged).
        """
        folder = self.directory / name
        lock = CallLock(folder)
        earlier = _EARLIER_FOLDER.match(name) is not None and folder.is_dir()
        if not lock.acquire(create=earlier, wait=wait):
            if not folder.is_dir():
                return None
            if not (folder / LOCK_NAME).exists() and not os.listdir(folder):
                _remove_empty(folder)  # its owner stopped between removing its lock and it
                return None
            return BusyCall(name, _count_records(folder), holder_of(folder))
        paths, records = self._read_call(folder)
        if not records or (base_url is not None and records[0].base_url != base_url):
            if records:
                lock.release()
            else:
                lock.remove_call()
            return None
        return Lease(lock, paths, records, self)

    def lease_calls(self, base_url: str | None = None) -> list[Lease]:
        """Every call this process can take now (each held until its lease is closed)."""
        leases: list[Lease] = []
        for name in self.call_names():
            taken = self.lease(name, base_url=base_url)
            if isinstance(taken, Lease):
                leases.append(taken)
        return leases

    # -- looking ------------------------------------------------------------------------

    def pending(self, base_url: str | None = None) -> int:
        """How many records wait, held by someone or not (reads every call folder)."""
        count = 0
        for name in self.call_names():
            folder = self.directory / name
            records = _record_paths(folder)
            if records and (base_url is None or _header(records[0]).get("baseUrl") == base_url):
                count += len(records)
        return count

    def count_records(self, name: str) -> int:
        """How many records call folder ``name`` holds."""
        return _count_records(self.directory / name)

    def busy(self) -> list[BusyCall]:
        """The calls another owner holds right now (tries each call's lock once)."""
        found: list[BusyCall] = []
        for name in self.call_names():
            folder = self.directory / name
            lock = CallLock(folder)
            if lock.acquire(create=False):
                lock.release()
            elif folder.is_dir():
                found.append(BusyCall(name, _count_records(folder), holder_of(folder)))
        return found

    def inventory(self) -> list[RecordInfo]:
        """What the spool holds, from the records' headers; nothing is taken."""
        found: list[RecordInfo] = []
        for name in self.call_names():
            for path in _record_paths(self.directory / name):
                header = _header(path)
                if header:
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
        return sum(_size(path) for path, _ in self._all_records())

    # -- private --------------------------------------------------------------------------

    def _folder_for(self, base_url: str, call_id: str, *, search: bool) -> Path:
        key = hashlib.sha256(f"{base_url}\0{call_id}".encode()).hexdigest()[:32]
        name = self._recent.get(key)
        if name is None and search:
            suffix = "-" + key
            name = next((n for n in self.call_names() if n.endswith(suffix)), None)
        if name is None:
            name = f"{int(time.time() * 1000):013d}-{key}"
        self._recent[key] = name
        self._recent.move_to_end(key)
        while len(self._recent) > _RECENT_CALLS:
            self._recent.popitem(last=False)
        return self.directory / name

    def _read_call(self, folder: Path) -> tuple[list[Path], list[SpoolRecord]]:
        """The call's records in protocol order; the caller holds its lock."""
        now = time.time()
        paths: list[Path] = []
        records: list[SpoolRecord] = []
        torn = expired = 0
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return paths, records
        for name in names:
            path = folder / name
            if name.startswith(_TMP):
                # Only the call's owner writes here, and the owner is us: its writer died.
                path.unlink(missing_ok=True)
                torn += 1
                continue
            if _SUFFIX + _EARLIER_LEASE in name:  # leased by rename before an upgrade
                name = name.split(_EARLIER_LEASE, 1)[0]
                os.replace(path, folder / name)
                path = folder / name
            if not name.endswith(_SUFFIX):
                continue
            record = self._read(path)
            if record is None:
                continue
            if now - record.created_at > self.max_age:
                path.unlink(missing_ok=True)
                expired += 1
                continue
            paths.append(path)
            records.append(record)
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
        return paths, records

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
                started=header.get("started") is True,
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

    def _all_records(self) -> list[tuple[Path, float]]:
        found: list[tuple[Path, float]] = []
        for name in self.call_names():
            for path in _record_paths(self.directory / name):
                try:
                    found.append((path, path.stat().st_mtime))
                except FileNotFoundError:
                    pass
        return found

    def _make_room(self, incoming: int) -> None:
        """Keep the spool under its cap, recounting only when the running total may be
        stale: after as many writes as the last count found, or near the cap."""
        stale = self._writes_since_count >= max(64, self._records_at_count)
        if self._bytes is None or stale or self._bytes + incoming > self.max_bytes:
            records = self._all_records()
            self._bytes = sum(_size(path) for path, _ in records)
            self._records_at_count = len(records)
            self._writes_since_count = 0
            if self._bytes + incoming > self.max_bytes:
                self._drop_oldest(records, incoming)

    def _drop_oldest(self, records: list[tuple[Path, float]], incoming: int) -> None:
        target = int(self.max_bytes * _ROOM_AFTER_DROP)
        locks: dict[Path, CallLock | None] = {}
        dropped = 0
        total = self._bytes or 0
        try:
            for path, _ in sorted(records, key=lambda item: item[1]):
                if total + incoming <= target:
                    break
                lock = locks.get(path.parent)
                if path.parent not in locks:
                    lock = CallLock(path.parent)
                    locks[path.parent] = lock if lock.acquire(create=False) else None
                    lock = locks[path.parent]
                if lock is None:
                    continue  # its owner is writing or sending it
                total -= _size(path)
                path.unlink(missing_ok=True)
                dropped += 1
        finally:
            for lock in locks.values():
                if lock is not None:
                    lock.remove_call()
        self._bytes = total
        if dropped:
            self.dropped += dropped
            if not self._dropped_logged:
                self._dropped_logged = True
                logger.warning(
                    f"pipecat-roark: the spool at {self.directory} is full "
                    f"({self.max_bytes} bytes); dropping the oldest records to keep new calls "
                    "(counted in delivery stats, logged once)"
                )


def _record_paths(folder: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    return [folder / name for name in names if name.endswith(_SUFFIX)]


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _count_records(folder: Path) -> int:
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(_SUFFIX))
    except FileNotFoundError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


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


def _header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.readline())
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}
