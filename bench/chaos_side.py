"""One side of a chaos run (the pipeline or the naive model): setup, the two phases, the verdict."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.chaos_check import check
from bench.chaos_faults import (
    REQUEST_PEER,
    ScheduledFaults,
    WebhookOperator,
    draw_schedule,
    kill_tree,
    owns_socket,
    process_tree,
    socket_inodes,
    tag_requests,
)
from bench.chaos_inject import DbChaos, SandboxTap
from bench.chaos_plan import (
    FOREIGN_MARK,
    HARNESS_APP,
    PIPELINE_APP,
    ROOT,
    ChaosConfig,
    PlanItem,
    expected,
    handles,
    make_plan,
    write_plan_media,
)
from bench.chaos_worker import SpecSource, Worker, WorkerSpec, worker_argv

# =============================================================================================== one side


class SideRunner:
    """Runs one side (pipeline or baseline) through both phases and returns its metrics and details."""

    side = "pipeline"
    app_name = PIPELINE_APP

    def __init__(self, cfg: ChaosConfig, plan: list[PlanItem], workdir: Path, log: Callable[[str], None] = print) -> None:
        self.cfg, self.plan, self.workdir = cfg, plan, workdir
        self.accounts = handles(cfg.accounts)
        self.log = log
        self.state_dir = workdir / "state"
        self.logs_dir = workdir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.session_paths = {h: self.state_dir / "sessions" / f"{h}.json" for h in self.accounts}
        self.workers: list[Worker] = []
        self.runs: Counter[str] = Counter()
        self.max_connections = 0
        self.skewed_runs = 0
        self.run_log: list[dict[str, Any]] = []
        self.workers_lock = threading.Lock()
        self.chaos = True
        self.unmatched_posters = 0
        self.kill_debt = 0  # scheduled kills whose poster was not found, owed to the next stored posts
        self.t0 = time.monotonic()

    # ---------------------------------------------------------------- hooks for the two sides

    def create_schema(self) -> None:
        from pipeline.migrate import upgrade

        upgrade(self.engine)

    def register(self, handle: str, path: Path) -> None:
        from pipeline import queue

        queue.add_account(self.engine, handle, str(path))

    def write_media(self) -> None:
        """The plan's media files (the same bytes on both sides for a seed), made before the clock starts."""
        self.media_files = write_plan_media(self.plan, self.workdir / "media_src")

    def enqueue(self) -> None:
        """As `pipeline enqueue --media FILE --alt TEXT` does: each file checked by its content, copied into the
        content-addressed store the workers post from, and named (hash, alt) in the item's `media` column."""
        from pipeline import queue
        from pipeline.content import make_draft
        from pipeline.db import db_now
        from pipeline.media import check_file, storing

        staged = {key: [[check_file(path, alt) for path, alt in part] for part in parts]
                  for key, parts in self.media_files.items()}
        with self.engine.connect() as conn:
            now = db_now(conn)
        entries = [(make_draft(p.account, p.parts, media=[[m.ref for m in part] for part in staged.get(p.key, [])]),
                    None if p.offset_s is None else now + timedelta(seconds=p.offset_s))
                   for p in self.plan]
        with storing(self.state_dir, [m for parts in staged.values() for part in parts for m in part]):
            ids = queue.enqueue(self.engine, entries, source="chaos")
        self.item_keys = dict(zip(ids, (p.key for p in self.plan), strict=True))

    def counts_sql(self) -> str:
        """(unattempted, due work, not quiet, progress: any change means workers are getting somewhere)."""
        return ("SELECT count(*) FILTER (WHERE attempts = 0 AND state IN ('queued', 'claimed')), "
                "count(*) FILTER (WHERE (state = 'queued' AND scheduled_at <= now()) OR state = 'unknown' "
                "  OR (state IN ('claimed', 'posting') AND lease_expires_at < now())), "
                "count(*) FILTER (WHERE state IN ('queued', 'claimed', 'posting', 'unknown')), "
                "coalesce(sum(attempts), 0) + count(*) FILTER (WHERE state = 'posted') "
                "  + coalesce(sum(unknown_checks), 0) FROM content_items")

    def journal_pending(self) -> int:
        from pipeline.journal import Journal

        return len(Journal(self.state_dir / "journal.jsonl").pending())

    def snapshot(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, account, parts, state, last_error, error_class FROM content_items ORDER BY id")).mappings().all()
            recorded: dict[int, dict[int, str]] = {}
            for item_id, part, tweet_id in conn.execute(sa.text("SELECT item_id, part_index, tweet_id FROM tweets")):
                recorded.setdefault(item_id, {})[part] = tweet_id
        out = []
        for r in rows:
            parts = recorded.get(r["id"], {})
            ids = [parts[i] for i in range(len(parts)) if i in parts]  # stop at the first gap
            out.append({"id": self.item_keys.get(r["id"], r["id"]), "account": r["account"], "parts": list(r["parts"]),
                        "state": r["state"], "tweet_ids": ids, "reason": r["last_error"],
                        "error_class": r["error_class"]})
        return out

    def extra_details(self) -> dict[str, Any]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            via = dict(conn.execute(sa.text("SELECT recorded_via, count(*) FROM tweets GROUP BY recorded_via")).all())
            alerts = [r[0] for r in conn.execute(sa.text("SELECT key FROM alerts ORDER BY id"))]
            outcomes = dict(conn.execute(sa.text("SELECT outcome, count(*) FROM post_attempts GROUP BY outcome")).all())
            trips = dict(conn.execute(sa.text(
                "SELECT to_state, count(*) FROM breaker_transitions GROUP BY to_state")).all())
        return {"recorded_via": via, "attempt_outcomes": outcomes, "breaker_transitions": trips,
                "auth_alerts": sum(1 for k in alerts if k.startswith("breaker-forced:") and ":auth:" in k),
                "alerts": len(alerts),
                "journal_pending_at_end": self.journal_pending()}

    def connection_bound(self) -> int:
        return self.cfg.workers * (5 + 10)  # PIPELINE_DB_POOL_SIZE + PIPELINE_DB_MAX_OVERFLOW per process

    # ---------------------------------------------------------------- the run

    def setup(self) -> None:
        import sqlalchemy as sa

        from pipeline.browser import write_secret_file
        from pipeline.db import get_engine
        from sandbox.client import SandboxAdmin
        from sandbox.dbproxy import FaultProxy
        from sandbox.server import SandboxServer
        from tests import pg

        self._dagster_init = self.start_dagster_home()
        self.pg_admin = pg.admin_url()
        self.db_url = pg.create_database(self.pg_admin, prefix=f"chaos_{self.side}")
        self.db_name = self.db_url.rsplit("/", 1)[1]
        self.engine = get_engine(self.db_url, application_name=HARNESS_APP)
        self.create_schema()
        self.server = SandboxServer(host="127.0.0.1", port=0, seed=self.cfg.seed)
        self.server.start()
        self.admin = SandboxAdmin(self.server.url)
        self.admin.set_rules(duplicate_window_hours=0, posts_per_3h=1_000_000, posts_per_day=1_000_000)
        for handle, path in self.session_paths.items():
            write_secret_file(path, self.admin.create_account(handle))
            self.register(handle, path)
        url = sa.make_url(self.db_url)
        self.proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
        self.proxied_url = url.set(port=self.proxy.port).render_as_string(hide_password=False)
        self.schedule = draw_schedule(self.cfg, self.cfg.sandbox_faults)
        self.db_chaos = DbChaos(self.proxy, self.schedule)
        self.operator = WebhookOperator(self.admin, self.session_paths, self.cfg.operator_delay_s)
        self.sandbox_faults = ScheduledFaults(self.schedule, self.cfg.sandbox_faults)
        self.sandbox_faults.active = False  # until the items are enqueued
        self.tap = SandboxTap(self.server.store, self.db_chaos, self.sandbox_faults, self.kill_on_post, self.cfg)
        self.sandbox_port = tag_requests(self.server)
        self.dagster_home = self.workdir / "dagster_home"
        self.init_dagster_home()  # (started first thing in setup; waited for here)
        self.specs = SpecSource(self.cfg, self.accounts)
        self.write_media()
        self.kill_rng = random.Random(f"{self.cfg.seed}:kills")

    def start_dagster_home(self) -> subprocess.Popen[bytes] | None:
        """Create the Dagster instance's storage once, before workers start: concurrent first runs on an empty
        DAGSTER_HOME race on Dagster's own SQLite schema stamp (two alembic heads) and every later run fails."""
        self.dagster_home = self.workdir / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        if self.side != "pipeline":
            return None
        shutil.copy(ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        return subprocess.Popen([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"],
                                env={**os.environ, "DAGSTER_HOME": str(self.dagster_home)}, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init_dagster_home(self) -> None:
        if self._dagster_init is not None and self._dagster_init.wait() != 0:
            raise RuntimeError(f"could not create the Dagster instance in {self.dagster_home}")

    def env_for(self, spec: WorkerSpec) -> dict[str, str]:
        from pipeline.browser import find_executable

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "DAGSTER_HOME", "PGTZ"))}
        env.update(self.cfg.worker_env())
        env.update({
            "PIPELINE_DATABASE_URL": self.proxied_url,
            "PIPELINE_X_BASE_URL": self.server.url,
            "PIPELINE_STATE_DIR": str(self.state_dir),
            "PIPELINE_ALERT_WEBHOOK_URL": self.operator.url,
            "PIPELINE_BROWSER_EXECUTABLE": find_executable() or "",
            "DAGSTER_HOME": str(self.dagster_home),
            "TZ": spec.tz,
            "PGTZ": spec.pgtz,
            "PYTHONPATH": str(ROOT),
            "NO_PROXY": "127.0.0.1,localhost",
        })
        return env

    def launch(self, chaos: bool) -> None:
        spec = self.specs.next(chaos)
        n = sum(self.runs.values()) + len(self.workers)
        log_path = self.logs_dir / f"run_{n:04d}.log"
        argv = worker_argv(self.side, self.cfg.runner, spec.accounts, spec.skew)
        with open(log_path, "wb") as fh:
            fh.write((json.dumps(asdict(spec)) + "\n").encode())
            fh.flush()
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env_for(spec), stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.skewed_runs += bool(spec.skew)
        with self.workers_lock:
            self.workers.append(Worker(spec, proc, time.monotonic(), log_path))

    def kill(self, w: Worker, why: str) -> None:
        """SIGKILL the worker and its whole process tree (Chromium runs in a group of its own);
        `why` is counted when it is reaped."""
        if w.killed:
            return
        w.killed = why  # first: the main loop may reap the process the moment it dies (kills come from the sandbox thread)
        kill_tree(w.proc.pid)

    def kill_on_post(self, event: Any) -> bool:
        """Sandbox hook, called the instant a tweet is stored (before its response leaves): when the schedule
        says so, SIGKILL the worker whose browser sent this CreateTweet (found by the request's TCP socket)."""
        if not self.chaos or not (event.kill_poster or self.kill_debt):
            return False
        peer = REQUEST_PEER.get()
        inodes = socket_inodes(peer, self.sandbox_port) if peer else set()
        with self.workers_lock:
            live = [w for w in self.workers if not w.killed and w.proc.poll() is None]
            poster = next((w for w in live if inodes and owns_socket(process_tree(w.proc.pid), inodes)), None)
            if poster is not None:
                self.kill(poster, "sigkill_after_post")
                self.kill_debt -= not event.kill_poster  # this kill paid an earlier unmatched one
            elif event.kill_poster:
                self.unmatched_posters += 1
                self.kill_debt += 1  # the next stored post's poster is killed instead: the kill count must hold
        return poster is not None

    def diagnose(self, w: Worker) -> None:
        """Before the watchdog kills a run: its threads' stacks (faulthandler, SIGUSR1) and the database's view
        of every session, appended to the run's log."""
        import sqlalchemy as sa

        try:
            os.kill(w.proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return
        time.sleep(1.0)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT pid, application_name, state, wait_event_type, wait_event, now() - xact_start, "
                    "left(query, 120) FROM pg_stat_activity WHERE datname = :d"), {"d": self.db_name}).all()
            with open(w.log_path, "a") as fh:
                fh.write("\n[watchdog] pg_stat_activity:\n" + "\n".join(map(str, rows)) + "\n")
        except Exception:  # noqa: BLE001 - diagnostics must never stop the run
            pass

    def reap(self) -> None:
        now = time.monotonic()
        for w in list(self.workers):
            rc = w.proc.poll()
            if rc is None:
                if self.chaos and w.spec.kill_after_s is not None and now - w.started >= w.spec.kill_after_s:
                    self.kill(w, "sigkill")
                elif now - w.started >= self.cfg.run_limit_s and not w.killed:
                    self.diagnose(w)
                    self.kill(w, "watchdog_kill")
                continue
            self.runs[w.killed or ("exit_0" if rc == 0 else f"exit_{rc}")] += 1
            kill_tree(w.proc.pid)  # Chromium left behind by a crashed run
            with self.workers_lock:
                self.workers.remove(w)
            self.run_log.append({"log": w.log_path.name, "start_s": round(w.started - self.t0, 1),
                                 "duration_s": round(now - w.started, 1), "rc": rc, "ended": w.killed or "exit",
                                 "accounts": w.spec.accounts, "skew": w.spec.skew})

    def sample(self) -> tuple[int, int, int, int]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            unattempted, due, not_quiet, progress = conn.execute(sa.text(self.counts_sql())).one()
        return int(unattempted), int(due), int(not_quiet), int(progress)

    def _sampler(self) -> None:
        import sqlalchemy as sa

        while not self._stop_sampling.wait(0.25):
            try:
                with self.engine.connect() as conn:
                    n = conn.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND application_name = :a"),
                        {"d": self.db_name, "a": self.app_name}).scalar_one()
                self.max_connections = max(self.max_connections, int(n))
            except Exception:  # noqa: BLE001 - sampling must never stop the run
                pass

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        t_setup = time.monotonic()
        deadline = t_setup + cfg.time_budget_s if cfg.time_budget_s else math.inf
        self.setup()
        try:
            self.enqueue()
            self.sandbox_faults.active = True
            self.db_chaos.start()
            self._stop_sampling = threading.Event()
            sampler = threading.Thread(target=self._sampler, daemon=True, name="pg-sampler")
            sampler.start()
            t0 = self.t0 = self.operator.t0 = time.monotonic()
            self.log(f"[{self.side}] {len(self.plan)} items enqueued; faults on (setup {t0 - t_setup:.1f}s)")
            chaos, t_calm, quiet_at, last_report, tap_at_calm = True, None, None, t0, None
            last_progress, progressed_at, launched_at = -1, t0, 0.0
            while True:
                now = time.monotonic()
                self.reap()
                unattempted, due, not_quiet, progress = self.sample()
                if progress != last_progress:
                    last_progress, progressed_at = progress, now
                not_quiet += self.journal_pending()
                if chaos and (unattempted == 0 or now - t0 >= cfg.fault_limit_s or now >= deadline - 60):
                    chaos, t_calm = False, now
                    self.chaos = False
                    tap_at_calm = dict(self.tap.counts)
                    self.sandbox_faults.active = False
                    self.db_chaos.calm()
                    self.log(f"[{self.side}] faults off after {now - t0:.0f}s "
                             f"({'every item tried' if unattempted == 0 else 'time limit'})")
                if not chaos:
                    if not_quiet == 0 and not self.workers:
                        quiet_at = now
                        break
                    if now - t_calm >= cfg.quiet_limit_s or now >= deadline:
                        self.log(f"[{self.side}] NOT quiet {now - t_calm:.0f}s after the faults: {not_quiet} items left")
                        break
                # Roughly one worker per due item, up to --workers; while nothing moves (every account's breaker
                # holds), start a run only every few seconds instead of burning CPU on start-ups.
                gap = 1.0 if now - progressed_at < 10 else 5.0
                wanted = due > len(self.workers) or (not self.workers and self.journal_pending())
                if len(self.workers) < cfg.workers and wanted and now - launched_at >= gap:
                    self.launch(chaos)
                    launched_at = now
                if now - last_report >= 15:
                    last_report = now
                    self.log(f"[{self.side}] t={now - t0:.0f}s {'faults' if chaos else 'calm'} unattempted={unattempted} "
                             f"due={due} active={not_quiet} workers={len(self.workers)} runs={dict(self.runs)}")
                time.sleep(0.2)
            for w in self.workers:
                self.kill(w, "end")
                w.proc.wait()
            self.workers.clear()
            self._stop_sampling.set()
            sampler.join(2)
            everything = self.admin.tweets()
            truth = [t for t in everything if not t["text"].startswith(FOREIGN_MARK)]
            verdict = check(expected(self.plan, self.media_files), self.snapshot(), truth)
            faults = self.fault_counts()
            metrics = {
                "posts": verdict.posts, "faults": sum(faults.values()), "duplicates": verdict.duplicates,
                "lost": verdict.lost, "false_failures": verdict.false_failures,
                "missing_tweet_ids": verdict.missing_tweet_ids, "unexpected": verdict.unexpected,
                "unknown_left": verdict.unknown_left, "broken_threads": verdict.broken_threads,
                "texts_altered": verdict.texts_altered, "media_wrong": verdict.media_wrong,
                "media_posts": verdict.media_posts,
                "seconds_to_quiet": None if quiet_at is None else round(quiet_at - t_calm, 1),
                "max_connections": self.max_connections,
            }
            tap = dict(self.tap.counts)
            during = tap_at_calm or tap
            details = {
                **verdict.details,
                "faults_by_kind": faults,
                "foreign_posts_ignored": len(everything) - len(truth),
                "fault_phase_s": round((t_calm or time.monotonic()) - t0, 1),
                "total_s": round((quiet_at or time.monotonic()) - t0, 1),
                "quiet": quiet_at is not None,
                "operations": tap,
                "post_ops_faulted_share": round(tap.get("post_ops_faulted", 0) / max(1, tap.get("post_ops", 0)), 3),
                "post_ops_faulted_share_while_faults_on": round(
                    during.get("post_ops_faulted", 0) / max(1, during.get("post_ops", 0)), 3),
                "post_ops_while_faults_on": during.get("post_ops", 0),
                "all_ops_faulted_share": round(
                    (tap.get("post_ops_faulted", 0) + tap.get("page_ops_faulted", 0))
                    / max(1, tap.get("post_ops", 0) + tap.get("page_ops", 0)), 3),
                "runs": dict(self.runs),
                "run_log": self.run_log,
                "skewed_runs": self.skewed_runs,
                "human_steps": len(self.operator.steps),
                "human_step_log": self.operator.steps,
                "alerts_received": len(self.operator.received),
                "alerts_received_by_operator": self.operator.received[:50],
                "fault_schedule": self.schedule.summary(),
                "fault_schedule_names": sorted(self.sandbox_faults.params),
                "sandbox_faults_not_in_this_sandbox": sorted(set(cfg.sandbox_faults) - set(self.sandbox_faults.params)),
                "kill_on_post_poster_not_found": self.unmatched_posters,
                "connection_bound": self.connection_bound(),
                **self.extra_details(),
            }
            return {"metrics": metrics, "details": details}
        finally:
            self.teardown()

    def fault_counts(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        counts.update({f"sandbox_{k}": v for k, v in self.sandbox_faults.fired.items()})
        counts.update(self.db_chaos.counts)
        counts["sigkill"] = self.runs.get("sigkill", 0) + self.runs.get("sigkill_after_post", 0)
        counts["sigkill_after_post"] = self.runs.get("sigkill_after_post", 0)
        if self.tap.counts.get("timeline_bursts"):
            counts["timeline_burst"] = self.tap.counts["timeline_bursts"]
        return dict(counts)

    def teardown(self) -> None:
        for w in getattr(self, "workers", []):
            self.kill(w, "end")
        for name in ("operator", "db_chaos"):
            if hasattr(self, name):
                getattr(self, name).close()
        if hasattr(self, "proxy"):
            self.proxy.close()
        if hasattr(self, "server"):
            self.server.stop()
        from pipeline.db import dispose_engines
        from tests import pg

        dispose_engines()
        if hasattr(self, "db_url") and not os.environ.get("CHAOS_KEEP_DB"):
            pg.drop_database(self.pg_admin, self.db_url)


class PipelineRunner(SideRunner):
    side = "pipeline"


class BaselineRunner(SideRunner):
    side = "baseline"
    app_name = "naive-baseline"

    def create_schema(self) -> None:
        from bench import naive

        naive.create_schema(self.engine)

    def register(self, handle: str, path: Path) -> None:
        from bench import naive

        naive.add_account(self.engine, handle, str(path))

    def enqueue(self) -> None:
        from bench import naive

        naive.enqueue(self.engine, [(p.key, p.account, p.parts, p.offset_s) for p in self.plan], self.media_files)
        self.item_keys = {p.key: p.key for p in self.plan}

    def counts_sql(self) -> str:
        lease = float(self.cfg.lease_s)
        return ("SELECT count(*) FILTER (WHERE attempts = 0 AND state = 'pending'), "
                "count(*) FILTER (WHERE (state = 'pending' AND scheduled_at <= now()) "
                f"  OR (state = 'posting' AND updated_at < now() - interval '{lease} seconds')), "
                "count(*) FILTER (WHERE state IN ('pending', 'posting')), "
                "coalesce(sum(attempts), 0) + count(*) FILTER (WHERE state = 'posted') FROM naive_items")

    def journal_pending(self) -> int:
        return 0

    def snapshot(self) -> list[dict[str, Any]]:
        from bench import naive

        return naive.snapshot(self.engine)

    def extra_details(self) -> dict[str, Any]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            attempts = conn.execute(sa.text("SELECT coalesce(sum(attempts), 0) FROM naive_items")).scalar_one()
        return {"item_claims": int(attempts), "model": "bench/naive.py: a MODEL of the predecessor, not its code"}


RUNNERS: dict[str, type[SideRunner]] = {"pipeline": PipelineRunner, "baseline": BaselineRunner}


def run_side(side: str, cfg: ChaosConfig, workdir: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one side in this process and return {"metrics": ..., "details": ...}."""
    own = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{side}-"))
    try:
        return RUNNERS[side](cfg, make_plan(cfg), workdir, log).run()
    finally:
        if own and not os.environ.get("CHAOS_KEEP_DIR"):
            shutil.rmtree(workdir, ignore_errors=True)


def side_main(argv: list[str]) -> int:
    """`python -m bench.chaos _side --side S --config FILE --out FILE`: one side in its own process."""
    parser = argparse.ArgumentParser(prog="bench.chaos _side")
    parser.add_argument("--side", choices=sorted(RUNNERS), required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    cfg = ChaosConfig.from_dict(json.loads(Path(args.config).read_text()))
    result = run_side(args.side, cfg, Path(args.workdir), log=lambda m: print(m, flush=True))
    Path(args.out).write_text(json.dumps(result, default=str))
    return 0


