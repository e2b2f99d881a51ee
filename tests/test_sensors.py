"""Sensors on a real Dagster instance and real databases: each fires on its condition, stays quiet without it,
and raises one alert per condition (not one per tick) to a real local webhook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from pipeline import schema as s
from pipeline.db import db_now
from resources import Alerts, Database
from sensors import plan_health as plan_health_module
from sensors.common import REQUESTED_BY_TAG
from sensors.plan_health import plan_health_sensor
from sensors.queue import empty_queue_sensor
from sensors.run_failure import run_failure_alert_sensor
from sensors.stuck import stuck_work_sensor
from tests.dagster_helpers import (
    Webhook,
    add_account,
    add_item,
    alert_rows,
    serve_webhook,
    set_breaker,
    temp_instance,
)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with serve_webhook() as hook:
        yield hook


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with temp_instance() as inst:
        yield inst


@pytest.fixture
def resources(db_url: str, webhook: Webhook) -> dict:
    database = Database(url=db_url)
    return {"database": database, "alerts": Alerts(database=database, webhook_url=webhook.url, cooldown_s=3600)}


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, resources: dict, cursor: str | None = None):
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return sensor.evaluate_tick(context)


# --------------------------------------------------------------------------- empty_queue_sensor


def test_empty_queue_requests_a_plan_then_alerts_once_if_it_stays_empty(
        engine: sa.Engine, instance: dg.DagsterInstance, resources: dict, webhook: Webhook) -> None:
    add_account(engine, "alice")
    add_item(engine, "alice", ["only one queued"], s.QUEUED)  # 1 of plan_min_items=3

    first = tick(empty_queue_sensor, instance, resources)
    [request] = first.run_requests
    assert request.run_key.startswith("empty-queue:")
    assert request.tags[REQUESTED_BY_TAG] == "empty_queue_sensor" and request.tags["pipeline/job"] == "plan"
    assert webhook.received == []  # the requested plan usually fixes it: no alert yet
    since = json.loads(first.cursor)["since"]

    # Still short PIPELINE_EMPTY_QUEUE_ALERT_AFTER_S later (the plan did not help): one alert...
    later = json.dumps({"since": since - 601})  # the default is 600 s
    second = tick(empty_queue_sensor, instance, resources, cursor=later)
    assert [r.run_key for r in second.run_requests] == [request.run_key]  # same bucket: no second plan
    assert len(webhook.received) == 1
    assert "Content queue below target" in webhook.texts[0] and "@alice 1/3" in webhook.texts[0]
    # ...and not one per tick.
    tick(empty_queue_sensor, instance, resources, cursor=second.cursor)
    assert len(webhook.received) == 1
    assert [a["key"] for a in alert_rows(engine)] == ["empty-queue:alice"]


def test_empty_queue_alert_names_items_waiting_for_approval(
        engine: sa.Engine, instance: dg.DagsterInstance, resources: dict, webhook: Webhook) -> None:
    add_account(engine, "alice")
    for n in range(3):  # the planner filled the buffer, but nobody approved: nothing will post
        add_item(engine, "alice", [f"planned {n}"], s.PENDING_APPROVAL)
    first = tick(empty_queue_sensor, instance, resources)
    tick(empty_queue_sensor, instance, resources,
         cursor=json.dumps({"since": json.loads(first.cursor)["since"] - 601}))
    [text] = webhook.texts
    assert "@alice 0/3" in text and "3 planned item(s) wait for approval" in text
    assert "pipeline approve --all" in text


def test_empty_queue_quiet_when_the_buffer_is_full(engine: sa.Engine, instance: dg.DagsterInstance,
                                                   resources: dict, webhook: Webhook) -> None:
    add_account(engine, "alice")
    with engine.connect() as conn:
        now = db_now(conn)
    for i in range(3):
        add_item(engine, "alice", [f"due soon {i}"], s.QUEUED, scheduled_at=now + timedelta(minutes=10 * i))
    result = tick(empty_queue_sensor, instance, resources, cursor=json.dumps({"since": 0}))
    assert result.run_requests == [] and "target" in result.skip_message
    assert result.cursor is None  # the episode is over
    assert webhook.received == []


def test_empty_queue_counts_planner_items_beyond_the_window(engine: sa.Engine, instance: dg.DagsterInstance,
                                                            resources: dict) -> None:
    """Quiet hours push planned items past the window; they still count (the planner's own buffer rule)."""
    add_account(engine, "alice")
    with engine.connect() as conn:
        now = db_now(conn)
    for i in range(3):
        add_item(engine, "alice", [f"after quiet hours {i}"], s.QUEUED, source="planner",
                 scheduled_at=now + timedelta(hours=8, minutes=30 * i))
    assert tick(empty_queue_sensor, instance, resources).run_requests == []
    add_item(engine, "alice", ["operator item far ahead"], s.QUEUED, scheduled_at=now + timedelta(days=2))
    with engine.begin() as conn:
        conn.execute(s.content_items.update().where(s.content_items.c.source == "planner").values(state=s.CANCELLED))
    assert len(tick(empty_queue_sensor, instance, resources).run_requests) == 1


def test_empty_queue_waits_for_a_plan_run_in_progress(engine: sa.Engine, instance: dg.DagsterInstance,
                                                      resources: dict) -> None:
    add_account(engine, "alice")
    instance.add_run(dg.DagsterRun(job_name="plan_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED))
    result = tick(empty_queue_sensor, instance, resources)
    assert result.run_requests == [] and "already queued or running" in result.skip_message


def test_empty_queue_without_accounts_is_quiet(instance: dg.DagsterInstance, resources: dict) -> None:
    assert tick(empty_queue_sensor, instance, resources).run_requests == []


# --------------------------------------------------------------------------- plan_health_sensor


def fake_plan_run(instance: dg.DagsterInstance, resources: dict, enqueued: int, fail: bool = False,
                  tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """A real run of a job named plan_job that materialises generated_content with `enqueued` metadata and runs
    the real `plan_produced_content` check."""
    from assets.checks import plan_produced_content

    @dg.asset(name="generated_content")
    def stand_in() -> dg.MaterializeResult:
        if fail:
            raise RuntimeError("generator unavailable")
        return dg.MaterializeResult(metadata={"enqueued": enqueued})

    defs = dg.Definitions(assets=[stand_in], asset_checks=[plan_produced_content],
                          jobs=[dg.define_asset_job("plan_job", selection=[stand_in])],
                          resources={"database": resources["database"]})
    return defs.resolve_job_def("plan_job").execute_in_process(instance=instance, raise_on_error=False, tags=tags)


def test_plan_health_never_ran(engine: sa.Engine, instance: dg.DagsterInstance, resources: dict,
                               webhook: Webhook) -> None:
    add_account(engine, "alice")
    result = tick(plan_health_sensor, instance, resources)
    assert [r.run_key for r in result.run_requests] == ["plan-health:stale:never"]
    assert len(webhook.received) == 1 and "never run" in webhook.texts[0]


def test_plan_health_quiet_after_a_recent_productive_plan(engine: sa.Engine, instance: dg.DagsterInstance,
                                                          resources: dict, webhook: Webhook) -> None:
    add_account(engine, "alice")
    add_item(engine, "alice", ["queued"], s.QUEUED)
    assert fake_plan_run(instance, resources, enqueued=3).success
    result = tick(plan_health_sensor, instance, resources)
    assert result.run_requests == [] and "produced content" in result.skip_message
    assert webhook.received == []


def test_plan_health_stale_plan_alerts_once_and_requests_one_run(
        engine: sa.Engine, instance: dg.DagsterInstance, resources: dict, webhook: Webhook,
        monkeypatch: pytest.MonkeyPatch) -> None:
    add_account(engine, "alice")
    add_item(engine, "alice", ["queued"], s.QUEUED)
    run = fake_plan_run(instance, resources, enqueued=2)
    later = plan_health_module.utcnow() + timedelta(minutes=181)  # PIPELINE_PLAN_MAX_AGE_MIN is 180
    monkeypatch.setattr(plan_health_module, "utcnow", lambda: later)

    first = tick(plan_health_sensor, instance, resources)
    assert [r.run_key for r in first.run_requests] == [f"plan-health:stale:{run.run_id}"]
    assert len(webhook.received) == 1 and "Planning has stopped" in webhook.texts[0]
    second = tick(plan_health_sensor, instance, resources)
    assert [r.run_key for r in second.run_requests] == [f"plan-health:stale:{run.run_id}"]  # same key: one run
    assert len(webhook.received) == 1  # one condition, one alert


def test_plan_health_only_failed_plans(engine: sa.Engine, instance: dg.DagsterInstance, resources: dict,
                                       webhook: Webhook) -> None:
    add_account(engine, "alice")
    assert not fake_plan_run(instance, resources, enqueued=0, fail=True).success
    result = tick(plan_health_sensor, instance, resources)
    assert len(result.run_requests) == 1
    assert "none planned generated_content" in webhook.texts[0]


def test_plan_health_judges_the_asset_not_the_job(engine: sa.Engine, instance: dg.DagsterInstance,
                                                  resources: dict, webhook: Webhook) -> None:
    """A failing performance report (another job) after a good plan is not "planning has stopped"."""
    add_account(engine, "alice")
    add_item(engine, "alice", ["queued"], s.QUEUED)
    assert fake_plan_run(instance, resources, enqueued=3).success

    @dg.asset(name="content_performance")
    def broken_report() -> None:
        raise RuntimeError("pandas blew up")

    report_job = dg.Definitions(assets=[broken_report], jobs=[dg.define_asset_job("performance_job")])
    assert not report_job.resolve_job_def("performance_job").execute_in_process(
        instance=instance, raise_on_error=False).success
    result = tick(plan_health_sensor, instance, resources)
    assert result.run_requests == [] and webhook.received == []


def test_plan_health_plan_that_produced_nothing(engine: sa.Engine, instance: dg.DagsterInstance,
                                                resources: dict, webhook: Webhook) -> None:
    add_account(engine, "alice")  # nothing queued at all
    fake_plan_run(instance, resources, enqueued=0)
    result = tick(plan_health_sensor, instance, resources)
    assert result.run_requests == []  # no hand-made retry: the empty-queue sensor asks for plans
    assert len(webhook.received) == 1 and "Planning produces nothing" in webhook.texts[0]
    assert "@alice" in webhook.texts[0]

    fake_plan_run(instance, resources, enqueued=0)  # still nothing: the alert stays de-duplicated
    tick(plan_health_sensor, instance, resources)
    assert len(webhook.received) == 1


def test_plan_health_nothing_produced_but_queue_full_is_fine(engine: sa.Engine, instance: dg.DagsterInstance,
                                                             resources: dict, webhook: Webhook) -> None:
    add_account(engine, "alice")
    add_item(engine, "alice", ["still queued"], s.QUEUED)
    fake_plan_run(instance, resources, enqueued=0)
    assert tick(plan_health_sensor, instance, resources).run_requests == []
    assert webhook.received == []

# --------------------------------------------------------------------------- stuck_work_sensor


def test_stuck_work_quiet_on_healthy_state(engine: sa.Engine, instance: dg.DagsterInstance, resources: dict,
                                           webhook: Webhook) -> None:
    add_account(engine, "alice")
    with engine.connect() as conn:
        now = db_now(conn)
    set_breaker(engine, "alice", "open", opened_ago=timedelta(minutes=10))  # open, but not for long
    add_item(engine, "alice", ["posting now"], s.POSTING, lease_expires_at=now + timedelta(minutes=4))
    add_item(engine, "alice", ["lease just ran out"], s.POSTING, lease_expires_at=now - timedelta(minutes=1))
    result = tick(stuck_work_sensor, instance, resources)
    assert result.run_requests == [] and "no open breakers" in result.skip_message
    assert webhook.received == []


def test_every_forced_open_breaker_is_told_once_per_account_and_episode(
        engine: sa.Engine, instance: dg.DagsterInstance, resources: dict, webhook: Webhook) -> None:
    """Two accounts forced open within one cool-down: both are told, each once, naming the fix; forced open
    again after a reset (a new episode) is told again."""
    add_account(engine, "alice")
    add_account(engine, "bob")
    add_account(engine, "carol")
    set_breaker(engine, "alice", "forced_open", opened_ago=timedelta(minutes=1), open_until_in=None,
                reason="auth: 326 locked")
    set_breaker(engine, "bob", "forced_open", opened_ago=timedelta(minutes=1), open_until_in=None,
                reason="automation_block: 226")
    set_breaker(engine, "carol", "closed", opened_ago=None)
    tick(stuck_work_sensor, instance, resources)
    tick(stuck_work_sensor, instance, resources)
    assert len(webhook.received) == 2
    by_account = {("@alice" in text): text for text in webhook.texts}
    assert "pipeline login --account alice" in by_account[True]
    assert "@bob" in by_account[False] and "pipeline breaker reset --account bob" in by_account[False]
    assert "carol" not in " ".join(webhook.texts)
    set_breaker(engine, "alice", "forced_open", opened_ago=timedelta(seconds=5), open_until_in=None,
                reason="auth: 326 locked")  # reset, then forced open again: a new episode
    tick(stuck_work_sensor, instance, resources)
    assert len(webhook.received) == 3 and "@alice" in webhook.texts[2]


def test_stuck_work_alerts_on_a_long_open_breaker_once(engine: sa.Engine, instance: dg.DagsterInstance,
                                                        resources: dict, webhook: Webhook) -> None:
    add_account(engine, "alice")
    set_breaker(engine, "alice", "open", opened_ago=timedelta(hours=2), open_until_in=timedelta(hours=1),
                reason="weighted failure rate")
    tick(stuck_work_sensor, instance, resources)
    tick(stuck_work_sensor, instance, resources)
    assert len(webhook.received) == 1
    assert "@alice" in webhook.texts[0] and "open for" in webhook.texts[0]
    assert alert_rows(engine)[0]["key"] == "breaker-open:alice"


def test_stuck_work_alerts_on_stuck_items(engine: sa.Engine, instance: dg.DagsterInstance, resources: dict,
                                          webhook: Webhook) -> None:
    add_account(engine, "alice")
    with engine.connect() as conn:
        now = db_now(conn)
    dead = add_item(engine, "alice", ["worker died"], s.POSTING, lease_expires_at=now - timedelta(minutes=6))
    limbo = add_item(engine, "alice", ["never reconciled"], s.UNKNOWN, updated_at=now - timedelta(minutes=11))
    result = tick(stuck_work_sensor, instance, resources)
    assert "2 stuck items" in result.skip_message
    assert len(webhook.received) == 1
    assert f"| {dead} |" in webhook.texts[0] and f"| {limbo} |" in webhook.texts[0]
    tick(stuck_work_sensor, instance, resources)
    assert len(webhook.received) == 1


# --------------------------------------------------------------------------- run_failure_alert_sensor


def failing_run(instance: dg.DagsterInstance, message: str,
                tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    @dg.op
    def click_post() -> None:
        raise RuntimeError(message)

    @dg.job(name="post_job")
    def post_job() -> None:
        click_post()

    result = post_job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    assert not result.success
    return result


def alert_failure(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, resources: dict) -> None:
    with dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),  # as the daemon reads it: with the retry tags
        dagster_event=result.get_run_failure_event(),
        resources=resources,
    ) as context:
        run_failure_alert_sensor(context.for_run_failure())


def test_run_failure_sends_one_webhook_with_the_error(engine: sa.Engine, instance: dg.DagsterInstance,
                                                      resources: dict, webhook: Webhook) -> None:
    result = failing_run(instance, "browser exploded on item 42")
    alert_failure(instance, result, resources)

    assert len(webhook.received) == 1
    text = webhook.texts[0]
    assert text.startswith("[ERROR] Dagster run failed: post_job")
    assert result.run_id in text and "browser exploded on item 42" in text and "click_post" in text
    [row] = alert_rows(engine)
    assert row["key"].startswith("run-failure:post_job:") and row["delivered"] is True
    assert webhook.url not in row["body"]

    # The same failure again (a schedule retrying every 5 min) is the same condition: no second webhook...
    again = failing_run(instance, "browser exploded on item 43")
    alert_failure(instance, again, resources)
    assert len(webhook.received) == 1
    # ...a different failure is news.
    other = failing_run(instance, "database unreachable")
    alert_failure(instance, other, resources)
    assert len(webhook.received) == 2 and "database unreachable" in webhook.texts[1]


def test_run_failure_waits_for_the_last_retry(engine: sa.Engine, resources: dict, webhook: Webhook) -> None:
    """With Dagster's run retries on, a failure that will be re-executed is not alerted; the last one is."""
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 0}}) as instance:
        first = failing_run(instance, "generator timed out", tags={"dagster/max_retries": "2"})
        assert instance.get_run_by_id(first.run_id).tags["dagster/will_retry"] == "true"
        alert_failure(instance, first, resources)
        assert webhook.received == []
        last = failing_run(instance, "generator timed out", tags={"dagster/max_retries": "0"})  # no retry left
        assert instance.get_run_by_id(last.run_id).tags["dagster/will_retry"] == "false"
        alert_failure(instance, last, resources)
        assert len(webhook.received) == 1 and "generator timed out" in webhook.texts[0]


