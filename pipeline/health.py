"""`pipeline health`: the external liveness probe the Dagster daemon cannot be for itself.

It reads only durable state (the app database, the journal file, the daemon's heartbeat age) and grades
each finding ok / degraded / unhealthy. Exit code: 0 healthy, 1 degraded, 2 unhealthy; one reason a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import integrity, jobruns, queue
from pipeline import schema as s
from pipeline.daemons import WHAT_IT_RUNS, DaemonProbe
from pipeline.db import DatabaseError, db_now, get_engine
from pipeline.migrate import require_schema
from pipeline.posting import journal_for
from pipeline.redact import redact
from pipeline.resolve import approval_hint
from pipeline.settings import Settings

OK, DEGRADED, UNHEALTHY = "ok", "degraded", "unhealthy"
_RANK = {OK: 0, DEGRADED: 1, UNHEALTHY: 2}
POST_BACKLOG_MAX_S = 1800.0  # due items waiting longer than this mean posting has stopped


@dataclass
class Finding:
    name: str
    status: str
    reason: str
    value: Any = None


@dataclass
class HealthReport:
    findings: list[Finding] = field(default_factory=list)

    def add(self, name: str, status: str, reason: str, value: Any = None) -> None:
        self.findings.append(Finding(name, status, redact(reason), value))

    @property
    def status(self) -> str:
        return max((f.status for f in self.findings), key=_RANK.__getitem__, default=OK)

    @property
    def exit_code(self) -> int:
        return _RANK[self.status]

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code,
                "checks": [{"name": f.name, "status": f.status, "reason": f.reason, "value": f.value}
                           for f in self.findings]}

    def render(self) -> str:
        lines = [f"{self.status.upper()}"]
        lines += [f"  {f.status:<9} {f.name:<16} {f.reason}" for f in self.findings]
        return "\n".join(lines)


def _age_s(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def check_health(settings: Settings, daemons: DaemonProbe | None = None, daemon_expected: bool = True,
                 engine: Engine | None = None) -> HealthReport:
    """Every check, graded. `daemons` is the per-daemon probe (pipeline.daemons.probe_daemons)."""
    report = HealthReport()
    try:
        engine = engine or get_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
        require_schema(engine)
    except DatabaseError as exc:
        report.add("database", UNHEALTHY, str(exc))
        return report
    report.add("database", OK, "reachable, schema current")
    with engine.connect() as conn:
        now = db_now(conn)
    _queue(report, engine, settings, now)
    _jobs(report, engine, settings, now)
    _breakers(report, engine)
    _items(report, engine, settings)
    _integrity(report, engine)
    _media(report, engine, settings)
    _journal(report, settings)
    _daemons(report, daemons or DaemonProbe(), daemon_expected, settings.daemon_max_heartbeat_age_s)
    return report


def check_local(settings: Settings, engine: Engine | None = None,
                config_problems: Sequence[str] = ()) -> HealthReport:
    """Only the checks that need neither Dagster nor a working database to report: is every setting valid,
    does the database answer, is the journal empty. A sensor runs these every tick (sensors/local.py) so a
    database outage or an invalid setting is alerted."""
    report = HealthReport()
    check_configuration(report, config_problems)
    try:
        engine = engine or get_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
        require_schema(engine)
        report.add("database", OK, "reachable, schema current")
    except (DatabaseError, sa.exc.SQLAlchemyError) as exc:
        report.add("database", UNHEALTHY, str(exc) if isinstance(exc, DatabaseError)
                   else f"database unreachable or failing ({type(exc).__name__}); check PIPELINE_DATABASE_URL")
    _journal(report, settings)
    return report


def check_configuration(report: HealthReport, problems: Sequence[str]) -> None:
    """Invalid settings (pipeline.settings.load_settings_lenient): every run that reads them fails until fixed."""
    if problems:
        report.add("configuration", UNHEALTHY, "; ".join(problems))
    else:
        report.add("configuration", OK, "every setting valid")


def check_daemons(probe: DaemonProbe, max_age_s: float) -> HealthReport:
    """Only the per-daemon liveness lines (daemon_health_sensor)."""
    report = HealthReport()
    _daemons(report, probe, True, max_age_s)
    return report


def _queue(report: HealthReport, engine: Engine, settings: Settings, now: datetime) -> None:
    accounts = [a["handle"] for a in queue.list_accounts(engine)]
    if not accounts:
        report.add("accounts", DEGRADED, "no accounts registered; add one with `pipeline accounts add` or `pipeline login`")
        return
    depth = queue.due_within(engine, settings.plan_window_min)
    short = {s_.account: s_.buffer for s_ in integrity.queue_shortfall(engine, settings, now)}
    for handle in accounts:
        if handle in short:
            report.add(f"queue:{handle}", DEGRADED,
                       f"{short[handle]} items planned, target {settings.plan_min_items} "
                       f"(due within {settings.plan_window_min} min: {depth.get(handle, 0)})"
                       + approval_hint(engine, [handle]), depth.get(handle, 0))
        else:
            report.add(f"queue:{handle}", OK, f"{depth.get(handle, 0)} due within {settings.plan_window_min} min",
                       depth.get(handle, 0))
    with engine.connect() as conn:
        oldest_due = conn.execute(sa.select(sa.func.min(s.content_items.c.scheduled_at))
                                  .where(s.content_items.c.state == s.QUEUED, s.content_items.c.scheduled_at <= now)
                                  ).scalar()
    waiting = _age_s(now, oldest_due)
    if waiting is not None and waiting > POST_BACKLOG_MAX_S:
        report.add("backlog", UNHEALTHY, f"an item has been due for {waiting / 60:.0f} min without being posted; "
                   "is the daemon running (`pipeline-daemon`) and the breaker closed?", waiting)


def _jobs(report: HealthReport, engine: Engine, settings: Settings, now: datetime) -> None:
    plan_age = _age_s(now, jobruns.last_success(engine, "plan"))
    max_age = settings.plan_max_age_min * 60
    if plan_age is None:
        report.add("last_plan", DEGRADED, "no successful plan run recorded yet", None)
    elif plan_age > max_age:
        report.add("last_plan", UNHEALTHY, f"last successful plan {plan_age / 60:.0f} min ago "
                   f"(allowed {settings.plan_max_age_min} min): planning has stopped", plan_age)
    else:
        report.add("last_plan", OK, f"{plan_age / 60:.0f} min ago", plan_age)
    for job in (jobruns.PLAN, jobruns.POST):
        last = jobruns.last_run(engine, job)
        if last is not None and not last["ok"]:
            error = (last.get("detail") or {}).get("error", "no error recorded")
            report.add(f"{job}_failing", DEGRADED, f"the last {job} run failed {_age_s(now, last['finished_at']) / 60:.0f} "
                       f"min ago: {error} (see the run-failure alert; plan runs are retried by Dagster)", error)
    post_age = _age_s(now, jobruns.last_success(engine, "post"))
    report.add("last_post_run", OK if post_age is not None else DEGRADED,
               f"{post_age / 60:.0f} min ago" if post_age is not None else "no successful post run recorded yet",
               post_age)


def _breakers(report: HealthReport, engine: Engine) -> None:
    from pipeline.breaker import Breaker

    for row in Breaker(engine).status():
        if row["state"] == "forced_open":
            report.add(f"breaker:{row['account']}", UNHEALTHY, f"forced open: {row['reason']}", row["state"])
        elif row["state"] in ("open", "half_open"):
            report.add(f"breaker:{row['account']}", DEGRADED, f"{row['state']} until {row['open_until']}: {row['reason']}",
                       row["state"])


def _items(report: HealthReport, engine: Engine, settings: Settings) -> None:
    counts = queue.count_by_state(engine)
    review = counts.get(s.NEEDS_REVIEW, 0)
    if review:
        report.add("needs_review", DEGRADED, f"{review} items need a human (`pipeline queue --state needs_review`)", review)
    stuck = integrity.stuck_items(engine, settings.lease_s)
    if stuck.total:
        report.add("stuck", DEGRADED, f"{stuck.total} items posting/unknown beyond the lease", stuck.total)
    unknown = counts.get(s.UNKNOWN, 0)
    report.add("unknown", OK if not unknown else DEGRADED, f"{unknown} items awaiting reconciliation", unknown)


def _integrity(report: HealthReport, engine: Engine) -> None:
    duplicates = integrity.duplicate_posts(engine)
    missing = integrity.missing_tweet_ids(engine)
    report.add("duplicates", OK if duplicates.ok else UNHEALTHY, f"{duplicates.total} duplicate posts", duplicates.total)
    report.add("missing_ids", OK if missing.ok else UNHEALTHY, f"{missing.total} posted items missing tweet ids",
               missing.total)


def _media(report: HealthReport, engine: Engine, settings: Settings) -> None:
    found = integrity.missing_media(engine, settings.state_path)
    if found.ok:
        report.add("media", OK, "every queued item's media is in the store, unchanged", 0)
        return
    first = found.rows[0]
    report.add("media", UNHEALTHY, f"{found.total} items that may still post have missing or altered media "
               f"(item {first['item_id']}: {first['problem']}); cancel them or enqueue them again", found.total)


def _journal(report: HealthReport, settings: Settings) -> None:
    pending = len(journal_for(settings).pending())
    if pending:
        report.add("journal", UNHEALTHY, f"{pending} posted tweet ids not yet in the database; the next post run "
                   "replays them (is the database reachable?)", pending)
    else:
        report.add("journal", OK, "empty", 0)


def _daemons(report: HealthReport, probe: DaemonProbe, expected: bool, max_age_s: float) -> None:
    """One line per daemon: a dead scheduler thread is not hidden by the run queue's fresh heartbeat."""
    if not expected:
        return
    if probe.error:
        report.add("daemon", UNHEALTHY, probe.error, None)
        return
    if not probe.daemons or all(d.heartbeat_age_s is None for d in probe.daemons):
        report.add("daemon", UNHEALTHY, "no Dagster daemon heartbeat: schedules and sensors are not running; "
                   "start `pipeline-daemon` (see README, Production)", None)
        return
    for p in probe.processes:  # a dead process is told once, with every daemon it ran
        runs = ", ".join(t.lower() for t in p.types)
        if p.alive:
            report.add(f"daemon-process:{p.name}", OK, f"pid {p.pid} alive, runs {runs}", p.pid)
        else:
            stops = "; ".join(WHAT_IT_RUNS[t] for t in p.types if t in WHAT_IT_RUNS) or "its daemons' work stops"
            report.add(f"daemon-process:{p.name}", UNHEALTHY,
                       f"pipeline-daemon (pid {p.pid}) is gone, its lock {p.path} is free: {runs} stopped: {stops}; "
                       "restart `pipeline-daemon` (retired on purpose? delete that lock file)", p.pid)
    for d in probe.daemons:
        name = f"daemon:{d.daemon_type.lower()}"
        stops = WHAT_IT_RUNS.get(d.daemon_type, "its work does not happen")
        if d.process_gone:
            continue
        if d.starting(max_age_s):
            report.add(name, OK, f"its process started {d.process.started_age_s:.0f} s ago; first heartbeat pending",
                       d.heartbeat_age_s)
            continue
        if d.heartbeat_age_s is None:
            report.add(name, UNHEALTHY, f"never sent a heartbeat: {stops}; restart `pipeline-daemon`", None)
        elif d.down(max_age_s):
            report.add(name, UNHEALTHY, f"last heartbeat {d.heartbeat_age_s:.0f} s ago: this daemon has stopped "
                       f"(limit {d.limit_s(max_age_s):.0f} s), {stops}; restart `pipeline-daemon`", d.heartbeat_age_s)
        elif d.errors:
            report.add(name, DEGRADED, f"alive (heartbeat {d.heartbeat_age_s:.0f} s ago) but reported errors in the "
                       f"last 5 min: {d.errors[0]} (see `dagster-daemon debug heartbeat-dump` and the daemon log)",
                       d.heartbeat_age_s)
        else:
            report.add(name, OK, f"heartbeat {d.heartbeat_age_s:.0f} s ago", d.heartbeat_age_s)
