"""The metrics schedule: today's partition, plus the days whose posts reach a later snapshot age.

The plain hourly plan schedule lives in pipeline/definitions.py; posting is dispatched by due time
(sensors/dispatch.py), not on a schedule.
"""

from datetime import timedelta

import dagster as dg

from assets.metrics import posting_days
from pipeline.settings import load_settings
from sensors.common import METRICS_JOB, active_run


def catch_up_days(metrics_ages: str) -> list[int]:
    """Days back whose posts reach a snapshot age today: '1h,24h,7d' -> [1, 2, 7, 8] (plus today, always)."""
    days: set[int] = set()
    for raw in filter(None, (a.strip().lower() for a in metrics_ages.split(","))):
        unit, number = raw[-1], raw[:-1]
        try:
            hours = float(number) * {"m": 1 / 60, "h": 1, "d": 24, "w": 168}[unit]
        except (KeyError, ValueError):
            continue
        whole = int(hours // 24)
        if whole >= 1:
            days.update({whole, whole + 1})
    return sorted(days)


@dg.schedule(
    name="metrics_schedule",
    cron_schedule="*/20 * * * *",
    job_name=METRICS_JOB,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every 20 min: today's tweet_metrics partition. At minute 40 of each hour also the posting days whose "
        "posts reach a later snapshot age (24h, 7d) today."
    ),
)
def metrics_schedule(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time
    today = tick.date()
    days = [today]
    if tick.minute == 40:
        days += [today - timedelta(days=n) for n in catch_up_days(load_settings().metrics_ages)]
    first = posting_days.start.date()
    requests = []
    for day in days:
        key = day.isoformat()
        if day < first or active_run(context.instance, METRICS_JOB, tags={"dagster/partition": key}):
            continue  # before the first partition, or still being collected
        requests.append(dg.RunRequest(run_key=f"metrics:{key}:{tick.isoformat()}", partition_key=key))
    return requests or dg.SkipReason("today's metrics run is still queued or running")
