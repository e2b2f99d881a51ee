"""Detection: a simulated day against the sandbox and a real Dagster instance with its daemons running.

A healthy stretch, then one incident at a time, each healed before the next. For each incident: seconds until
the alert that tells it (its title names the incident, not a consequence such as a short queue) reaches the
webhook, and until `pipeline health` exits non-zero; for the healthy stretch and
after each heal, the alerts sent (false alarms). Everything is the real thing: the daemons (one process per
daemon group, so each can be stopped alone), the sensors, the run queue, run retries, `pipeline health` as a
subprocess, the watchdog `pipeline health --alert` every tick (as cron would run it), the sandbox in place of x.com, PostgreSQL behind a proxy that can cut it. Only the intervals are
short (PIPELINE_SENSOR_INTERVAL_S, the lease, the daemon heartbeat limit) so the day fits in minutes.

    .venv/bin/python -m bench.detection [--tick 15] [--time-budget 600] [--only breaker,stuck_unknown]

Goal: every incident alerted within 2 sensor ticks, seen by health within 120 s, 0 false alarms, every alert
naming what to do. Results: bench/results/detection.json and .md. An incident that has no alert path, or was
not run within the time budget, is written as such.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import markdown_table, write_result

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("PIPELINE_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
# Daemon groups, one process each: the four the operator cares about alone, the rest together.
DAEMON_GROUPS = {"SCHEDULER": ["SCHEDULER"], "SENSOR": ["SENSOR"], "QUEUED_RUN_COORDINATOR": ["QUEUED_RUN_COORDINATOR"],
                 "MONITORING": ["MONITORING", "*"]}  # "*": every other daemon the instance requires
HEALTH_GOAL_S = 120.0
FIX_WORDS = ("pipeline ", "restart", "check", "log in", "update", "fix", "see ")


# --------------------------------------------------------------------------- a daemon group (child process)


def run_daemon_group(group: str) -> None:
    """`pipeline-daemon`, restricted to the group's daemon types (Dagster's controller with a chosen daemon list),
    holding the daemon lock under the group's name as `pipeline-daemon` holds it under "daemon"."""
    import dagster as dg
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.controller import create_daemon_of_type, daemon_controller_from_instance

    from pipeline.daemons import hold_daemon_lock
    from pipeline.settings import load_settings

    types = DAEMON_GROUPS[group]
    with dg.DagsterInstance.get() as instance:
        named = {t for group in DAEMON_GROUPS.values() for t in group}
        wanted = [t for t in instance.get_required_daemon_types() if t in types or ("*" in types and t not in named)]

        with hold_daemon_lock(load_settings().state_path, group, wanted), daemon_controller_from_instance(
            instance, workspace_load_target=WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")]),
            gen_daemons=lambda inst: [create_daemon_of_type(t, inst) for t in wanted],
        ) as controller:
            controller.check_daemon_loop()


# --------------------------------------------------------------------------- the world


