"""Fixtures: the server on a real socket, two projects' keys, and headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright without any browser
download. When it is missing the browser tests skip, unless ROARK_REQUIRE_SERVICES=1 (set
by scripts/test), which turns the skip into a failure. Browser tests share one event loop
for the session (``loop_scope="session"``) so one browser serves them all.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

try:
    import fastapi  # noqa: F401
    import jinja2  # noqa: F401
except ImportError:  # the [server] extra is not installed in this environment
    collect_ignore_glob = ["test_*.py"]
else:
    from tests.server.conftest import (  # noqa: F401
        base_settings,
        postgres,
        s3,
        server,
        settings,
        sqlite_server,
        sqlite_settings,
    )

    from .live import LiveServer, Protocol
    from .showcase import showcase

REQUIRE_SERVICES = os.environ.get("ROARK_REQUIRE_SERVICES") == "1"
CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root, on a machine without a network: no sandbox, no background requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]
# scripts/screenshots points this at docs/img; without it, tests take no screenshots.
SCREENSHOTS = os.environ.get("ROARK_SCREENSHOTS_DIR")


def unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ROARK_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


async def screenshot(page: Any, name: str, **options: Any) -> None:
    """Save ``name`` (a PNG) into $ROARK_SCREENSHOTS_DIR when it is set; else do nothing."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / name), **options)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the browser tests; each test makes its own calls."""
    server = LiveServer(base_settings(tmp_path_factory.mktemp("dashboard") / "data")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def acme(live: LiveServer) -> Iterator[Protocol]:
    client = Protocol(live.url, live.key("acme"))
    yield client
    client.close()


@pytest.fixture(scope="session")
def globex(live: LiveServer) -> Iterator[Protocol]:
    client = Protocol(live.url, live.key("globex"))
    yield client
    client.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright is not installed (the [dev] extra)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Any, live: LiveServer) -> AsyncIterator[Any]:
    """A fresh browser profile (no cookies) per test, with relative URLs on the server."""
    fresh = await browser.new_context(base_url=live.url, viewport={"width": 1440, "height": 900})
    yield fresh
    await fresh.close()


async def logged_in(context: Any, project: Protocol, next_path: str = "/calls") -> Any:
    """A new tab of ``context`` logged in to ``project`` through a login link.

    Script errors on the page are collected in ``tab.errors``.
    """
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    answer = await tab.goto(project.login_link(next_path))
    assert answer is not None
    assert answer.ok
    tab.errors = errors
    return tab


def newest_support_call(calls: list[Any]) -> Any:
    """The showcase's newest support-bot call: a tool call, an interruption, both lanes."""
    return max((c for c in calls if c.agent == "support-bot"), key=lambda c: c.started)


async def support_call_page(
    context: Any, showcase: tuple[Protocol, list[Any]], viewport: dict[str, int] | None = None
) -> Any:
    """A tab on that call's page, drawn (at ``viewport`` when given)."""
    client, calls = showcase
    tab = await logged_in(context, client, f"/calls/{newest_support_call(calls).call_id}")
    if viewport is not None:
        await tab.set_viewport_size(viewport)
        await tab.reload()
    await tab.wait_for_selector("#call[data-ready='1']")
    return tab


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: Any, acme: Protocol) -> Any:
    """A tab logged in to project ``acme``."""
    return await logged_in(context, acme)


@pytest.fixture(scope="session")
def showcase_project(live: LiveServer) -> Iterator[tuple[Protocol, list[Any]]]:
    """Project ``bistro``: the believable calls of two agents over the last week."""
    client = Protocol(live.url, live.key("bistro"))
    calls = showcase(client)
    for call in calls:
        client.wait_stitched(call.call_id)
    yield client, calls
    client.close()
