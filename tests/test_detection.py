"""Detection: what cannot alert for itself is alerted anyway. The database cut by a real proxy in front of the
real PostgreSQL server, a journal file with an unrecorded tweet id, dead daemons in a real Dagster instance;
alerts received by a real local HTTP webhook, told once, re-armed when healed, the webhook URL never logged."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from pipeline.alerts import LEDGER_FILE, AlertLedger, AlertSink
from pipeline.journal import Journal
from resources import Alerts, Database
from sandbox.dbproxy import FaultProxy
from sensors.local import local_state_sensor
from tests.dagster_helpers import Webhook, alert_rows, serve_webhook, temp_instance

SECRET = "hook-secret-4711"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with serve_webhook() as hook:
        yield hook


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with temp_instance() as inst:
        yield inst


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, resources: dict) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return sensor.evaluate_tick(context)


def hook_url(webhook: Webhook) -> str:
    return webhook.url.rstrip("/") + "/" + SECRET


def state_dir() -> Path:
    return Path(os.environ["PIPELINE_STATE_DIR"])  # per test (conftest)


# --------------------------------------------------------------------------- the ledger (pure logic, real file)


def test_ledger_claims_once_releases_and_stays_private(tmp_path: Path) -> None:
    ledger = AlertLedger(tmp_path / "state" / LEDGER_FILE)
    assert ledger.claim("health:database", 3600, now=1000.0) is True
    assert ledger.claim("health:database", 3600, now=1001.0) is False
    assert ledger.claim("health:database", 3600, now=5000.0) is True  # a reminder after the cool-down
    assert ledger.claim("health:journal", 3600) is True
    assert stat.S_IMODE(os.stat(ledger.path).st_mode) == 0o600
    assert ledger.release_prefix("health:daemon") == []
    assert ledger.release("health:database") == ["health:database"]
    assert set(ledger.active()) == {"health:journal"}
    assert ledger.claim("health:database", 3600) is True  # re-armed
    ledger.path.write_text("{torn")
    assert ledger.active() == {}  # a torn file costs at most one repeated alert


# --------------------------------------------------------------------------- database down


def test_database_down_is_alerted_once_without_the_database_and_rearmed(
        pg_proxy: tuple[FaultProxy, str], webhook: Webhook, instance: dg.DagsterInstance,
        caplog: pytest.LogCaptureFixture) -> None:
    proxy, url = pg_proxy
    database = Database(url=url)
    resources = {"database": database, "alerts": Alerts(database=database, webhook_url=hook_url(webhook),
                                                        cooldown_s=3600)}
    assert "database answers" in tick(local_state_sensor, instance, resources).skip_message
    assert webhook.received == []

    proxy.cut()
    started = time.monotonic()
    result = tick(local_state_sensor, instance, resources)
    assert time.monotonic() - started < 30
    assert "alerted: health:database" in result.skip_message
    assert len(webhook.received) == 1
    text = webhook.texts[0]
    assert text.startswith("[CRITICAL] Database unreachable") and "To fix:" in text
    assert "PIPELINE_DATABASE_URL" in text
    tick(local_state_sensor, instance, resources)  # second tick, still down: told once
    assert len(webhook.received) == 1
    assert "health:database" in AlertLedger.in_state_dir(state_dir()).active()

    proxy.restore()
    tick(local_state_sensor, instance, resources)  # healed: re-armed, nothing sent
    assert len(webhook.received) == 1
    assert AlertLedger.in_state_dir(state_dir()).active() == {}
    proxy.cut()
    tick(local_state_sensor, instance, resources)  # down again: told again
    assert len(webhook.received) == 2
    proxy.restore()
    assert SECRET not in caplog.text and SECRET not in AlertLedger.in_state_dir(state_dir()).path.read_text()


# --------------------------------------------------------------------------- journal


def test_non_empty_journal_is_alerted_once_and_rearmed(db_url: str, webhook: Webhook,
                                                       instance: dg.DagsterInstance) -> None:
    database = Database(url=db_url)
    resources = {"database": database, "alerts": Alerts(database=database, webhook_url=hook_url(webhook),
                                                        cooldown_s=3600)}
    journal = Journal(state_dir() / "journal.jsonl")
    journal.append({"item_id": 1, "part_index": 0, "attempt_id": 0, "tweet_id": "7"})
    tick(local_state_sensor, instance, resources)
    tick(local_state_sensor, instance, resources)
    assert len(webhook.received) == 1
    assert "[CRITICAL] Posted tweets not yet recorded" in webhook.texts[0] and "To fix:" in webhook.texts[0]
    # The database is up: the alert is in the table's history too.
    assert [r["key"] for r in alert_rows(database.engine)] == ["health:journal"]

    journal.path.unlink()
    tick(local_state_sensor, instance, resources)
    assert [r["key"] for r in alert_rows(database.engine)] == ["health:journal~resolved"]
    journal.append({"item_id": 2, "part_index": 0, "attempt_id": 0, "tweet_id": "8"})
    tick(local_state_sensor, instance, resources)
    assert len(webhook.received) == 2


# --------------------------------------------------------------------------- an invalid setting


def test_an_invalid_setting_is_alerted_by_the_sensor_and_the_watchdog_instead_of_silencing_them(
        db_url: str, webhook: Webhook, instance: dg.DagsterInstance, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A drafts folder that disappeared made every settings read refuse: the code location did not load, so no
    sensor ran and nobody was told. Now the definitions load, the sensor and `pipeline health --alert` name
    the variable and the fix, once, and re-arm when it is fixed; the runs still refuse the setting."""
    import subprocess
    import sys

    from pipeline.settings import ConfigError, load_settings, load_settings_lenient
    from tests.test_cli import run

    missing = str(tmp_path / "drafts-gone")
    monkeypatch.setenv("PIPELINE_DRAFTS_DIR", missing)
    with pytest.raises(ConfigError, match="PIPELINE_DRAFTS_DIR"):
        load_settings()  # what every run reads: it still refuses
    settings, problems = load_settings_lenient()
    assert settings.drafts_dir == "" and len(problems) == 1 and "PIPELINE_DRAFTS_DIR" in problems[0]
    with pytest.raises(ConfigError, match="PIPELINE_DATABASE_URL"):  # never another database by default
        load_settings_lenient({"PIPELINE_DATABASE_URL": "mysql://nope", "PIPELINE_DRAFTS_DIR": missing})

    loaded = subprocess.run([sys.executable, "-c", "from pipeline.definitions import defs; "
                             "print(defs.get_sensor_def('local_state_sensor').name)"],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert loaded.returncode == 0 and "local_state_sensor" in loaded.stdout, loaded.stderr[-1500:]

    database = Database(url=db_url)
    resources = {"database": database, "alerts": Alerts(database=database, webhook_url=hook_url(webhook))}
    result = tick(local_state_sensor, instance, resources)
    assert "PIPELINE_DRAFTS_DIR" in result.skip_message
    env = {**os.environ, "PIPELINE_DATABASE_URL": db_url, "PIPELINE_ALERT_WEBHOOK_URL": hook_url(webhook)}
    out = run("health", "--alert", "--no-daemon", env=env)  # the watchdog: same condition, not told twice
    assert out.returncode == 2 and "PIPELINE_DRAFTS_DIR" in out.stdout
    assert len(webhook.received) == 1
    assert webhook.texts[0].startswith("[CRITICAL] A setting is invalid") and "PIPELINE_DRAFTS_DIR" in webhook.texts[0]
    assert "pipeline config" in webhook.texts[0] and SECRET not in out.stdout + out.stderr

    Path(missing).mkdir()  # fixed: re-armed, and told again when it breaks again
    assert "settings valid" in tick(local_state_sensor, instance, resources).skip_message
    Path(missing).rmdir()
    tick(local_state_sensor, instance, resources)
    assert len(webhook.received) == 2


# --------------------------------------------------------------------------- resolve re-arms the table's alerts


def test_resolve_rearms_an_alert_within_its_cooldown(engine: sa.Engine, webhook: Webhook) -> None:
    sink = AlertSink(engine, webhook_url=webhook.url, cooldown_s=3600,
                     ledger=AlertLedger.in_state_dir(state_dir()))
    assert sink.send("empty-queue:alice", "Queue low", "0/3") is True
    assert sink.send("empty-queue:alice", "Queue low", "0/3") is False
    assert sink.resolve("empty-queue:") == 1
    assert sink.resolve("empty-queue:") == 0  # nothing active any more
    assert sink.send("empty-queue:alice", "Queue low", "0/3") is True
    assert len(webhook.received) == 2


# --------------------------------------------------------------------------- dead daemons: sensor and watchdog


class DaemonWorld:
    """An app database, a Dagster instance whose daemons' heartbeats the test writes, and the watchdog's env."""

    def __init__(self, tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
        from pipeline.db import get_engine
        from pipeline.migrate import upgrade

        db = f"sqlite:///{tmp_path / 'p.db'}"
        upgrade(get_engine(db))
        home = tmp_path / "dagster_home"
        home.mkdir()
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        self.env = {**os.environ, "PIPELINE_DATABASE_URL": db, "PIPELINE_ALERT_WEBHOOK_URL": hook_url(webhook)}
        database = Database(url=db)
        self.resources = {"database": database, "alerts": Alerts(database=database, webhook_url=hook_url(webhook))}

    def beat(self, old: set[str]) -> None:
        """Every daemon beats now, except those in `old`, whose last beat was 10 minutes ago."""
        from dagster._daemon.types import DaemonHeartbeat

        with dg.DagsterInstance.get() as instance:
            for daemon_type in instance.get_required_daemon_types():
                age = 600 if daemon_type in old else 1
                instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - age, daemon_type, None, None))

    def sensor_tick(self) -> None:
        from sensors.daemons import daemon_health_sensor

        with dg.DagsterInstance.get() as instance:
            tick(daemon_health_sensor, instance, self.resources)

    def watchdog(self, *args: str) -> Any:
        from tests.test_cli import run

        return run("health", "--alert", *args, env=self.env)


