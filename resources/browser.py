"""ONE Playwright browser per process (pipeline.browser.BrowserSession), started lazily, closed at teardown.

A dispatched run that packs several accounts gives each account's thread a session of its own
(`new_session`), closed when that account's turn ends.

Only jobs with the in-process executor get this resource, and never a sensor: Playwright's sync API is
bound to the thread that started it, and sensors run in a thread pool and set resources up every tick.
"""

import dagster as dg
from pydantic import Field, PrivateAttr

from pipeline.browser import BrowserSession
from pipeline.settings import load_settings


class Browser(dg.ConfigurableResource):
    """Empty/None fields fall back to PIPELINE_BROWSER_EXECUTABLE, PIPELINE_HEADLESS, PIPELINE_NAV_TIMEOUT_S."""

    executable: str = Field(default="", description="Chromium binary; empty means the setting or a system Chromium")
    headless: bool | None = Field(default=None, description="Run without a window (PIPELINE_HEADLESS)")
    nav_timeout_s: float | None = Field(default=None, description="Navigation timeout (PIPELINE_NAV_TIMEOUT_S)")

    _session: BrowserSession | None = PrivateAttr(default=None)

    @property
    def session(self) -> BrowserSession:
        """The process's session. Creating it is cheap; Chromium starts on the first page it opens."""
        if self._session is None:
            self._session = self.new_session()
        return self._session

    def new_session(self) -> BrowserSession:
        """A session of its own, for a thread that posts one account of a packed run (the caller closes it)."""
        settings = load_settings()
        return BrowserSession(
            executable=self.executable or settings.browser_executable,
            headless=settings.headless if self.headless is None else self.headless,
            nav_timeout_s=self.nav_timeout_s or settings.nav_timeout_s,
        )

    @property
    def started(self) -> bool:
        return self._session is not None and self._session.started

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
