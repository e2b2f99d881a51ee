"""The whole thing as it runs unattended: `pipeline-daemon` (`dagster-daemon run` under the daemon lock) with
the shipped dagster.yaml, the workspace's definitions, a fresh PostgreSQL app database and an in-process sandbox with N logged-in accounts.

Used by the on-time test (tests/test_ontime.py) and the benchmark (bench/ontime.py). Items are enqueued at
times on the database clock; `live_times` reads the sandbox's ground truth.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipeline import queue
from pipeline.browser import find_executable, write_secret_file
from pipeline.content import make_draft
from pipeline.db import db_now, dispose_engines, get_engine
from pipeline.migrate import upgrade
from sandbox.client import SandboxAdmin
from sandbox.server import SandboxServer
from tests import pg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class DaemonStack:
    def __init__(self, accounts: list[str], settings: dict[str, str] | None = None) -> None:
        self.accounts = accounts
        self.settings = settings or {}
        self.workdir = Path(tempfile.mkdtemp(prefix="daemon-stack-"))
        self.daemon: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DaemonStack:
        self.pg_admin = pg.admin_url()
        self.db_url = pg.create_database(self.pg_admin, prefix="daemon_stack")
        self.engine = get_engine(self.db_url)
        upgrade(self.engine)
        self.server = SandboxServer(host="127.0.0.1", port=0)
        self.server.start()
        self.sandbox = SandboxAdmin(self.server.url)
        self.sandbox.set_rules(duplicate_window_hours=0, posts_per_3h=1_000_000, posts_per_day=1_000_000)
        sessions = self.workdir / "state" / "sessions"
        for handle in self.accounts:
            path = write_secret_file(sessions / f"{handle}.json", self.sandbox.create_account(handle))
            queue.add_account(self.engine, handle, str(path))
        self.home = self.workdir / "dagster_home"
        self.home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        env = self.env()
        # Create the instance's storage once before the daemon and its runs race to stamp it.
        subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"],
                       env=env, cwd=ROOT, check=True, capture_output=True)
        self.log_path = self.workdir / "daemon.log"
        with open(self.log_path, "wb") as log:
            self.daemon = subprocess.Popen([str(BIN / "pipeline-daemon"), "-w", "workspace.yaml"], cwd=ROOT,
                                           env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_"))}
        env.update({"DAGSTER_HOME": str(self.home), "PIPELINE_DATABASE_URL": self.db_url,
                    "PIPELINE_X_BASE_URL": self.server.url, "PIPELINE_STATE_DIR": str(self.workdir / "state"),
                    "PIPELINE_BROWSER_EXECUTABLE": find_executable() or "", "NO_PROXY": "127.0.0.1,localhost"})
        env.update({f"PIPELINE_{k.upper()}": v for k, v in self.settings.items()})
        return env

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self.daemon is not None:  # its process group holds the code servers and the runs it launched
            try:
                os.killpg(self.daemon.pid, signal.SIGTERM)
                self.daemon.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            # The daemon ends on SIGTERM, but the code servers it started do not (they outlived the benchmark
            # by half an hour, 170 MB each): whatever is left of the group is killed.
            time.sleep(1)
            try:
                os.killpg(self.daemon.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.daemon.wait(timeout=10)
        self.server.stop()
        dispose_engines()
        pg.drop_database(self.pg_admin, self.db_url)
        if exc_type is None:  # on a failure keep the daemon's log and the run logs for a look
            shutil.rmtree(self.workdir, ignore_errors=True)

    def active_runs(self) -> int:
        import dagster as dg

        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return len(instance.get_run_records(dg.RunsFilter(statuses=[
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])))

    def now(self) -> datetime:
        with self.engine.connect() as conn:
            return db_now(conn)

    def schedule(self, items: list[tuple[str, str, float]]) -> dict[int, datetime]:
        """Enqueue (account, text, seconds from now on the database clock); returns item id -> scheduled time."""
        now = self.now()
        entries = [(make_draft(handle, [text]), now + timedelta(seconds=offset)) for handle, text, offset in items]
        ids = queue.enqueue(self.engine, entries)
        return {item_id: when for item_id, (_, when) in zip(ids, entries, strict=True)}

    def live_times(self) -> dict[str, float]:
        """Text -> the time X stored it (the sandbox's ground truth), as a UNIX timestamp."""
        return {t["text"]: datetime.fromisoformat(t["created_at"].replace("Z", "+00:00")).timestamp()
                for t in self.sandbox.tweets()}

    def wait_live(self, texts: set[str], timeout_s: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout_s
        while True:
            live = self.live_times()
            if texts <= set(live) or time.monotonic() > deadline:
                return {t: live[t] for t in texts if t in live}
            self.check_daemon()
            time.sleep(1)

    def check_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is not None:
            raise RuntimeError(f"pipeline-daemon exited ({self.daemon.returncode}): "
                               f"{self.log_path.read_text()[-3000:]}")

    def run_overlaps(self) -> list[tuple[str, str, str]]:
        """Pairs of post_job runs of one account whose [start, end] intervals overlap (should be none)."""
        import dagster as dg

        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            records = instance.get_run_records(dg.RunsFilter(job_name="post_job"))
        spans: dict[str, list[tuple[float, float, str]]] = {}
        for r in records:
            account = r.dagster_run.tags.get("pipeline/account")
            if account and r.start_time:
                spans.setdefault(account, []).append((r.start_time, r.end_time or time.time(), r.dagster_run.run_id))
        overlaps = []
        for account, runs in spans.items():
            runs.sort()
            for (_, e1, a), (s2, _, b) in zip(runs, runs[1:], strict=False):
                if s2 < e1:
                    overlaps.append((account, a, b))
        return overlaps

    def duplicates(self) -> int:
        """Texts stored more than once for one account (ground truth)."""
        seen: dict[tuple[str, str], int] = {}
        for t in self.sandbox.tweets():
            seen[(t["account"], t["text"])] = seen.get((t["account"], t["text"]), 0) + 1
        return sum(n - 1 for n in seen.values() if n > 1)

    def scheduled_times(self) -> dict[str, float]:
        from pipeline import schema as s

        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(s.content_items.c.parts, s.content_items.c.scheduled_at)).all()
        return {parts[0]: when.timestamp() for parts, when in rows}
