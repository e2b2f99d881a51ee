"""The map of the system: every asset, check, job, schedule, sensor and resource Dagster runs.

    generated_content ──> posted_tweets ──> tweet_metrics[day] ──> content_performance
      (plan_job, hourly)    (post_job per account,   (metrics_job, every 20 min)  (plan_job: feeds planning's weights)
                           dispatched when due)

This is the only module in pipeline/ that imports Dagster. The assets, checks, sensors and resources are thin
(assets/, sensors/, resources/); the work happens in the plain-Python core they call.

Run it: `dagster dev -w workspace.yaml` (UI, schedules and sensors under the daemon), `dg check defs`,
`dagster job execute -m pipeline.definitions -j post_job`, and a metrics backfill for one day with
`dagster job execute -m pipeline.definitions -j metrics_job --tags '{"dagster/partition": "2026-11-01"}'`.
"""

from __future__ import annotations

import os

import dagster as dg

from assets.checks import (
    content_within_limits,
    no_duplicate_posts,
    no_missing_tweet_ids,
    no_stuck_items,
    queued_media_intact,
)
from assets.content import generated_content
from assets.metrics import content_performance, posting_days, tweet_metrics
from assets.posting import posted_tweets
from resources import Alerts, Browser, Database, Generator
from sensors.common import JOB_TAG, METRICS_JOB, PLAN_JOB, POST_JOB
from sensors.dispatch import dispatch_sensor
from sensors.plan_health import plan_health_sensor
from sensors.queue import empty_queue_sensor
from sensors.run_failure import run_failure_alert_sensor
from sensors.schedules import metrics_schedule
from sensors.stuck import stuck_work_sensor

# ---------------------------------------------------------------- jobs
# Every job runs in one process (the in-process executor, set once on the Definitions below): one browser
# per run, resources set up once, and a cold start of ~2 s instead of ~6 s. post_job runs are per account
# (dispatch_sensor tags pipeline/account=<handle>; the run queue allows one per account, the account lease in
# pipeline/dispatch.py covers every other launch path); dagster/max_runtime lets run monitoring fail a hung run.

plan_job = dg.define_asset_job(
    PLAN_JOB,
    selection=dg.AssetSelection.assets(generated_content, content_performance),
    tags={JOB_TAG: "plan", "dagster/max_runtime": "1800"},
    description="Refresh the performance summary and fill the queue for the next planning window.",
)

post_job = dg.define_asset_job(
    POST_JOB,
    selection=dg.AssetSelection.assets(posted_tweets),
    tags={JOB_TAG: "post", "dagster/max_runtime": "3600"},
    description="Reconcile, then post what is due: one account per run when dispatched (tag pipeline/account), "
                "else every account no other run holds; blocking checks for duplicates, missing tweet ids and missing media.",
)

metrics_job = dg.define_asset_job(
    METRICS_JOB,
    selection=dg.AssetSelection.assets(tweet_metrics),
    partitions_def=posting_days,
    tags={JOB_TAG: "metrics", "dagster/max_runtime": "3600"},
    description="Engagement snapshots per posting day (a partition); a backfill of many days runs as one run.",
)

# ---------------------------------------------------------------- schedules

plan_schedule = dg.ScheduleDefinition(
    name="plan_schedule",
    job=plan_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Plan every hour (the empty-queue sensor plans sooner when the queue runs low).",
)

# ---------------------------------------------------------------- resources


def _secret(variable: str) -> dg.EnvVar | str:
    """An EnvVar when set, so the UI shows the variable's name and never the value; empty otherwise
    (the resource then falls back to the setting's default)."""
    return dg.EnvVar(variable) if os.environ.get(variable) else ""


database = Database(url=_secret("PIPELINE_DATABASE_URL"))

resources = {
    "database": database,
    "browser": Browser(),  # only post_job and metrics_job assets use it; never a sensor
    "generator": Generator(database=database),
    "alerts": Alerts(database=database, webhook_url=_secret("PIPELINE_ALERT_WEBHOOK_URL")),
}

# ---------------------------------------------------------------- the definitions

defs = dg.Definitions(
    assets=[generated_content, posted_tweets, tweet_metrics, content_performance],
    asset_checks=[no_duplicate_posts, no_missing_tweet_ids, queued_media_intact, no_stuck_items, content_within_limits],
    jobs=[plan_job, post_job, metrics_job],
    schedules=[plan_schedule, metrics_schedule],
    sensors=[dispatch_sensor, empty_queue_sensor, plan_health_sensor, run_failure_alert_sensor, stuck_work_sensor],
    resources=resources,
    executor=dg.in_process_executor,
)
