"""`pipeline login` against the sandbox's login page: the saved session posts, and is stored 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipeline.login import LoginTimeout, interactive_login
from pipeline.settings import load_settings
from sandbox.client import SandboxAdmin


def test_login_saves_a_working_session_with_mode_0600(sandbox: SandboxAdmin, tmp_path: Path,
                                                      browser_session) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(env={"PIPELINE_X_BASE_URL": sandbox.url, "PIPELINE_STATE_DIR": str(tmp_path)})
    sandbox.create_account("carol")

    def operator_types(page) -> None:  # type: ignore[no-untyped-def]
        page.fill('input[name="text"]', "carol")
        page.fill('input[name="password"]', "not-stored-anywhere")
        page.click('[data-testid="loginButton"]')

    import threading

    result: dict = {}
    # Playwright's sync API allows one driver per thread; the test session's browser owns this one.
    thread = threading.Thread(target=lambda: result.update(path=interactive_login(
        settings, "carol", timeout_s=30, headless=True, on_page=operator_types)))
    thread.start()
    thread.join(60)
    path = result["path"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "not-stored-anywhere" not in path.read_text()
    page = browser_session.page("carol-login-check", path)
    page.goto(sandbox.url + "/home")
    assert "/i/flow/login" not in page.url and page.locator('[data-testid="tweetTextarea_0"]').count() == 1
    browser_session.reset_account("carol-login-check")


def test_login_times_out_with_the_fix(sandbox: SandboxAdmin, tmp_path: Path) -> None:
    settings = load_settings(env={"PIPELINE_X_BASE_URL": sandbox.url, "PIPELINE_STATE_DIR": str(tmp_path)})
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            interactive_login(settings, "dave", timeout_s=1, headless=True)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert errors and isinstance(errors[0], LoginTimeout) and "pipeline login" in str(errors[0])
    assert not (tmp_path / "sessions" / "dave.json").exists()


def test_headless_work_prefers_chromiums_headless_shell_and_the_headed_login_never_gets_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Headless pages run on the headless shell (a third of the full browser's start-up) when it is installed
    (scripts/ensure_browser.sh installs it on Debian); a login window needs the full browser; an explicit
    PIPELINE_BROWSER_EXECUTABLE wins over both, and a wrong one is refused with the fix."""
    from pipeline.browser import HEADLESS_SHELLS, SYSTEM_CHROMIUMS, BrowserUnavailable, find_executable

    monkeypatch.delenv("PIPELINE_BROWSER_EXECUTABLE", raising=False)
    installed = [p for p in HEADLESS_SHELLS if Path(p).exists()]
    headless, headed = find_executable(headless=True), find_executable(headless=False)
    assert headless == (installed[0] if installed else headed)
    assert headed is not None and "headless-shell" not in headed and (headed in SYSTEM_CHROMIUMS or "chromium" in headed)
    assert find_executable(headed, headless=True) == headed
    with pytest.raises(BrowserUnavailable, match="does not exist.*apt-get install"):
        find_executable(str(tmp_path / "no-chromium"))
