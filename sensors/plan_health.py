"""`plan_health_sensor`: planning stopped, or plans that produce nothing -> alert (and a plan run).

Reads Dagster's run records (the last successful `plan_job` run), the metadata of the latest
`generated_content` materialisation (`enqueued`) and the queue. Never in-memory timestamps: the
predecessor's plan job stopped silently because its health lived in a process that had died.
"""

import dagster as dg

from pipeline import integrity
from pipeline.resolve import approval_hint
from pipeline.settings import load_settings
from resources import Alerts, Database
from sensors.common import (
    PLAN_JOB,
    REQUESTED_BY_TAG,
    active_run,
    ever_ran,
    finished_at,
    last_success,
    sensor_tags,
    utcnow,
)

NAME = "plan_health_sensor"


def latest_plan_output(instance: dg.DagsterInstance) -> tuple[str, int] | None:
    """(run_id, enqueued) of the newest generated_content materialisation."""
    result = instance.fetch_materializations(dg.AssetKey("generated_content"), limit=1)
    if not result.records:
        return None
    record = result.records[0]
    value = record.asset_materialization.metadata.get("enqueued") if record.asset_materialization else None
    enqueued = getattr(value, "value", value)
    return record.run_id, int(enqueued) if enqueued is not None else -1


@dg.sensor(
    name=NAME,
    job_name=PLAN_JOB,
    minimum_interval_seconds=120,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="No successful plan within PIPELINE_PLAN_MAX_AGE_MIN, or the last plan produced nothing while an account has nothing queued.",
)
def plan_health_sensor(context: dg.SensorEvaluationContext, database: Database, alerts: Alerts):
    settings = load_settings()
    instance = context.instance
    sink = alerts.sink(context.log)
    now = utcnow()
    max_age_min = settings.plan_max_age_min
    requests: list[dg.RunRequest] = []
    findings: list[str] = []

    last = last_success(instance, PLAN_JOB)
    age_min = (now - finished_at(last)).total_seconds() / 60 if last else None
    if last is None or age_min > max_age_min:
        what = (f"the last successful plan run ({last.dagster_run.run_id[:8]}) finished {age_min:.0f} min ago"
                if last else ("plan_job has runs but none succeeded" if ever_ran(instance, PLAN_JOB)
                              else "plan_job has never run on this instance"))
        findings.append("stale")
        never = last is None and not ever_ran(instance, PLAN_JOB)  # a fresh install: say so, less loudly
        sink.send(key="plan-health:stale", title="Planning has not run yet" if never else "Planning has stopped",
                  body=f"{what}; the limit is {max_age_min} min (PIPELINE_PLAN_MAX_AGE_MIN). Requesting a plan run. "
                       "Check that the daemon is running and the plan schedule is on.",
                  severity="warning" if never else "error")
        if not active_run(instance, PLAN_JOB):
            key = last.dagster_run.run_id if last else "never"
            requests.append(dg.RunRequest(run_key=f"plan-health:stale:{key}", tags=sensor_tags(NAME, "plan")))

    output = latest_plan_output(instance) if last is not None else None
    if output is not None and output[1] == 0:
        empty = integrity.accounts_without_queue(database.engine)
        if empty:
            run_id = output[0]
            findings.append("empty")
            sink.send(key="plan-health:empty:" + ",".join(empty), title="Planning produces nothing",
                      body=f"The last plan run ({run_id[:8]}) enqueued 0 items and "
                           f"{', '.join('@' + a for a in empty)} have nothing queued: they will go quiet. "
                           "Check the drafts library / LLM generator and the planner caps."
                           + approval_hint(database.engine, empty),
                      severity="error")
            run = instance.get_run_by_id(run_id)
            retried = run is not None and run.tags.get(REQUESTED_BY_TAG) == NAME
            if not retried and not requests and not active_run(instance, PLAN_JOB):
                requests.append(dg.RunRequest(run_key=f"plan-health:empty:{run_id}", tags=sensor_tags(NAME, "plan")))

    if requests:
        return requests
    if findings:
        return dg.SkipReason(f"plan unhealthy ({', '.join(findings)}); alerted, no new run requested")
    return dg.SkipReason(f"last plan {age_min:.0f} min ago produced {output[1] if output else '?'} items")