def test_daemon_health_names_the_daemon_that_stopped(engine: sa.Engine, instance: dg.DagsterInstance,
                                                     resources: dict, webhook: Webhook) -> None:
    """The scheduler's heartbeat is 10 minutes old while the others beat: one alert naming SCHEDULER."""
    import time

    from dagster._daemon.types import DaemonHeartbeat

    from sensors.daemons import daemon_health_sensor

    for daemon_type in instance.get_required_daemon_types():
        age = 600 if daemon_type == "SCHEDULER" else 1
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - age, daemon_type, None, None))
    result = tick(daemon_health_sensor, instance, resources)
    assert "SCHEDULER" in result.skip_message
    tick(daemon_health_sensor, instance, resources)
    assert len(webhook.received) == 1
    assert "SCHEDULER is down" in webhook.texts[0] and "schedules" in webhook.texts[0]


def test_check_sensor_and_health_agree_on_stuck(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance,
                                                resources: dict, webhook: Webhook, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """One definition of stuck: the item just past its lease is stuck for none of them, the one past two leases
    for all three."""
    from assets.checks import no_stuck_items
    from pipeline.daemons import DaemonProbe
    from pipeline.health import check_health
    from pipeline.settings import load_settings

    add_account(engine, "alice")
    with engine.connect() as conn:
        now = db_now(conn)
    add_item(engine, "alice", ["lease just ran out"], s.POSTING, lease_expires_at=now - timedelta(minutes=1))
    assert no_stuck_items(database=resources["database"]).passed
    assert "stuck" not in {f.name for f in check_health(load_settings(env={"PIPELINE_DATABASE_URL": db_url,
                                                                            "PIPELINE_STATE_DIR": str(tmp_path)}),
                                                        DaemonProbe.beating(), engine=engine).findings}
    assert "no open breakers or stuck items" in tick(stuck_work_sensor, instance, resources).skip_message

    dead = add_item(engine, "alice", ["worker died"], s.POSTING, lease_expires_at=now - timedelta(minutes=6))
    assert not no_stuck_items(database=resources["database"]).passed
    report = check_health(load_settings(env={"PIPELINE_DATABASE_URL": db_url, "PIPELINE_STATE_DIR": str(tmp_path)}),
                          DaemonProbe.beating(), engine=engine)
    assert {f.name: f.value for f in report.findings}["stuck"] == 1
    assert "1 stuck items" in tick(stuck_work_sensor, instance, resources).skip_message
    assert f"| {dead} |" in webhook.texts[0]
