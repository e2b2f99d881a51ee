"""The canary against the real sandbox in real Chromium: quiet on the sandbox as it is, a `ui_changed` alert naming
the selector under the sandbox's `ui_drift` fault, and nothing ever posted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline import queue
from pipeline.browser import write_secret_file
from pipeline.canary import run_canary
from tests.conftest import once_on_postgres
from tests.fixtures_world import World


def test_canary_passes_on_the_sandbox_and_posts_nothing(world: World) -> None:
    world.enqueue("alice", "Posted so the timeline and a status page have something to show")
    world.post()
    before = len(world.truth())
    report = run_canary(world.engine, world.settings, world.browser, alerts=world.alerts)
    [alice] = report.accounts
    assert report.ok and alice.error is None, report.render()
    assert {"composer:post_button", "composer:compose_box", "timeline:tweet_ids", "status:like_label"} <= set(alice.checked)
    assert world.alerts.sent == [] and len(world.truth()) == before  # read only


@once_on_postgres
def test_ui_drift_raises_ui_changed_naming_the_selector(world: World) -> None:
    world.sandbox.set_faults({"ui_drift": {"p": 1.0}})
    report = run_canary(world.engine, world.settings, world.browser, alerts=world.alerts)
    [alice] = report.accounts
    assert not report.ok
    assert [m.check for m in alice.misses] == ["composer:post_button"]
    assert 'data-testid="tweetButtonInline"' in alice.misses[0].selector
    [(key, title)] = world.alerts.sent
    assert key == "ui_changed:alice:composer:post_button" and "post_button" in title
    assert world.truth() == []


def test_logged_out_session_is_reported_not_alerted_as_a_page_change(world: World, tmp_path: Path) -> None:
    """No cookies: the sandbox sends bob to the login page. That is the breaker's business, not a page change."""
    session = write_secret_file(tmp_path / "bob.json", {"cookies": [], "origins": []})
    queue.add_account(world.engine, "bob", str(session))
    report = run_canary(world.engine, world.settings, world.browser, alerts=world.alerts, accounts=["bob"])
    [bob] = report.accounts
    assert bob.misses == [] and "logged out" in (bob.error or "")
    assert world.alerts.sent == []


@once_on_postgres
def test_cli_canary_exit_codes(world: World) -> None:
    """`pipeline canary`: 0 on the sandbox as it is, 1 under ui_drift (naming the selector), 2 for an unknown account."""
    env = {**os.environ, "PIPELINE_DATABASE_URL": world.settings.database_url, "PIPELINE_X_BASE_URL": world.sandbox.url,
           "PIPELINE_STATE_DIR": str(world.state_dir)}
    pipeline = str(Path(sys.executable).parent / "pipeline")
    ok = subprocess.run([pipeline, "canary"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    world.sandbox.set_faults({"ui_drift": {"p": 1.0}})
    drift = subprocess.run([pipeline, "canary", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert drift.returncode == 1, drift.stdout + drift.stderr
    [alice] = json.loads(drift.stdout)["accounts"]
    assert alice["misses"][0]["check"] == "composer:post_button"
    unknown = subprocess.run([pipeline, "canary", "--account", "nobody"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert unknown.returncode == 2 and "no account @nobody" in unknown.stderr
