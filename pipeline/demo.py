"""`pipeline demo` (what `make demo` runs): the whole pipeline once, through Dagster, on embedded defaults.

Starts a local sandbox of x.com, creates demo accounts with logged-in sessions, then runs
plan_job -> post_job -> metrics_job -> content_performance exactly as the daemon would, on the default
SQLite database and a Dagster instance under DAGSTER_HOME, so the runs are in the UI afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from pipeline import queue
from pipeline import schema as s
from pipeline.browser import write_secret_file
from pipeline.db import db_now, get_engine, transaction
from pipeline.migrate import upgrade
from pipeline.settings import Settings, load_settings

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


def _run_job(defs: Any, instance: Any, name: str, **kwargs: Any) -> Any:
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = defs.resolve_job_def(name).execute_in_process(instance=instance, raise_on_error=False,
                                                           run_config=quiet, **kwargs)
    if not result.success:
        failure = result.get_run_failure_event()
        raise RuntimeError(f"{name} failed: {failure.message if failure else 'see the Dagster UI'}")
    return result


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
    import logging

    import dagster as dg

    from pipeline.definitions import defs

    logging.getLogger("pipeline").setLevel(logging.WARNING)  # the demo prints its own progress
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

    with dg.DagsterInstance.get() as instance:
        started = time.monotonic()
        _run_job(defs, instance, "plan_job")
        planned = _due_now(engine, handles)
        progress("plan_job", f"{planned} items planned from the drafts library (the demo makes them due now)")
        post = _run_job(defs, instance, "post_job")
        checks = post.get_asset_check_evaluations()
        progress("post_job", "posted; checks: " + ", ".join(
            f"{c.check_name} {'passed' if c.passed else 'FAILED'}" for c in checks))
        admin.set_clock(3 * 3600)  # three hours pass on X: engagement grows
        today = datetime.now(UTC).date().isoformat()
        _run_job(defs, instance, "metrics_job", partition_key=today)
        progress("metrics_job", f"engagement snapshots for partition {today}")
        from assets.metrics import content_performance

        dg.materialize([content_performance], instance=instance, resources=defs.resources,
                       run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        progress("content_performance", "engagement by topic, format and hour (see the asset in the UI)")
        elapsed = time.monotonic() - started

    rows = _summary(engine, handles)
    failed_checks = [c.check_name for c in checks if not c.passed]
    print()
    print(f"{'account':<12} {'posted':>6} {'queued':>6} {'snapshots':>9}  tweet ids")
    for r in rows:
        print(f"@{r['account']:<11} {r['posted']:>6} {r['queued']:>6} {r['snapshots']:>9}  {', '.join(r['tweet_ids'][:4])}"
              f"{' ...' if len(r['tweet_ids']) > 4 else ''}")
    print()
    print(f"checks: {len(checks) - len(failed_checks)}/{len(checks)} passed; duplicates on X: "
          f"{_platform_duplicates(admin)}; whole run {elapsed:.0f} s")
    print("Open the UI (runs, lineage, schedules, sensors): make ui   then http://127.0.0.1:3000")
    return 0 if not failed_checks and all(r["posted"] for r in rows) else 1


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