class Webhook:
    """Receives the alerts (a Slack-compatible POST) and notes when each arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((time.time(), json.loads(body).get("text", "")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def since(self, t: float) -> list[tuple[float, str]]:
        return [(at, text) for at, text in self.received if at >= t]


class Day:
    def __init__(self, tick_s: int, workdir: Path) -> None:
        from pipeline import schema  # noqa: F401 - fail early when the project is not importable
        from sandbox.client import SandboxAdmin
        from sandbox.dbproxy import FaultProxy
        from sandbox.server import SandboxServer
        from tests import pg

        self.tick_s, self.dir = tick_s, workdir
        self.db_url = pg.create_database(ADMIN_URL, prefix="detection_bench")
        url = sa.make_url(self.db_url)
        self.proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
        self.app_url = url.set(port=self.proxy.port).render_as_string(hide_password=False)
        self.engine = sa.create_engine(self.db_url, poolclass=sa.pool.NullPool)
        self.sandbox_server = SandboxServer(port=0, seed=1)
        self.sandbox_server.start()
        self.sandbox = SandboxAdmin(self.sandbox_server.url)
        self.webhook = Webhook()
        self.drafts = workdir / "drafts"
        shutil.copytree(ROOT / "pipeline" / "drafts", self.drafts)
        self.home = workdir / "dagster_home"
        self.home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        self.state = workdir / "state"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")},
                    "DAGSTER_HOME": str(self.home), "PIPELINE_DATABASE_URL": self.app_url,
                    "PIPELINE_X_BASE_URL": self.sandbox.url, "PIPELINE_STATE_DIR": str(self.state),
                    "PIPELINE_ALERT_WEBHOOK_URL": self.webhook.url, "PIPELINE_DRAFTS_DIR": str(self.drafts),
                    "PIPELINE_SENSOR_INTERVAL_S": str(tick_s), "PIPELINE_EMPTY_QUEUE_ALERT_AFTER_S": str(tick_s),
                    "PIPELINE_LEASE_S": str(tick_s),
                    "PIPELINE_PLAN_MAX_AGE_MIN": "180", "PIPELINE_NAV_TIMEOUT_S": "10"}
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.onsets: dict[str, Any] = {}  # incident -> when it last began by its own definition (incidents())
        # Create the instance's storage once, before several daemon processes race to.
        subprocess.run([str(BIN / "dagster"), "instance", "migrate"], env=self.env, cwd=ROOT, capture_output=True,
                       timeout=120, check=True)
        self.cli("db", "upgrade")
        session = self.state / "sessions" / "alice.json"
        from pipeline.browser import write_secret_file

        write_secret_file(session, self.sandbox.create_account("alice"))
        self.cli("accounts", "add", "alice", "--storage-state", str(session))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([str(BIN / "pipeline"), *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                             timeout=180)
        if check and out.returncode != 0:
            raise RuntimeError(f"pipeline {' '.join(args)}: {out.stderr or out.stdout}")
        return out

    def health(self) -> tuple[int, list[str]]:
        out = self.cli("health", "--json", check=False)
        try:
            checks = json.loads(out.stdout)["checks"]
        except (ValueError, KeyError):
            return out.returncode, [out.stderr.strip()[-200:]]
        return out.returncode, [f"{c['name']}: {c['reason']}" for c in checks if c["status"] != "ok"]

    def start_daemon(self, group: str) -> None:
        log = open(self.dir / f"daemon-{group}.log", "ab")  # noqa: SIM115 - the child owns it
        self.daemons[group] = subprocess.Popen(
            [sys.executable, "-m", "bench.detection", "--daemon-group", group],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop_daemon(self, group: str) -> None:
        proc = self.daemons.pop(group)
        os.killpg(proc.pid, signal.SIGKILL)  # as a crash: no goodbye heartbeat
        proc.wait(30)

    def start_watchdog(self) -> None:
        """`pipeline health --alert` every tick, as the README's systemd timer / cron line runs it in production:
        the alert path for what no sensor can tell (a dead sensor daemon)."""
        self._watchdog_stop = threading.Event()

        def loop() -> None:
            while not self._watchdog_stop.is_set():
                started = time.time()
                try:
                    self.cli("health", "--alert", check=False)
                except subprocess.TimeoutExpired:
                    pass
                self._watchdog_stop.wait(max(0.0, self.tick_s - (time.time() - started)))

        self._watchdog = threading.Thread(target=loop, daemon=True)
        self._watchdog.start()

    def launch(self, job: str) -> None:
        out = subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(ROOT / "workspace.yaml"), "-j", job],
                             env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise RuntimeError(f"dagster job launch -j {job}: {out.stderr[-800:]}")

    def sql(self, statement: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(statement), params)

    def close(self) -> None:
        from tests import pg

        if getattr(self, "_watchdog_stop", None) is not None:
            self._watchdog_stop.set()
        for group in list(self.daemons):
            self.stop_daemon(group)
        self.proxy.close()
        self.sandbox_server.stop()
        self.webhook.server.shutdown()
        self.engine.dispose()
        pg.drop_database(ADMIN_URL, self.db_url)


# --------------------------------------------------------------------------- incidents


def wait_healthy(day: Day, timeout_s: float) -> tuple[bool, float, list[str]]:
    start = time.time()
    reasons: list[str] = []
    while time.time() - start < timeout_s:
        code, reasons = day.health()
        if code == 0:
            return True, time.time() - start, []
        print(f"waiting for health 0 ({time.time() - start:.0f} s): {reasons}", file=sys.stderr, flush=True)
        time.sleep(3)
    return False, time.time() - start, reasons


def observe(day: Day, started: float, window_s: float, expect: str) -> dict[str, Any]:
    """Poll health and the webhook until health is non-zero and the alert that tells this incident (its title
    contains `expect`) has arrived, or the window closes. Other alerts meanwhile (a consequence, such as a
    short queue) are listed but do not count as telling it."""
    health_s, health_reason = None, None

    def telling() -> list[tuple[float, str]]:
        return [(at, text) for at, text in day.webhook.since(started) if expect.lower() in text.splitlines()[0].lower()]

    while time.time() - started < window_s:
        if health_s is None:
            code, reasons = day.health()
            if code != 0:
                health_s, health_reason = time.time() - started, "; ".join(reasons)[:300]
        if health_s is not None and telling():
            break
        time.sleep(2)
    told = telling()
    first = told[0] if told else None
    return {"alert_s": round(first[0] - started, 1) if first else None,
            "alert": first[1].splitlines()[0][:160] if first else None,
            "alert_names_fix": any(w in first[1].lower() for w in FIX_WORDS) if first else None,
            "alerts_in_window": [(round(at - started, 1), text.splitlines()[0][:120])
                                 for at, text in day.webhook.since(started)],
            "health_s": round(health_s, 1) if health_s is not None else None, "health": health_reason}


def incidents(day: Day) -> list[tuple[str, str, Any, Any]]:
    """(name, words in the title of the alert that tells it, inject, heal) in order."""
    from pipeline.breaker import Breaker
    from pipeline.failures import ErrorClass

    stash = day.dir / "drafts-away"

    def drafts_empty() -> None:
        day.drafts.rename(stash)
        day.drafts.mkdir()

    def drafts_back() -> None:
        shutil.rmtree(day.drafts, ignore_errors=True)
        stash.rename(day.drafts)

    def plan_failing() -> None:
        # A broken drafts file fails the plan run. (A missing drafts folder no longer does: the settings refuse
        # it when the definitions load, so the whole code location fails, not a run.)
        drafts_empty()
        (day.drafts / "broken.jsonl").write_text("{not json\n")
        day.launch("plan_job")

    def plan_nothing() -> None:
        drafts_empty()
        day.sql("UPDATE content_items SET state = 'cancelled' WHERE state = 'queued'")
        day.launch("plan_job")

    def heal_plan() -> None:
        drafts_back()
        day.launch("plan_job")

    def empty_queue() -> None:
        drafts_empty()
        day.sql("UPDATE content_items SET state = 'cancelled' WHERE state = 'queued'")

    def stuck_unknown() -> None:
        day.sql("UPDATE content_items SET state = 'unknown', updated_at = now() - make_interval(secs => :s) "
                "WHERE id = (SELECT min(id) FROM content_items WHERE state = 'queued')", s=2 * day.tick_s)

    def stuck_onset(t0: float) -> float:
        """Seconds after the injection at which the item was last stuck by the one definition (unknown and
        untouched for two leases): a posting run's reconciliation touching it un-sticks it for two leases."""
        with day.engine.connect() as conn:
            touched = conn.execute(sa.text("SELECT max(extract(epoch FROM updated_at)) FROM content_items "
                                           "WHERE state = 'unknown'")).scalar()
        return 0.0 if touched is None else max(0.0, float(touched) + 2 * day.tick_s - t0)

    day.onsets = {"item stuck unknown": stuck_onset}

    def heal_stuck() -> None:
        day.sql("UPDATE content_items SET state = 'cancelled' WHERE state = 'unknown'")
        day.launch("plan_job")  # the cancelled item leaves a gap the empty-queue sensor fills only every 15 min

    journal = day.state / "journal.jsonl"

    def journal_entry() -> None:
        from pipeline.journal import Journal

        Journal(journal).append({"item_id": 999999, "attempt_id": 0, "part": 0, "tweet_id": "1", "at": time.time()})

    out: list[tuple[str, str, Any, Any]] = [
        ("plan job failing", "run failed: plan_job", plan_failing, heal_plan),
        ("plan producing nothing", "planning produces nothing", plan_nothing, heal_plan),
        ("breaker forced open (auth)", "posting stopped (auth)",
         lambda: Breaker(day.engine).record_failure("alice", ErrorClass.AUTH), lambda: Breaker(day.engine).reset("alice")),
        ("item stuck unknown", "stuck in flight", stuck_unknown, heal_stuck),
        ("empty queue", "queue below target", empty_queue, heal_plan),
    ]
    out.append(("non-empty journal", "not yet recorded", journal_entry, lambda: journal.unlink(missing_ok=True)))
    for group in DAEMON_GROUPS:
        # The sensor daemon cannot report its own death: the watchdog (`pipeline health --alert`) does.
        out.append((f"daemon {group} stopped", f"process {group} is down",
                    lambda g=group: day.stop_daemon(g), lambda g=group: day.start_daemon(g)))
    # Last: while the database is down every sensor that reads it raises, and the sensor daemon's heartbeat
    # carries those errors for 5 minutes, which health reports (degraded) long after the database is back.
    out.append(("database down", "database unreachable", day.proxy.cut, day.proxy.restore))
    return out


