"""ONE Playwright browser per process, one context per account, one reused page per context.

The predecessor launched browsers per post and leaked them. A `BrowserSession` starts Chromium on first
use and closes everything in `close()`; the Dagster `Browser` resource and the CLI both wrap it.
Playwright's sync API is bound to the thread that started it, so a session must stay on one thread.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipeline.inputs import InputError, read_text_file
from pipeline.statefiles import write_secret_file

# Without the background-networking flags Chromium keeps dialing Google's hosts on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PAGE_RECYCLE_USES = 50
SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Chromium's headless shell (Debian: chromium-headless-shell), what Playwright itself runs for headless work:
# the full browser's --headless starts the whole browser without a window; the shell is the same Blink with
# the same HeadlessChrome user agent and starts lighter (bench/browser_start.py).
HEADLESS_SHELLS = ("/usr/bin/chromium-headless-shell",)
FIX = (
    "no Chromium found: set PIPELINE_BROWSER_EXECUTABLE to a Chromium binary, install one "
    "(apt-get install -y chromium chromium-headless-shell), or run `playwright install chromium` where "
    "downloads are allowed"
)


class BrowserUnavailable(RuntimeError):
    pass


def find_executable(preferred: str = "", headless: bool = True) -> str | None:
    """PIPELINE_BROWSER_EXECUTABLE, then a system Chromium (for headless work its headless shell first);
    None means Playwright's own build."""
    preferred = preferred or os.environ.get("PIPELINE_BROWSER_EXECUTABLE", "")
    if preferred:
        if not Path(preferred).exists():
            raise BrowserUnavailable(f"PIPELINE_BROWSER_EXECUTABLE={preferred} does not exist; " + FIX)
        return preferred
    shells = (*HEADLESS_SHELLS, shutil.which("chromium-headless-shell") or "") if headless else ()
    for candidate in (*shells, *SYSTEM_CHROMIUMS, shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    return None


SESSION_FILE_MAX_BYTES = 8 * 1024 * 1024  # a storage_state is cookies and local storage: kilobytes


def read_storage_state(path: str | Path) -> dict[str, Any]:
    """Load a session file, with an error that names the file and the fix (never its contents)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"browser session file {p} is missing; log in again with `pipeline login --account HANDLE` "
            "or register one with `pipeline accounts add HANDLE --storage-state FILE`"
        )
    try:
        text = read_text_file(p, SESSION_FILE_MAX_BYTES, "browser session file")
    except InputError as exc:
        raise ValueError(str(exc)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"browser session file {p} is not valid JSON (line {exc.lineno}); export it again") from None
    if not isinstance(data, dict) or "cookies" not in data:
        raise ValueError(f"browser session file {p} is not a Playwright storage_state (no 'cookies'); export it again")
    return data


class BrowserSession:
    """Lazily started Chromium with a context and a reusable page per account."""

    def __init__(self, executable: str = "", headless: bool = True, nav_timeout_s: float = 30.0) -> None:
        self._executable = executable
        self._headless = headless
        self._nav_timeout_ms = nav_timeout_s * 1000
        self._pw: Any = None
        self._browser: Any = None
        self._contexts: dict[str, Any] = {}
        self._pages: dict[str, Any] = {}
        self._uses: dict[str, int] = {}

    @property
    def started(self) -> bool:
        return self._browser is not None

    def browser(self) -> Any:
        if self._browser is None or not self._browser.is_connected():
            from playwright.sync_api import Error as PlaywrightError
            from playwright.sync_api import sync_playwright

            self._close_quietly()
            self._pw = sync_playwright().start()
            try:
                self._browser = self._pw.chromium.launch(
                    executable_path=find_executable(self._executable, self._headless), headless=self._headless,
                    args=CHROMIUM_ARGS,
                )
            except PlaywrightError as exc:
                self._close_quietly()
                raise BrowserUnavailable(f"{FIX} ({str(exc).splitlines()[0]})") from exc
        return self._browser

    def context(self, account: str, storage_state_path: str | Path) -> Any:
        ctx = self._contexts.get(account)
        if ctx is None:
            ctx = self.browser().new_context(storage_state=read_storage_state(storage_state_path))
            ctx.set_default_navigation_timeout(self._nav_timeout_ms)
            ctx.set_default_timeout(self._nav_timeout_ms)
            self._contexts[account] = ctx
        return ctx

    def page(self, account: str, storage_state_path: str | Path) -> Any:
        """The account's page, reused across posts; a crashed or closed page is replaced, and a page is
        recycled every PAGE_RECYCLE_USES uses so a renderer's heap cannot grow for weeks."""
        page = self._pages.get(account)
        uses = self._uses.get(account, 0) + 1
        if page is not None and not page.is_closed() and uses > PAGE_RECYCLE_USES:
            page.close()
            uses = 1
        if page is None or page.is_closed():
            page = self.context(account, storage_state_path).new_page()
            self._pages[account] = page
        self._uses[account] = uses
        return page

    def reset_account(self, account: str) -> None:
        """Drop an account's context (after a crash or a new session file)."""
        self._pages.pop(account, None)
        self._uses.pop(account, None)
        ctx = self._contexts.pop(account, None)
        if ctx is not None:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001 - the context may already be gone with a crashed browser
                pass

    def save_session(self, account: str, path: str | Path) -> Path:
        """Persist the account's current cookies (X rotates them) back to its 0600 session file."""
        return write_secret_file(path, self._contexts[account].storage_state())

    def _close_quietly(self) -> None:
        for account in list(self._contexts):
            self.reset_account(account)
        if self._browser is not None:
            try:
                self._browser.close()
            except Exception:  # noqa: BLE001
                pass
        if self._pw is not None:
            try:
                self._pw.stop()
            except Exception:  # noqa: BLE001
                pass
        self._browser = None
        self._pw = None

    def close(self) -> None:
        self._close_quietly()

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
