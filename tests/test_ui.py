"""`make ui` as an operator runs it: headless Chromium opens the Dagster UI, whose asset graph shows the
four assets and their checks. A screenshot is kept in tests/artifacts/ui_asset_graph.png."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.browser import BrowserSession
from tests.conftest import ARTIFACTS

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ("generated_content", "posted_tweets", "tweet_metrics", "content_performance")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout_s:.0f} s")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a fresh venv and several Dagster processes: minutes on a busy 2-core machine
def test_make_ui_shows_the_asset_graph_with_checks(tmp_path: Path, browser_session: BrowserSession) -> None:
    ui_port, sandbox_port = free_port(), free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "UI_PORT": str(ui_port), "SANDBOX_PORT": str(sandbox_port),
           "PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'ui.db'}", "PIPELINE_STATE_DIR": str(tmp_path / "state")}
    log = (tmp_path / "ui.log").open("w")
    ui = subprocess.Popen(["make", "ui"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{ui_port}/server_info", 180)
        context = browser_session.browser().new_context(viewport={"width": 2400, "height": 1100})
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{ui_port}/asset-groups", wait_until="networkidle")
        # The webserver answers before the code location has loaded: wait for the graph's groups.
        page.locator('[aria-label="unfold_more"]').first.wait_for(timeout=120_000)
        page.wait_for_timeout(2000)
        skip = page.get_by_role("button", name="Skip")  # a fresh instance greets with a community modal
        if skip.count():
            skip.first.click()
            page.wait_for_timeout(500)
        page.locator('[aria-label="settings"]').last.click()  # the graph's own menu
        page.get_by_role("menuitem", name="unfold_more Expand all groups").click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(2000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui_asset_graph.png"))
        body = page.inner_text("body")
        for asset in ASSETS:
            assert asset in body, f"{asset} missing from the asset graph"
        assert "Asset checks" in body and "/ 4 " in body  # posted_tweets carries its four checks (media too)
        context.close()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:  # the code server the webserver started may outlive it on SIGTERM (tests/daemon_stack.py)
            os.killpg(ui.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
