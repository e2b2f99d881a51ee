"""`run_failure_alert_sensor`: every failed run that will not be retried -> an alert with the error; a plan run
at its first failure, retried or not.

Identical failures of the same job (same error text, numbers ignored) share an alert key, so a post_job
failing the same way every 5 minutes raises one alert per cool-down, not twelve an hour; a different
error, or the same one after the cool-down, alerts again.
"""

import hashlib
import re

import dagster as dg

from resources import Alerts
from sensors.common import PLAN_JOB, SENSOR_INTERVAL_S

WILL_RETRY_TAG = "dagster/will_retry"
# Jobs whose first failure is told even when Dagster will retry it: a failing plan run means the queue drains
# while the retries (often failing the same way: a missing drafts folder, a spent LLM budget) play out, and the
# identical failures of the retries share the first one's key, so the operator hears it once, at once.
ALERT_FIRST_FAILURE = {PLAN_JOB}

_NUMBERS = re.compile(r"\d+")


def failure_summary(context: dg.RunFailureSensorContext) -> tuple[str, str]:
    """(signature, body) of a failed run: the failed steps' errors, else the run's failure message."""
    run = context.dagster_run
    lines: list[str] = []
    for event in context.get_step_failure_events()[:3]:
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None and error.cause is not None:  # the user's exception, not Dagster's wrapper
            error = error.cause
        message = (error.message if error else event.message or "").strip()
        lines.append(f"step {event.step_key}: {message.splitlines()[0][:400] if message else 'failed'}")
    if not lines:
        lines.append((context.failure_event.message or "run failed").strip()[:600])
    signature = hashlib.sha1(_NUMBERS.sub("#", "\n".join(lines)).encode()).hexdigest()[:10]
    partition = run.tags.get("dagster/partition")
    header = f"run {run.run_id} of {run.job_name}" + (f" (partition {partition})" if partition else "")
    return signature, header + "\n" + "\n".join(lines)


def will_retry(run: dg.DagsterRun) -> bool:
    """Dagster's run retries tag a failed run they will re-execute (dagster/will_retry=true); the alert waits
    for the last attempt. Without run retries enabled the tag is absent and every failure is alerted."""
    return run.tags.get(WILL_RETRY_TAG, "").lower() == "true"


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (webhook, log, alerts table) on every failed run of this code location.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: Alerts) -> None:
    job = context.dagster_run.job_name
    retrying = will_retry(context.dagster_run)
    if retrying and job not in ALERT_FIRST_FAILURE:
        context.log.info(f"run {context.dagster_run.run_id} failed and will be retried: no alert")
        return
    signature, body = failure_summary(context)
    retries = context.dagster_run.tags.get("dagster/retry_number")
    body += ((f"\n(after {retries} retries by Dagster)" if retries else "")
             + ("\n(Dagster retries this run; a retry failing the same way is not told again)" if retrying else "")
             + "\nTo fix: read the error above and the run's log in the Dagster UI (Runs, then this run id); fix the "
               "cause, then re-execute the run from the UI or wait for the next scheduled run. `pipeline health` "
               "shows what is affected.")
    alerts.sink(context.log).send(key=f"run-failure:{job}:{signature}", title=f"Dagster run failed: {job}",
                                  body=body, severity="error")
