"""`pipeline health` grades constructed states: each exit code, with the reason on its line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline import jobruns, queue
from pipeline import schema as s
from pipeline.breaker import Breaker
from pipeline.content import make_draft
from pipeline.daemons import DaemonProbe, DaemonState, probe_daemons
from pipeline.db import db_now, get_engine
from pipeline.failures import ErrorClass
from pipeline.health import check_health
from pipeline.journal import Journal
from pipeline.settings import Settings, load_settings


@pytest.fixture
def healthy(db_url: str, tmp_path: Path) -> tuple[Settings, sa.Engine]:
    """An account with a full queue, a fresh plan and post run: healthy when the daemon beats."""
    settings = load_settings(env={"PIPELINE_DATABASE_URL": db_url, "PIPELINE_STATE_DIR": str(tmp_path / "state")})
    engine = get_engine(db_url)
    queue.add_account(engine, "alice", "/x.json")
    with engine.connect() as conn:
        now = db_now(conn)
    queue.enqueue(engine, [(make_draft("alice", [f"planned {n}"]), now + timedelta(minutes=10 * (n + 1)))
                           for n in range(3)])
    jobruns.record(engine, "plan", True, 3, {})
    jobruns.record(engine, "post", True, 0, {})
    return settings, engine


BEATING = DaemonProbe.beating(5.0)


def names(report, status: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.name for f in report.findings if f.status == status}


def test_healthy_state_exits_0(healthy: tuple[Settings, sa.Engine]) -> None:
    settings, engine = healthy
    report = check_health(settings, daemons=BEATING, engine=engine)
    assert report.exit_code == 0, report.render()


def test_no_daemon_is_unhealthy(healthy: tuple[Settings, sa.Engine]) -> None:
    settings, engine = healthy
    report = check_health(settings, daemons=None, engine=engine)
    assert report.exit_code == 2 and "daemon" in names(report, "unhealthy")
    assert check_health(settings, daemons=DaemonProbe(error="probe failed"), engine=engine).exit_code == 2


def test_each_daemon_is_judged_on_its_own(healthy: tuple[Settings, sa.Engine]) -> None:
    """A dead sensor thread is named even though the run queue beat a second ago."""
    settings, engine = healthy
    probe = DaemonProbe([DaemonState("QUEUED_RUN_COORDINATOR", 1.0), DaemonState("SENSOR", 400.0),
                         DaemonState("SCHEDULER", 3.0, ["boom: cannot reach storage"])])
    report = check_health(settings, daemons=probe, engine=engine)
    assert report.exit_code == 2
    assert "daemon:sensor" in names(report, "unhealthy") and "daemon:scheduler" in names(report, "degraded")
    assert "daemon:queued_run_coordinator" not in names(report, "unhealthy")
    reasons = {f.name: f.reason for f in report.findings}
    assert "400 s ago" in reasons["daemon:sensor"] and "sensors" in reasons["daemon:sensor"]
    assert "boom: cannot reach storage" in reasons["daemon:scheduler"]


def test_probe_reads_each_daemon_from_a_real_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m resources.daemon` (a subprocess) reports the daemon whose heartbeat is old as down."""
    import time

    import dagster as dg
    from dagster._daemon.types import DaemonHeartbeat

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        for daemon_type in instance.get_required_daemon_types():
            age = 600 if daemon_type == "SCHEDULER" else 1
            instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - age, daemon_type, None, None))
    probe = probe_daemons(tmp_path / "state")
    assert probe.error is None
    by_type = {d.daemon_type: d for d in probe.daemons}
    assert by_type["SCHEDULER"].down(90) and by_type["SCHEDULER"].heartbeat_age_s >= 599
    assert not by_type["SENSOR"].down(90) and not by_type["QUEUED_RUN_COORDINATOR"].down(90)
    monkeypatch.delenv("DAGSTER_HOME")
    assert "DAGSTER_HOME is not set" in (probe_daemons(tmp_path / "state").error or "")


def test_stale_plan_is_unhealthy(healthy: tuple[Settings, sa.Engine]) -> None:
    settings, engine = healthy
    with engine.begin() as conn:
        conn.execute(s.job_runs.update().where(s.job_runs.c.job == "plan").values(
            finished_at=db_now(conn) - timedelta(minutes=settings.plan_max_age_min + 1)))
    report = check_health(settings, BEATING, engine=engine)
    assert report.exit_code == 2 and "last_plan" in names(report, "unhealthy")
    assert "planning has stopped" in report.render()


