"""``pipecat-roark serve``, ``keys``, ``rebuild-latency``, ``rebuild-counts`` and
``rebuild-search``: standard library only at import time."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

__all__ = ["add_parsers"]

_SERVE_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("--host", "host", str, "address to listen on (default 127.0.0.1)"),
    ("--port", "port", int, "port to listen on (default 8787)"),
    (
        "--data-dir",
        "data_dir",
        str,
        "folder for the SQLite file and blobs (default: user data dir)",
    ),
    ("--database-url", "database_url", str, "sqlite:///path or postgresql://user@host:port/db"),
    ("--blob-url", "blob_url", str, "file:///path or s3://bucket/prefix"),
    ("--s3-endpoint-url", "s3_endpoint_url", str, "endpoint of an S3-compatible store"),
    (
        "--s3-public-endpoint-url",
        "s3_public_endpoint_url",
        str,
        "where clients reach the store, if not at --s3-endpoint-url (presigned URLs name it)",
    ),
    (
        "--forwarded-allow-ips",
        "forwarded_allow_ips",
        str,
        "addresses or CIDRs (comma-separated), or *, whose X-Forwarded-* headers are "
        "believed (default 127.0.0.1)",
    ),
    ("--public-url", "public_url", str, "base URL clients reach this server at"),
    ("--retention-days", "retention_days", float, "delete calls older than this many days"),
)


def add_parsers(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the self-hosted Roark-compatible backend",
        description="Run the backend. Every option is also read from ROARK_SERVER_<NAME> "
        "(e.g. ROARK_SERVER_DATABASE_URL); arguments win over the environment.",
    )
    _add_storage_options(serve, all_options=True)
    serve.add_argument("--log-json", action="store_true", default=None, help="log JSON lines")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        default=None,
        help="dashboard without a login, for local development (only with --host 127.0.0.1)",
    )
    serve.set_defaults(handler=_serve)

    keys = subparsers.add_parser("keys", help="manage the backend's API keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = key_commands.add_parser("create", help="create a project's key and print it once")
    create.add_argument("--project", required=True, help="project name (created if new)")
    _add_storage_options(create, all_options=False)
    create.set_defaults(handler=_keys_create)
    listing = key_commands.add_parser("list", help="list projects and key prefixes")
    _add_storage_options(listing, all_options=False)
    listing.set_defaults(handler=_keys_list)

    rebuild = subparsers.add_parser(
        "rebuild-latency",
        help="rebuild the latency index (each reply's parts and their daily rollups)",
        description="Make the latency index again from the calls: after writing calls straight "
        "into the database, or if the index is in doubt. One transaction: run it with the "
        "server stopped (a call that ends meanwhile may be left out; run it again).",
    )
    _add_storage_options(rebuild, all_options=False)
    rebuild.set_defaults(handler=_rebuild_latency)

    counts = subparsers.add_parser(
        "rebuild-counts",
        help="count each agent's and each prompt revision's calls again, sum each agent's days "
        "again, and count the failed tool calls of calls without the figure (the agents pages "
        "and the tool-error filter read them)",
        description="Count each agent's and each prompt revision's calls again from the calls, "
        "sum each agent's ended calls per day again (its trends), and count each ended call's "
        "failed tool calls where it has no such figure: after writing calls straight into the "
        "database, after a rolling upgrade, or if a count is in doubt. One transaction: run it "
        "with the server stopped (a call started meanwhile may be missed; run it again).",
    )
    _add_storage_options(counts, all_options=False)
    counts.set_defaults(handler=_rebuild_counts)

    search = subparsers.add_parser(
        "rebuild-search",
        help="rebuild the search index (each ended call's words, and how many calls hold each)",
        description="Make the search index again from the calls: after writing calls "
        "straight into the database, or if the index is in doubt. One transaction: run it "
        "with the server stopped (a call that ends meanwhile may be left out; run it again).",
    )
    _add_storage_options(search, all_options=False)
    search.set_defaults(handler=_rebuild_search)


def _add_storage_options(parser: argparse.ArgumentParser, *, all_options: bool) -> None:
    for flag, dest, kind, text in _SERVE_OPTIONS:
        if all_options or dest in ("data_dir", "database_url"):
            parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)


def _settings(args: argparse.Namespace) -> Any:
    try:
        from .settings import ServerSettings
    except ImportError as exc:  # pragma: no cover - settings is standard library only
        raise _missing(exc) from exc
    arguments = {dest: getattr(args, dest, None) for _, dest, _, _ in _SERVE_OPTIONS}
    arguments["log_json"] = getattr(args, "log_json", None)
    arguments["no_auth"] = getattr(args, "no_auth", None)
    try:
        return ServerSettings.from_sources(arguments)
    except ValueError as exc:
        raise SystemExit(f"pipecat-roark {args.command}: {exc}") from None


def _missing(exc: ImportError) -> Exception:
    from ..cli import MissingExtraError

    return MissingExtraError("server", exc.name or "a server dependency")


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        import uvicorn

        from .app import create_app
        from .logs import configure_logging
        from .settings import KEEP_ALIVE_SECS
    except ImportError as exc:
        raise _missing(exc) from exc
    configure_logging(json_lines=settings.log_json)
    if settings.no_auth:
        from loguru import logger

        logger.warning(
            "--no-auth: the dashboard opens without a login for every request from 127.0.0.1, "
            "including other users and programs on this machine; use it for local development only"
        )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level="info",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=KEEP_ALIVE_SECS,
    )
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        from .embed import ensure_project_key
    except ImportError as exc:
        raise _missing(exc) from exc
    _quiet_logs()
    key = asyncio.run(ensure_project_key(settings, args.project))
    print(key)
    print(
        f"(project {args.project!r}; the key is shown only now, only its hash is stored)",
        file=sys.stderr,
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    try:
        from .auth import list_keys
    except ImportError as exc:
        raise _missing(exc) from exc
    for info in _in_transaction(args, list_keys):
        print(f"{info.project}\t{info.prefix}...\t{info.created_at.isoformat()}")
    return 0


def _rebuild_latency(args: argparse.Namespace) -> int:
    try:
        from .reply_index import rebuild
    except ImportError as exc:
        raise _missing(exc) from exc
    return _rebuild_index(args, rebuild, "latency index")


def _rebuild_counts(args: argparse.Namespace) -> int:
    try:
        from .agent_counts import forget_changes, rebuild, rebuild_revisions
        from .agent_days import rebuild as sum_days
        from .tool_failures import fill
    except ImportError as exc:
        raise _missing(exc) from exc

    def progress(done: int, total: int) -> None:
        print(f"\rcounting failed tool calls: {done}/{total} calls", end="", file=sys.stderr)

    def count(connection: Any) -> tuple[int, int]:
        forget_changes(connection)  # the calls are counted whole
        agents = rebuild(connection)
        rebuild_revisions(connection)
        sum_days(connection)
        failed = fill(connection, progress)
        print(file=sys.stderr)
        return agents, failed

    async def _rebuild(connection: Any) -> tuple[int, int]:
        return tuple(await connection.run_sync(count))  # type: ignore[return-value]

    agents, failed = _in_transaction(args, _rebuild)
    print(f"the call counts of {agents} agents were counted again")
    print(f"{failed} calls without the figure had a failed tool call")
    return 0


def _rebuild_search(args: argparse.Namespace) -> int:
    try:
        from .search_counts import rebuild as count_words
        from .search_index import rebuild
        from .search_sets import rebuild as make_sets
    except ImportError as exc:
        raise _missing(exc) from exc

    def index_and_count(connection: Any, progress: Any) -> int:
        calls = rebuild(connection, progress)
        print(file=sys.stderr)
        count_words(connection, lambda done, total: progress(done, total, "words of"))
        print(file=sys.stderr)
        make_sets(connection, lambda done, total: progress(done, total, "frequent words' calls in"))
        return calls

    return _rebuild_index(args, index_and_count, "search index")


def _rebuild_index(args: argparse.Namespace, rebuild: Any, name: str) -> int:
    """``rebuild(connection, progress)`` in one transaction, its progress on stderr."""

    def progress(done: int, total: int, what: str = "") -> None:
        doing = f"counting the {what} the" if what else "rebuilding the"
        print(f"\r{doing} {name}: {done}/{total} calls", end="", file=sys.stderr)

    async def _rebuild(connection: Any) -> int:
        return int(await connection.run_sync(rebuild, progress))

    calls = _in_transaction(args, _rebuild)
    print(file=sys.stderr)
    print(f"the {name} was rebuilt from {calls} ended calls")
    return 0


def _in_transaction(args: argparse.Namespace, work: Any) -> Any:
    """``await work(connection)`` on the database the arguments name, in one transaction,
    with only warnings and errors logged beside the command's output."""
    settings = _settings(args)
    try:
        from .database import open_database
    except ImportError as exc:
        raise _missing(exc) from exc
    _quiet_logs()

    async def _run() -> Any:
        async with (
            open_database(settings.resolved_database_url) as engine,
            engine.begin() as connection,
        ):
            return await work(connection)

    return asyncio.run(_run())


def _quiet_logs() -> None:
    """A key command's output is the key or the list: only warnings and errors beside it."""
    from .logs import configure_logging

    configure_logging(json_lines=False, level="WARNING")
