"""`plan_health_sensor`: planning stopped, or plans that produce nothing -> alert (and a plan run when stale).

Judged on the `generated_content` asset, not on a job: its latest materialisation (stale after
PIPELINE_PLAN_MAX_AGE_MIN, the same limit as its FreshnessPolicy and as `pipeline health`, which reads the
plan row the same asset writes) and its `plan_produced_content` check. Never in-memory timestamps: the
predecessor's plan job stopped silently because its health lived in a process that had died. Failed plan runs
are retried by Dagster's run retries (dagster.yaml), not here.
"""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from assets.checks import PLAN_PRODUCED_CONTENT
from pipeline.resolve import approval_hint
from pipeline.settings import load_settings
from resources import Alerts, Database
from sensors.common import PLAN_JOB, SENSOR_INTERVAL_S, active_run, ever_ran, sensor_tags, utcnow

NAME = "plan_health_sensor"
CONTENT = dg.AssetKey("generated_content")
PRODUCED_CHECK = dg.AssetCheckKey(CONTENT, PLAN_PRODUCED_CONTENT)


def latest_plan(instance: dg.DagsterInstance) -> dg.EventLogEntry | None:
    """The newest materialisation of generated_content, whichever run made it."""
    return instance.get_latest_materialization_event(CONTENT)


def failed_produced_check(instance: dg.DagsterInstance, run_id: str) -> dict | None:
    """The metadata of `plan_produced_content` when it failed for the plan of `run_id`, else None."""
    record = instance.get_latest_asset_check_evaluation_record(PRODUCED_CHECK)
    if record is None or record.run_id != run_id or record.status != AssetCheckExecutionRecordStatus.FAILED:
        return None
    evaluation = record.event.dagster_event.event_specific_data if record.event and record.event.dagster_event else None
    metadata = getattr(evaluation, "metadata", {}) or {}
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


@dg.sensor(
    name=NAME,
    job_name=PLAN_JOB,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="generated_content older than PIPELINE_PLAN_MAX_AGE_MIN, or its plan_produced_content check failed.",
)
def plan_health_sensor(context: dg.SensorEvaluationContext, alerts: Alerts, database: Database):
    settings = load_settings()
    instance = context.instance
    sink = alerts.sink(context.log)
    max_age_min = settings.plan_max_age_min
    findings: list[str] = []
    requests: list[dg.RunRequest] = []

    last = latest_plan(instance)
    age_min = (utcnow().timestamp() - last.timestamp) / 60 if last else None
    if last is None or age_min > max_age_min:
        what = (f"generated_content was last planned {age_min:.0f} min ago (run {last.run_id[:8]})" if last
                else ("plan_job has runs but none planned generated_content" if ever_ran(instance, PLAN_JOB)
                      else "plan_job has never run on this instance"))
        findings.append("stale")
        never = last is None and not ever_ran(instance, PLAN_JOB)  # a fresh install: say so, less loudly
        sink.send(key="plan-health:stale", title="Planning has not run yet" if never else "Planning has stopped",
                  body=f"{what}; the limit is {max_age_min} min (PIPELINE_PLAN_MAX_AGE_MIN). Requesting a plan run. "
                       "Check `pipeline health` (is the scheduler daemon alive?) and that plan_schedule is on.",
                  severity="warning" if never else "error")
        if not active_run(instance, PLAN_JOB):
            requests.append(dg.RunRequest(run_key=f"plan-health:stale:{last.run_id if last else 'never'}",
                                          tags=sensor_tags(NAME, "plan")))

    failed = failed_produced_check(instance, last.run_id) if last else None
    if failed is not None:
        empty = list(failed.get("accounts_without_queue") or [])
        findings.append("empty")
        sink.send(key="plan-health:empty:" + ",".join(empty), title="Planning produces nothing",
                  body=f"The last plan run ({last.run_id[:8]}) enqueued 0 items and "
                       f"{', '.join('@' + a for a in empty)} have nothing queued: they will go quiet. "
                       "Check the drafts library / LLM generator (budget spent?) and the planner caps, then see `pipeline queue`."
                       + approval_hint(database.engine, empty),
                  severity="error")

    if requests:
        return requests
    if findings:
        return dg.SkipReason(f"plan unhealthy ({', '.join(findings)}); alerted")
    return dg.SkipReason(f"generated_content planned {age_min:.0f} min ago; its plan produced content")