def test_open_breaker_is_degraded_and_forced_open_unhealthy(healthy: tuple[Settings, sa.Engine]) -> None:
    settings, engine = healthy
    breaker = Breaker(engine)
    breaker.record_failure("alice", ErrorClass.RATE_LIMITED)
    report = check_health(settings, BEATING, engine=engine)
    assert report.exit_code == 1 and "breaker:alice" in names(report, "degraded")
    breaker.record_failure("alice", ErrorClass.AUTH)
    assert check_health(settings, BEATING, engine=engine).exit_code == 2


def test_unknown_and_review_items_are_degraded(healthy: tuple[Settings, sa.Engine]) -> None:
    settings, engine = healthy
    item_id = queue.enqueue(engine, [(make_draft("alice", ["maybe posted"]), None)])[0]
    queue.claim(engine, "alice", worker="w")
    queue.mark_unknown(engine, item_id, queue.start_attempt(engine, item_id, 0, "w"), "unknown", "timeout")
    report = check_health(settings, BEATING, engine=engine)
    assert report.exit_code == 1 and "unknown" in names(report, "degraded")


def test_unsent_journal_entry_is_unhealthy(healthy: tuple[Settings, sa.Engine]) -> None:
    settings, engine = healthy
    Journal(settings.state_path / "journal.jsonl").append({"item_id": 1, "part_index": 0, "tweet_id": "1"})
    report = check_health(settings, BEATING, engine=engine)
    assert report.exit_code == 2 and "journal" in names(report, "unhealthy")


def test_cli_health_json_and_exit_code(tmp_path: Path) -> None:
    env = {**os.environ, "PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}",
           "DAGSTER_HOME": str(tmp_path / "dh"), "PIPELINE_STATE_DIR": str(tmp_path / "state")}
    (tmp_path / "dh").mkdir()
    pipeline = str(Path(sys.executable).parent / "pipeline")
    out = subprocess.run([pipeline, "health", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and json.loads(out.stdout)["checks"][0]["reason"].endswith("`pipeline db upgrade`")
    subprocess.run([pipeline, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    from tests.test_cli import run  # the same command in-process: a subprocess per call costs seconds

    out = run("health", env=env)
    assert out.returncode == 2  # no daemon has ever run here
    assert "no Dagster daemon heartbeat" in out.stdout
    out = run("health", "--no-daemon", env=env)
    assert out.returncode == 1 and "no accounts registered" in out.stdout


def test_a_failed_last_plan_run_is_degraded_until_one_succeeds(healthy: tuple[Settings, sa.Engine]) -> None:
    settings, engine = healthy
    jobruns.record(engine, jobruns.PLAN, False, 0, {"error": "DraftsLibraryError: drafts folder /x does not exist"})
    report = check_health(settings, BEATING, engine=engine)
    assert report.exit_code == 1 and "plan_failing" in names(report, "degraded")
    assert "drafts folder /x does not exist" in report.render()
    jobruns.record(engine, jobruns.PLAN, True, 3)
    assert check_health(settings, BEATING, engine=engine).exit_code == 0


def test_the_scheduler_is_judged_by_its_once_a_minute_beat(healthy: tuple[Settings, sa.Engine]) -> None:
    """The detection bench's false alarm: the scheduler beats once a minute, so 100 s is a late-ish beat for it
    but a dead sensor daemon; past its own limit (90 + 30 s) the scheduler is down too."""
    settings, engine = healthy
    probe = DaemonProbe([DaemonState("SCHEDULER", 100.0), DaemonState("SENSOR", 100.0),
                         DaemonState("QUEUED_RUN_COORDINATOR", 5.0), DaemonState("MONITORING", 5.0)])
    report = check_health(settings, daemons=probe, engine=engine)
    assert names(report, "unhealthy") == {"daemon:sensor"}, report.render()
    late = DaemonProbe([DaemonState("SCHEDULER", 125.0)])
    report = check_health(settings, daemons=late, engine=engine)
    assert "daemon:scheduler" in names(report, "unhealthy") and "limit 120 s" in report.render()


def test_dagster_scheduler_still_sleeps_to_the_next_minute() -> None:
    """The assumption behind BEAT_INTERVAL_S: Dagster's scheduler loop wakes (and so beats) once a minute."""
    from dagster._scheduler.scheduler import _get_next_scheduler_iteration_time

    from pipeline.daemons import BEAT_INTERVAL_S

    assert _get_next_scheduler_iteration_time(120.5) == 180.0
    assert BEAT_INTERVAL_S["SCHEDULER"] == 60.0
