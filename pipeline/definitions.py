"""The map of the system: every asset, check, job, schedule, sensor and resource Dagster runs.

    generated_content ──> posted_tweets ──> tweet_metrics[day] ──> content_performance
      (plan_job, hourly)    (post_job per account,   (metrics_job, every 20 min)  (performance_job, hourly at :45)
                           dispatched when due)

    canary_job (hourly at :30): loads X's pages without posting and alerts `ui_changed` naming a missing selector.

Planning weights topics from the metrics snapshots itself (pipeline.learning); content_performance is the report
for people, in its own job, so a failing report never reads as stopped planning. Freshness policies on the first
three assets say when each is stale; plan health is judged on generated_content (sensors/plan_health.py).

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
    plan_produced_content,
    queued_media_intact,
)
from assets.content import generated_content
from assets.metrics import content_performance, posting_days, tweet_metrics
from assets.posting import posted_tweets
from resources import Alerts, Browser, Database, Generator
from sensors.canary import canary_job, canary_schedule
from sensors.common import JOB_TAG, METRICS_JOB, PERFORMANCE_JOB, PLAN_JOB, POST_JOB
from sensors.daemons import daemon_health_sensor
from sensors.dispatch import dispatch_sensor
from sensors.local import local_state_sensor
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

# A failed plan run is retried by Dagster's run retries (dagster.yaml run_retries; the daemon re-executes it),
# twice; the run-failure alert skips a failure that will be retried.
plan_job = dg.define_asset_job(
    PLAN_JOB,
    selection=dg.AssetSelection.assets(generated_content),
    tags={JOB_TAG: "plan", "dagster/max_runtime": "1800", "dagster/max_retries": "2"},
    description="Fill the queue for the next planning window; its check says when a plan produced nothing.",
)

performance_job = dg.define_asset_job(
    PERFORMANCE_JOB,
    selection=dg.AssetSelection.assets(content_performance),
    tags={JOB_TAG: "performance", "dagster/max_runtime": "1800"},
    description="Refresh the performance report (engagement per topic and format) from the metrics snapshots.",
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

performance_schedule = dg.ScheduleDefinition(
    name="performance_schedule",
    job=performance_job,
    cron_schedule="45 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh the performance report every hour.",
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
    asset_checks=[no_duplicate_posts, no_missing_tweet_ids, no_stuck_items, content_within_limits,
                  plan_produced_content, queued_media_intact],
    jobs=[plan_job, post_job, metrics_job, performance_job, canary_job],
    schedules=[plan_schedule, metrics_schedule, performance_schedule, canary_schedule],
    sensors=[dispatch_sensor, empty_queue_sensor, plan_health_sensor, run_failure_alert_sensor, stuck_work_sensor,
             daemon_health_sensor, local_state_sensor],
    resources=resources,
    executor=dg.in_process_executor,
)
