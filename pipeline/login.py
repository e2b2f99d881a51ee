"""`pipeline login`: an operator logs in to X in a real browser window; we keep the session (mode 0600).

We never see or store the password: the operator types it into X's own page (2FA and captchas included),
and we save only the resulting cookies as a Playwright storage_state, written atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.browser import CHROMIUM_ARGS, BrowserUnavailable, find_executable
from pipeline.handles import canonical_handle
from pipeline.settings import Settings
from pipeline.statefiles import path_under, write_secret_file
from pipeline.xweb import LOGIN_PATH, either

SESSION_COOKIES = {"auth_token", "ct0"}


class LoginTimeout(RuntimeError):
    pass


def session_path(settings: Settings, handle: str) -> Path:
    """Where an account's session lives: always `PIPELINE_STATE_DIR/sessions/<canonical handle>.json`."""
    return path_under(settings.state_path / "sessions", f"{canonical_handle(handle)}.json")


def interactive_login(settings: Settings, handle: str, timeout_s: float = 600, headless: bool = False,
                      on_page: Callable[[Any], None] | None = None) -> Path:
    """Open X's login page and wait until the browser holds a logged-in session, then save it.

    `on_page` lets a caller act on the page (the tests fill the sandbox's form; an operator types).
    The handle is checked before any browser starts: a bad one (`../../x`) never names a file."""
    target = session_path(settings, handle)
    handle = canonical_handle(handle)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=find_executable(settings.browser_executable, headless),
                                         headless=headless, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            raise BrowserUnavailable(f"cannot open a browser for the login ({str(exc).splitlines()[0]}); "
                                     "on a server without a screen, log in elsewhere and use "
                                     "`pipeline accounts add HANDLE --storage-state FILE`") from exc
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(settings.x_base_url + LOGIN_PATH, wait_until="domcontentloaded")
            print(f"Log in as @{handle} in the browser window (waiting up to {timeout_s:.0f} s)...")
            if on_page is not None:
                on_page(page)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                names = {c["name"] for c in context.cookies()}
                if SESSION_COOKIES <= names and LOGIN_PATH not in page.url and page.locator(either("logged_in")).count():
                    return write_secret_file(target, context.storage_state())
                page.wait_for_timeout(500)
            raise LoginTimeout(f"no logged-in session after {timeout_s:.0f} s; run `pipeline login` again")
        finally:
            browser.close()
