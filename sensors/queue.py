"""`empty_queue_sensor`: the queue for the next planning window is below target -> plan now, alert if it stays so.

Reads only the queue table (one grouped, indexed query). The plan run it requests carries a run key per
15-minute bucket, so a persisting shortfall asks for at most one plan every 15 minutes, and none while a
plan run is already queued or running. The alert waits PIPELINE_EMPTY_QUEUE_ALERT_AFTER_S (the requested plan usually
fixes the queue first), or only until a plan run started after the shortfall has ended with the queue still
short; it is de-duplicated by key in the alerts table and resolved when the queue is full again, so the
next shortfall is told again.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from pipeline import integrity
from pipeline.resolve import approval_hint
from pipeline.settings import load_settings
from resources import Alerts, Database
from sensors.common import PLAN_JOB, SENSOR_INTERVAL_S, active_run, sensor_tags, utcnow

REQUEST_BUCKET_S = 900
ALERT_PREFIX = "empty-queue:"


def plan_finished_since(instance: dg.DagsterInstance, since: float) -> bool:
    """A plan run created after the shortfall was first seen has ended (well or not) and the queue is still
    short: planning did not fix it, so waiting longer only delays the alert."""
    return bool(instance.get_run_records(
        dg.RunsFilter(job_name=PLAN_JOB, statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE],
                      created_after=datetime.fromtimestamp(since, tz=UTC)), limit=1))


@dg.sensor(
    name="empty_queue_sensor",
    job_name=PLAN_JOB,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Queue for the next planning window below target: request plan_job; alert if it stays below.",
)
def empty_queue_sensor(context: dg.SensorEvaluationContext, database: Database, alerts: Alerts):
    settings = load_settings()
    now = utcnow()
    short = integrity.queue_shortfall(database.engine, settings)
    if not short:
        context.update_cursor(None)
        # Healed: re-arm, so the next shortfall is told at once and not hidden in the last alert's cool-down.
        alerts.sink(context.log).resolve(ALERT_PREFIX)
        return dg.SkipReason("every account has its target queued for the next window")

    state = json.loads(context.cursor) if context.cursor else {}
    since = float(state.get("since", now.timestamp()))
    context.update_cursor(json.dumps({"since": since}))
    detail = ", ".join(f"@{s.account} {s.buffer}/{s.target}" for s in short)
    if (now.timestamp() - since >= settings.empty_queue_alert_after_s
            or plan_finished_since(context.instance, since)):
        body = (f"Queued items in the planning buffer (due within {settings.plan_window_min} min, or placed by the "
                f"planner) are below target for: {detail} "
                f"(for {int((now.timestamp() - since) // 60)} min, despite plan runs). "
                "Check the plan runs and the generator (drafts exhausted? LLM budget spent?)."
                + approval_hint(database.engine, [s.account for s in short]))
        alerts.sink(context.log).send(
            key=ALERT_PREFIX + ",".join(s.account for s in short),
            title="Content queue below target", body=body, severity="warning",
        )
    if active_run(context.instance, PLAN_JOB):
        return dg.SkipReason(f"queue below target ({detail}); a plan run is already queued or running")
    bucket = int(now.timestamp() // REQUEST_BUCKET_S)
    return dg.RunRequest(run_key=f"empty-queue:{bucket}", tags=sensor_tags("empty_queue_sensor", "plan"))