# --------------------------------------------------------------------------- the day


def simulate(tick_s: int, healthy_s: float, time_budget_s: float, only: set[str] | None) -> dict[str, Any]:
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="detection-bench-"))
    day = Day(tick_s, workdir)
    rows: list[dict[str, Any]] = []
    try:
        for group in DAEMON_GROUPS:
            day.start_daemon(group)
        day.start_watchdog()
        day.launch("plan_job")
        day.launch("post_job")
        ok, warm_s, reasons = wait_healthy(day, 300)
        if not ok:
            return {"error": f"never healthy after {warm_s:.0f} s: {reasons}", "rows": rows}
        time.sleep(2 * tick_s)  # the warm-up's own alerts (first plan) settle
        quiet_from = time.time()
        time.sleep(healthy_s)
        rows.append({"incident": "healthy stretch", "window_s": round(time.time() - quiet_from),
                     "false_alarms": len(day.webhook.since(quiet_from)),
                     "false_alarm_titles": [t.splitlines()[0][:120] for _, t in day.webhook.since(quiet_from)]})
        for name, expect, inject, heal in incidents(day):
            if only and not any(o in name for o in only):
                continue
            if time.time() - started > time_budget_s:
                rows.append({"incident": name, "not_run": "time budget spent"})
                continue
            t0 = time.time()
            inject()
            window = 2 * tick_s + HEALTH_GOAL_S + 30
            row = {"incident": name, "alert_path": True, "expected_alert": expect, **observe(day, t0, window, expect)}
            if name in day.onsets:  # when the condition last began, by its definition (the goal counts from there)
                row["onset_s"] = round(day.onsets[name](t0), 1)
            heal()
            healed, heal_s, left = wait_healthy(day, 240)
            row["heal_s"] = round(heal_s, 1)
            if not healed:
                row["not_healed"] = left
            after = time.time()
            time.sleep(tick_s * 2)  # anything alerted now is about a condition that is over
            late = [t for _, t in day.webhook.since(after)]
            row["false_alarms_after_heal"] = len(late)
            row["false_alarm_titles"] = [t.splitlines()[0][:120] for t in late]
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        day.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"rows": rows, "warm_up_s": round(warm_s), "elapsed_s": round(time.time() - started)}


