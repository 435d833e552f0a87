"""One settings object per server process: arguments, then ``ROARK_SERVER_*``, then defaults.

Standard library only, so the CLI can build its parsers on the base install.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ENV_PREFIX", "KEEP_ALIVE_SECS", "ServerSettings", "default_data_dir"]

ENV_PREFIX = "ROARK_SERVER_"

KEEP_ALIVE_SECS = 75
"""How long an idle client connection stays open. Longer than clients keep theirs (httpx
5 s, aiohttp 15 s): with uvicorn's default of 5 s a client could send its next request on
a connection the server was closing at that moment, and get a read error instead of an
answer. 75 s is nginx's default, for the same reason."""


def default_data_dir() -> Path:
    """The per-user data folder that holds the SQLite file and the blobs by default."""
    import platformdirs

    return Path(platformdirs.user_data_dir("pipecat-roark")) / "server"


@dataclass(frozen=True)
class ServerSettings:
    """Everything a server process is configured with.

    Each field is also read from ``ROARK_SERVER_<FIELD NAME IN UPPER CASE>``. Durations
    are in seconds.
    """

    host: str = "127.0.0.1"
    port: int = 8787
    data_dir: Path | None = None
    database_url: str | None = None
    """``sqlite:///path`` or ``postgresql://user@host:port/db``; default: SQLite in data_dir."""
    blob_url: str | None = None
    """``file:///path`` (or a plain path) or ``s3://bucket/prefix``; default: data_dir/blobs."""
    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible store; credentials come from the usual AWS variables."""
    s3_public_endpoint_url: str | None = None
    """Where clients reach the store, if not at s3_endpoint_url: presigned URLs name this host
    (SigV4 signs it), while the server's own requests keep going to s3_endpoint_url."""
    s3_region: str = "us-east-1"
    public_url: str | None = None
    """Base URL clients reach this server at (for upload URLs); default: the request's own."""
    retention_days: float | None = None
    secret_key: str | None = None
    """Signs upload and recording URLs, sessions and login links; default: a 0600 file
    ``url-signing-key`` beside the SQLite database (with PostgreSQL, in data_dir), made once.
    Never kept in the database. Replicas on several machines must share it."""
    inactivity_timeout: float = 3600.0
    """A call with no request for this long is finalised as if call-ended had arrived."""
    upload_url_ttl: int = 900
    recording_url_ttl: int = 3600
    stitch_lease: float = 60.0
    """How long a claimed stitch job stays with its replica before another may take it."""
    worker_poll_interval: float = 1.0
    maintenance_interval: float = 60.0
    """How often the inactivity finaliser and the retention sweep run."""
    trace_orphan_ttl: float = 3600.0
    """Spans whose trace names no stored call after this long are dropped (and counted)."""
    retry_after: int = 5
    """``Retry-After`` seconds sent with a 503 when storage is unavailable."""
    log_json: bool = False
    run_workers: bool = True
    """Whether this process stitches and finalises (off for a read-only replica)."""
    no_auth: bool = False
    """Dashboard without a login, for local development: only with host 127.0.0.1."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Peers whose ``X-Forwarded-Proto``/``-For`` are believed (uvicorn's meaning): a
    comma-separated list of addresses and CIDRs, or ``*``. Set it to the load balancer's."""

    def __post_init__(self) -> None:
        if self.no_auth and self.host != "127.0.0.1":
            raise ValueError(f"--no-auth is only allowed with --host 127.0.0.1 (not {self.host!r})")
        _check_deploy_fields(self)

    @classmethod
    def from_sources(
        cls,
        arguments: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ServerSettings:
        """Arguments that are not None win, then the environment, then the defaults."""
        environ = os.environ if environ is None else environ
        arguments = arguments or {}
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            given = arguments.get(spec.name)
            if given is not None:
                values[spec.name] = _coerce(spec.name, spec.type, given)
                continue
            raw = environ.get(ENV_PREFIX + spec.name.upper())
            if raw not in (None, ""):
                values[spec.name] = _coerce(spec.name, spec.type, raw)
        return cls(**values)

    @property
    def resolved_data_dir(self) -> Path:
        """Absolute, so a relative ``--data-dir`` names the same folder in every URL built
        from it (a file URI cannot hold a relative path)."""
        data_dir = self.data_dir if self.data_dir is not None else default_data_dir()
        return data_dir.absolute()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'pipecat-roark.sqlite3'}"

    @property
    def resolved_s3_public_endpoint_url(self) -> str | None:
        return self.s3_public_endpoint_url or self.s3_endpoint_url

    @property
    def resolved_blob_url(self) -> str:
        if self.blob_url:
            return self.blob_url
        return (self.resolved_data_dir / "blobs").as_uri()

    def replace(self, **changes: Any) -> ServerSettings:
        return dataclasses.replace(self, **changes)


def _check_deploy_fields(settings: ServerSettings) -> None:
    """Refuse a typo at start rather than ignore forwarded headers or sign unusable URLs."""
    for entry in settings.forwarded_allow_ips.split(","):
        entry = entry.strip()
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"forwarded_allow_ips: {entry!r} is not an IP address, a CIDR or '*'"
            ) from None
    for name in ("s3_endpoint_url", "s3_public_endpoint_url"):
        value = getattr(settings, name)
        if value is None:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: {value!r} is not an http(s)://host[:port] URL")


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Turn a CLI or environment string into the field's type."""
    kind = str(annotation)
    try:
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        if "Path" in kind:
            return Path(value).expanduser()
        if kind.startswith("int"):
            return int(value)
        if "float" in kind:
            return float(value)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: {exc}") from exc
    return value