@pytest.fixture
def daemon_world(tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> DaemonWorld:
    return DaemonWorld(tmp_path, webhook, monkeypatch)


def test_dead_sensor_daemon_is_told_by_the_watchdog_once_and_shared_with_the_sensor(
        daemon_world: DaemonWorld, webhook: Webhook) -> None:
    """A dead sensor daemon runs no sensor: `pipeline health --alert` (from cron) tells it, once per outage, and
    the scheduler death the daemon_health_sensor already told is not told again by the watchdog."""
    world = daemon_world
    world.beat({"SCHEDULER"})
    world.sensor_tick()
    assert [t.splitlines()[0] for t in webhook.texts] == ["[CRITICAL] Dagster daemon SCHEDULER is down"]

    world.beat({"SCHEDULER", "SENSOR"})
    assert world.watchdog("--json").returncode == 2
    out = world.watchdog()  # the next cron run: nothing new
    assert [t.splitlines()[0] for t in webhook.texts] == ["[CRITICAL] Dagster daemon SCHEDULER is down",
                                                         "[CRITICAL] Dagster daemon SENSOR is down"]
    assert "restart `pipeline-daemon`" in webhook.texts[1] and "To fix:" in webhook.texts[1]
    assert SECRET not in out.stdout + out.stderr

    world.beat(set())  # both restarted: re-armed
    assert world.watchdog().returncode != 2
    assert AlertLedger.in_state_dir(state_dir()).active() == {}
    world.beat({"SENSOR"})
    world.watchdog()
    assert len(webhook.received) == 3 and "SENSOR is down" in webhook.texts[2]


def test_a_killed_daemon_process_is_told_at_the_next_look_while_its_heartbeats_are_still_fresh(
        daemon_world: DaemonWorld, webhook: Webhook) -> None:
    """The daemon process (here a child holding the daemon lock for the scheduler and the run queue) is killed
    with SIGKILL, as the OOM killer would: its heartbeats are seconds old, yet the watchdog tells it at once and
    health names the process, not a heartbeat limit later (the detection bench's 75-133 s)."""
    from tests.test_daemons import locked_child

    world = daemon_world
    world.beat(set())
    with locked_child(state_dir(), "daemon", ["SCHEDULER", "QUEUED_RUN_COORDINATOR"]) as child:
        alive = world.watchdog()  # alive: nothing told
        assert alive.returncode != 2 and "daemon-process:daemon" in alive.stdout and "alive" in alive.stdout
        assert webhook.texts == []
        child.kill()
        child.wait(10)
        world.sensor_tick()
        out = world.watchdog()
    assert out.returncode == 2
    assert "daemon-process:daemon" in out.stdout and "is gone" in out.stdout and "restart `pipeline-daemon`" in out.stdout
    assert "scheduler, queued_run_coordinator stopped" in out.stdout
    # Told once, for the process, by whichever looked first (the sensor); the watchdog does not repeat it.
    assert [t.splitlines()[0] for t in webhook.texts] == ["[CRITICAL] The pipeline-daemon process daemon is down"]
    assert "schedules (plan, post, metrics) do not fire" in webhook.texts[0]


# --------------------------------------------------------------------------- empty queue: fast and re-armed


def _empty_queue_resources(db_url: str, webhook: Webhook) -> dict:
    database = Database(url=db_url)
    return {"database": database, "alerts": Alerts(database=database, webhook_url=webhook.url, cooldown_s=3600)}


def test_empty_queue_alerts_once_a_plan_run_did_not_help(db_url: str, webhook: Webhook,
                                                         instance: dg.DagsterInstance) -> None:
    """The bench's empty queue: the requested plan run ended and the queue is still short -> the next tick
    alerts, without waiting out PIPELINE_EMPTY_QUEUE_ALERT_AFTER_S (600 s by default)."""
    from sensors.queue import empty_queue_sensor
    from tests.dagster_helpers import add_account

    resources = _empty_queue_resources(db_url, webhook)
    add_account(resources["database"].engine, "alice")
    first = tick_cursor(empty_queue_sensor, instance, resources, None)
    assert first.run_requests and webhook.received == []
    tick_cursor(empty_queue_sensor, instance, resources, first.cursor)
    assert webhook.received == []  # no plan run has ended yet: wait

    @dg.op
    def plan_nothing() -> None:
        pass

    @dg.job(name="plan_job")
    def plan_job() -> None:
        plan_nothing()

    assert plan_job.execute_in_process(instance=instance).success
    tick_cursor(empty_queue_sensor, instance, resources, first.cursor)
    assert len(webhook.received) == 1 and "Content queue below target" in webhook.texts[0]


def test_empty_queue_alert_is_rearmed_when_the_queue_is_full_again(db_url: str, webhook: Webhook,
                                                                     instance: dg.DagsterInstance) -> None:
    from pipeline import schema as s
    from sensors.queue import empty_queue_sensor
    from tests.dagster_helpers import add_account, add_item

    resources = _empty_queue_resources(db_url, webhook)
    engine = resources["database"].engine
    add_account(engine, "alice")
    old = json_cursor(time.time() - 601)
    tick_cursor(empty_queue_sensor, instance, resources, old)
    tick_cursor(empty_queue_sensor, instance, resources, old)
    assert len(webhook.received) == 1
    items = [add_item(engine, "alice", [f"planned {n}"], s.QUEUED) for n in range(3)]
    assert tick_cursor(empty_queue_sensor, instance, resources, old).cursor is None  # healed
    with engine.begin() as conn:
        conn.execute(s.content_items.update().where(s.content_items.c.id.in_(items)).values(state=s.CANCELLED))
    tick_cursor(empty_queue_sensor, instance, resources, old)  # short again, within the hour's cool-down
    assert len(webhook.received) == 2


def json_cursor(since: float) -> str:
    import json

    return json.dumps({"since": since})


def tick_cursor(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, resources: dict,
                cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return sensor.evaluate_tick(context)


# --------------------------------------------------------------------------- plan job failing: told at once


def test_plan_failure_is_told_at_the_first_failure_and_its_retries_are_not(db_url: str, webhook: Webhook) -> None:
    from sensors.run_failure import run_failure_alert_sensor

    database = Database(url=db_url)
    resources = {"database": database, "alerts": Alerts(database=database, webhook_url=webhook.url, cooldown_s=3600)}

    @dg.op
    def generate() -> None:
        raise RuntimeError("drafts folder /tmp/x does not exist")

    @dg.job(name="plan_job")
    def plan_job() -> None:
        generate()

    def alert(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
        with dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert_sensor", dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id), dagster_event=result.get_run_failure_event(),
                resources=resources) as context:
            run_failure_alert_sensor(context.for_run_failure())

    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 0}}) as instance:
        first = plan_job.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/max_retries": "2"})
        assert instance.get_run_by_id(first.run_id).tags["dagster/will_retry"] == "true"
        alert(instance, first)
        assert len(webhook.received) == 1
        text = webhook.texts[0]
        assert text.startswith("[ERROR] Dagster run failed: plan_job") and "does not exist" in text
        assert "Dagster retries this run" in text and "To fix:" in text
        retry = plan_job.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/max_retries": "0"})
        alert(instance, retry)  # the last retry, failing the same way: already told
        assert len(webhook.received) == 1