def judge(rows: list[dict[str, Any]], tick_s: int) -> dict[str, Any]:
    alert_goal = 2 * tick_s
    for r in rows:
        if "alert_path" not in r:
            continue
        r["alert_goal_met"] = bool(r["alert_path"] and r["alert_s"] is not None
                                   and r["alert_s"] - r.get("onset_s", 0.0) <= alert_goal)
        r["health_goal_met"] = r["health_s"] is not None and r["health_s"] <= HEALTH_GOAL_S
    false_alarms = sum(r.get("false_alarms", 0) + r.get("false_alarms_after_heal", 0) for r in rows)
    run = [r for r in rows if "alert_path" in r]
    return {"alert_goal_s": alert_goal, "health_goal_s": HEALTH_GOAL_S, "false_alarms": false_alarms,
            "incidents_run": len(run), "incidents_not_run": [r["incident"] for r in rows if "not_run" in r],
            "alert_goal_met": all(r["alert_goal_met"] for r in run),
            "health_goal_met": all(r["health_goal_met"] for r in run),
            "no_alert_path": [r["incident"] for r in run if not r["alert_path"]]}


def _alert_cell(r: dict[str, Any]) -> str:
    onset = r.get("onset_s") or 0.0
    return f"{r['alert_s']}" + (f" ({r['alert_s'] - onset:.1f} after it began again at {onset:.1f})" if onset else "")


