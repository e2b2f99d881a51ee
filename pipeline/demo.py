"""`pipeline demo` (what `make demo` runs): the whole pipeline once, through Dagster, on embedded defaults.

Starts a local sandbox of x.com, creates demo accounts with logged-in sessions, then runs
plan_job -> post_job -> metrics_job -> content_performance with Dagster's own CLI (`dagster job execute`,
`dagster asset materialize`), each in its own process as the daemon would, on the default SQLite database
and a Dagster instance under DAGSTER_HOME, so the runs are in the UI afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from pipeline import queue
from pipeline import schema as s
from pipeline.db import db_now, get_engine, transaction
from pipeline.migrate import upgrade
from pipeline.settings import Settings, load_settings
from pipeline.statefiles import write_secret_file

DEMO_ENV = {
    # Snapshot engagement at once (age 0) so the demo shows metrics without waiting an hour.
    "PIPELINE_METRICS_AGES": "0s,1h,24h,7d",
    "PIPELINE_POSTS_PER_HOUR": "30",
    "PIPELINE_MIN_SPACING_MIN": "1",
    "PIPELINE_POST_TIMEOUT_S": "15",
}


def _say(step: str, detail: str = "") -> None:
    print(f"==> {step}{(': ' + detail) if detail else ''}", flush=True)


def _start_sandbox(settings: Settings) -> tuple[Any, str]:
    """Reuse a sandbox already answering at PIPELINE_X_BASE_URL, else start one there (or on a free port)."""
    from sandbox.client import SandboxAdmin
    from sandbox.server import SandboxServer

    parts = urlsplit(settings.x_base_url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(f"PIPELINE_X_BASE_URL={settings.x_base_url} is not a local sandbox; the demo never posts "
                         "to a real account. Unset it to use the built-in sandbox.")
    try:
        if SandboxAdmin(settings.x_base_url, timeout_s=2).health():
            return None, settings.x_base_url
    except Exception:  # noqa: BLE001 - nothing there: start our own
        pass
    # The sandbox keeps its tweets next to the demo database, so a second `make demo` still finds the
    # first run's posts (for metrics and reconciliation), as X would.
    state = settings.state_path / "sandbox.db"
    state.parent.mkdir(parents=True, exist_ok=True)
    for port in (parts.port or 8765, 0):
        try:
            server = SandboxServer(host="127.0.0.1", port=port, state_file=str(state))
            return server, server.start()
        except Exception:  # noqa: BLE001 - the port is taken by something else: take any free one
            continue
    raise RuntimeError("could not start the sandbox")


def _dagster(*args: str) -> None:
    """One Dagster CLI call in its own process; a failed run (or a failed blocking check) exits non-zero."""
    command = [str(Path(sys.executable).parent / "dagster"), *args, "-m", "pipeline.definitions"]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`dagster {' '.join(args)}` failed (exit {result.returncode}):\n{tail}")


def run_demo(settings: Settings, accounts: int = 2, posts: int = 3,
             progress: Callable[[str, str], None] = _say) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    server, url = _start_sandbox(settings)
    os.environ.update(DEMO_ENV)
    os.environ["PIPELINE_X_BASE_URL"] = url
    os.environ["PIPELINE_PLAN_MIN_ITEMS"] = str(posts)
    settings = load_settings()
    try:
        return _demo(settings, url, accounts, progress)
    finally:
        if server is not None:
            server.stop()


def _demo(settings: Settings, url: str, accounts: int, progress: Callable[[str, str], None]) -> int:
    from pipeline import integrity
    from sandbox.client import SandboxAdmin

    progress("sandbox", f"a local stand-in for x.com at {url}")
    engine = get_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
    progress("database", f"schema at revision {upgrade(engine)} ({settings.describe()[0]['value']})")
    admin = SandboxAdmin(url)
    handles = [f"demo_{name}" for name in ("alice", "bob", "carol", "dave")[:accounts]]
    for handle in handles:
        path = write_secret_file(settings.state_path / "sessions" / f"{handle}.json", admin.create_account(handle))
        queue.add_account(engine, handle, str(path))
    progress("accounts", ", ".join(f"@{h}" for h in handles) + " (sessions stored 0600)")

    started = time.monotonic()
    _dagster("job", "execute", "-j", "plan_job")
    progress("plan_job", f"{_due_now(engine, handles)} items planned from the drafts library (the demo makes them due now)")
    progress("enqueue", f"one post with an image for @{handles[0]}, as `pipeline enqueue --media FILE --alt TEXT` does")
    _enqueue_picture(engine, settings, handles[0])
    _dagster("job", "execute", "-j", "post_job")  # its blocking checks fail the run on a duplicate or a missing id
    checks = {"no_duplicate_posts": integrity.duplicate_posts(engine).ok,
              "no_missing_tweet_ids": integrity.missing_tweet_ids(engine).ok,
              "no_stuck_items": integrity.stuck_items(engine, settings.lease_s).ok}
    progress("post_job", "posted; checks: " + ", ".join(f"{k} {'passed' if ok else 'FAILED'}" for k, ok in checks.items()))
    admin.set_clock(3 * 3600)  # three hours pass on X: engagement grows
    today = datetime.now(UTC).date().isoformat()
    _dagster("job", "execute", "-j", "metrics_job", "--tags", json.dumps({"dagster/partition": today}))
    progress("metrics_job", f"engagement snapshots for partition {today}")
    _dagster("asset", "materialize", "--select", "content_performance")
    progress("content_performance", "engagement by topic, format and hour (see the asset in the UI)")
    elapsed = time.monotonic() - started

    rows = _summary(engine, handles)
    passed = sum(checks.values())
    print()
    print(f"{'account':<12} {'posted':>6} {'queued':>6} {'snapshots':>9}  tweet ids")
    for r in rows:
        print(f"@{r['account']:<11} {r['posted']:>6} {r['queued']:>6} {r['snapshots']:>9}  {', '.join(r['tweet_ids'][:4])}"
              f"{' ...' if len(r['tweet_ids']) > 4 else ''}")
    print()
    with_media = sum(1 for t in admin.tweets() if t.get("media"))
    print(f"checks: {passed}/{len(checks)} passed; duplicates on X: {_platform_duplicates(admin)}; "
          f"posts with media on X: {with_media}; whole run {elapsed:.0f} s")
    print("Open the UI (runs, lineage, schedules, sensors): make ui   then http://127.0.0.1:3000")
    return 0 if passed == len(checks) and all(r["posted"] for r in rows) and with_media else 1


def _enqueue_picture(engine: sa.Engine, settings: Settings, handle: str) -> None:
    """A small chart drawn here (no image ships with the package), stored by hash and enqueued due now."""
    from PIL import Image, ImageDraw

    from pipeline import media
    from pipeline.content import make_draft

    path = settings.state_path / "demo-chart.png"
    image = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(image)
    for n, height in enumerate((120, 200, 160, 280, 240)):
        draw.rectangle((60 + n * 110, 330 - height, 140 + n * 110, 330), fill=(29, 155, 240))
    image.save(path, "PNG")
    ref = media.store(settings.state_path, path, "A bar chart: five bars rising from left to right")
    draft = make_draft(handle, [f"Posts a week since we moved to the pipeline ({datetime.now(UTC):%H:%M} UTC)"],
                       media=[[ref]])
    queue.enqueue(engine, [(draft, None)])


def _due_now(engine: sa.Engine, handles: list[str]) -> int:
    """The planner spaced the items over the next hour; the demo does not wait for their slots."""
    with transaction(engine) as conn:
        now = db_now(conn)
        return conn.execute(s.content_items.update().where(
            s.content_items.c.state == s.QUEUED, s.content_items.c.account.in_(handles)).values(scheduled_at=now)
        ).rowcount


def _summary(engine: sa.Engine, handles: list[str]) -> list[dict[str, Any]]:
    rows = []
    with engine.connect() as conn:
        for handle in handles:
            tweet_ids = list(conn.execute(sa.select(s.tweets.c.tweet_id).where(s.tweets.c.account == handle)
                                          .order_by(s.tweets.c.posted_at)).scalars())
            snapshots = conn.execute(sa.select(sa.func.count()).select_from(s.metric_snapshots)
                                     .where(s.metric_snapshots.c.account == handle)).scalar_one()
            counts = queue.count_by_state(engine, handle)
            rows.append({"account": handle, "posted": counts.get("posted", 0), "queued": counts.get("queued", 0),
                         "snapshots": snapshots, "tweet_ids": tweet_ids})
    return rows


def _platform_duplicates(admin: Any) -> int:
    seen: set[tuple[str, str]] = set()
    dups = 0
    for t in admin.tweets():
        key = (t["account"], t["text"])
        dups += key in seen
        seen.add(key)
    return dups

