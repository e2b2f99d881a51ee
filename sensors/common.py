"""Shared by sensors and schedules: job names, run tags, and questions to Dagster's own run records."""

import time
from datetime import UTC, datetime

import dagster as dg

from assets.posting import ACCOUNT_TAG, ACCOUNTS_TAG, run_accounts  # noqa: F401 - the posting runs' tags, shared
from pipeline.settings import load_settings_lenient

PLAN_JOB, POST_JOB, METRICS_JOB, PERFORMANCE_JOB = "plan_job", "post_job", "metrics_job", "performance_job"
JOB_TAG = "pipeline/job"  # the run queue limits runs by this tag (dagster.yaml)
REQUESTED_BY_TAG = "pipeline/requested_by"
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# A run "in progress" for longer than this is presumed dead (its process was killed) and no longer
# holds back new runs; run monitoring (dagster.yaml) marks such runs failed.
STALE_ACTIVE_S = 3600
# The alerting sensors' tick (PIPELINE_SENSOR_INTERVAL_S), read when the definitions load. Leniently: an invalid
# setting must not stop the code location from loading, or no sensor would run to say so (sensors/local.py).
SENSOR_INTERVAL_S = load_settings_lenient()[0].sensor_interval_s


def active_run(instance: dg.DagsterInstance, job_name: str, max_age_s: float = STALE_ACTIVE_S,
               tags: dict[str, str] | None = None) -> dg.RunRecord | None:
    """The newest queued or running run of `job_name` (with `tags`) created within `max_age_s`, if any."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=job_name, statuses=ACTIVE_STATUSES, tags=tags,
                      created_after=datetime.fromtimestamp(time.time() - max_age_s, tz=UTC)),
        limit=1,
    )
    return records[0] if records else None


def last_success(instance: dg.DagsterInstance, job_name: str) -> dg.RunRecord | None:
    records = instance.get_run_records(
        dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    return records[0] if records else None


def ever_ran(instance: dg.DagsterInstance, job_name: str) -> bool:
    return bool(instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=1))


def finished_at(record: dg.RunRecord) -> datetime:
    ts = record.end_time or record.update_timestamp.timestamp()
    return datetime.fromtimestamp(ts, tz=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sensor_tags(sensor_name: str, job: str) -> dict[str, str]:
    return {REQUESTED_BY_TAG: sensor_name, JOB_TAG: job}
