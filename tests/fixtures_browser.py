"""Browser and sandbox fixtures: a real sandbox server (one per session) and a real Chromium (one per session).

`sandbox` resets the server for each test and hands back a `SandboxAdmin` (its `.url` is the base URL).
`chromium` is a Playwright Browser (the conftest `browser_session`'s, when there is one: one Playwright
driver per thread); a missing Chromium is a failure with the fix, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.client import SandboxAdmin
from sandbox.server import SandboxServer


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    server = SandboxServer(host="127.0.0.1", port=0, seed=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxAdmin:
    admin = SandboxAdmin(sandbox_server.url)
    admin.reset()
    return admin


@pytest.fixture(scope="session")
def chromium(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Headless Chromium (find_executable(), CHROMIUM_ARGS). Playwright's sync API allows one driver per thread,
    so when conftest provides the session-wide `browser_session` this is that session's browser."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from pipeline.browser import CHROMIUM_ARGS, FIX, BrowserUnavailable, find_executable

    try:
        shared = request.getfixturevalue("browser_session")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        try:
            yield shared.browser()
        except BrowserUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        return

    try:
        executable = find_executable()
    except BrowserUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    pw = sync_playwright().start()
    try:
        try:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.fail(f"{FIX} ({str(exc).splitlines()[0]})", pytrace=False)
        yield browser
        browser.close()
    finally:
        pw.stop()
