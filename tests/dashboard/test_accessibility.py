"""axe-core (from npm, injected into the page) finds no serious or critical violation on any
page, in the light theme or the dark one: contrast, names, labels, landmarks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from .conftest import logged_in, newest_support_call, unavailable
from .live import LiveServer, Protocol

pytestmark = pytest.mark.asyncio(loop_scope="session")

AXE_PACKAGE = "axe-core@4"
# Every rule axe runs by default, plus "an accessible name contains the visible text"
# (experimental in axe, so off unless asked for).
AXE_RUN = """async () => (await axe.run(document, {
    resultTypes: ['violations'],
    rules: {'label-content-name-mismatch': {enabled: true}},
})).violations"""


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe.min.js, installed from npm once into a cache folder outside the repository."""
    folder = Path(os.environ.get("ROARK_AXE_DIR") or Path(tempfile.gettempdir()) / "roark-axe")
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            unavailable("npm not found (apt-get install npm): axe-core comes from npm")
        assert npm is not None
        folder.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), AXE_PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if installed.returncode != 0 or not script.exists():
            unavailable(f"npm could not install axe-core: {installed.stderr[-500:]}")
    return script.read_text()


@pytest_asyncio.fixture(loop_scope="session")
async def open_context(browser: Any, live: LiveServer) -> AsyncIterator[Any]:
    """A profile whose pages accept the injected axe script (the dashboard's CSP would not)."""
    fresh = await browser.new_context(
        base_url=live.url, viewport={"width": 1280, "height": 800}, bypass_csp=True
    )
    yield fresh
    await fresh.close()


async def _violations(page: Any, axe: str) -> list[str]:
    await page.add_script_tag(content=axe)
    found: list[dict[str, Any]] = await page.evaluate(AXE_RUN)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:4]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_no_serious_violation_on_any_page(
    open_context: Any,
    showcase_project: tuple[Protocol, list[Any]],
    axe_source: str,
    theme: str,
) -> None:
    client, calls = showcase_project
    support = newest_support_call(calls)
    agent = client.get("/v1/agent")["data"][0]["id"]
    page = await logged_in(open_context, client)
    await page.evaluate("(t) => localStorage.setItem('pipecat-roark-theme', t)", theme)
    problems: dict[str, list[str]] = {}
    for path in (
        "/calls",
        "/calls?interrupted=1&sort=latency&order=asc",
        f"/calls/{support.call_id}",
        "/agents",
        f"/agents/{agent}?diff_from=1&diff_to=2",
        "/calls/no-such-call",
    ):
        await page.goto(path)
        assert await page.get_attribute("html", "data-theme") == theme
        if path.startswith(f"/calls/{support.call_id}"):
            await page.wait_for_selector("#call[data-ready='1']")
            await page.click("#meta summary")
            await page.click("details.services summary")
            await page.click("#turn-3 button.seek")  # a current turn, highlighted
            await page.evaluate("document.getElementById('player').pause()")
        problems[path] = await _violations(page, axe_source)
    await open_context.clear_cookies()
    await page.goto("/login")
    problems["/login"] = await _violations(page, axe_source)
    assert {path: found for path, found in problems.items() if found} == {}
    assert page.errors == []