def table(result: dict[str, Any]) -> str:
    rows = []
    for r in result["rows"]:
        if "false_alarms" in r:  # the healthy stretch
            rows.append({"incident": f"{r['incident']} ({r['window_s']} s)", "alert s": "-", "health s": "-",
                         "false alarms": r["false_alarms"]})
            continue
        rows.append({
            "incident": r["incident"],
            "alert s": r.get("not_run") or (_alert_cell(r) if r.get("alert_s") is not None else
                                                  ("no alert path" if r.get("alert_path") is False else "MISSED")),
            "alert": (r.get("alert") or "")[:70],
            "names fix": r.get("alert_names_fix", ""),
            "health s": r.get("health_s") if r.get("health_s") is not None else ("" if "not_run" in r else "MISSED"),
            "false alarms": r.get("false_alarms", r.get("false_alarms_after_heal", "")),
        })
    s = result["summary"]
    head = (f"Detection day: sensor tick {result['tick_s']} s (goal: alert within {s['alert_goal_s']} s, "
            f"health within {s['health_goal_s']:.0f} s, 0 false alarms). False alarms: {s['false_alarms']}. "
            f"Alert goal met: {s['alert_goal_met']}; health goal met: {s['health_goal_met']}.\n\n")
    return head + markdown_table(rows, ["incident", "alert s", "alert", "names fix", "health s", "false alarms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemon-group", help=argparse.SUPPRESS)
    parser.add_argument("--tick", type=int, default=15, help="PIPELINE_SENSOR_INTERVAL_S for the day")
    parser.add_argument("--healthy", type=float, default=60, help="seconds of the healthy stretch")
    parser.add_argument("--time-budget", type=float, default=600, help="start no incident after this many seconds")
    parser.add_argument("--only", help="comma-separated substrings of incident names")
    parser.add_argument("--name", default="detection", help="results file name under bench/results/")
    args = parser.parse_args()
    if args.daemon_group:
        run_daemon_group(args.daemon_group)
        return
    result = simulate(args.tick, args.healthy, args.time_budget, set(args.only.split(",")) if args.only else None)
    result["tick_s"] = args.tick
    result["summary"] = judge(result.get("rows", []), args.tick)
    result["command"] = " ".join(sys.argv[1:])
    write_result(args.name, result, table(result))


if __name__ == "__main__":
    main()
