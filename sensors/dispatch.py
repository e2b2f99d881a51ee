"""`dispatch_sensor`: every 15 s, one post_job run per account with something due within the horizon.

The run starts up to `PIPELINE_DISPATCH_HORIZON_S` early and waits for the item's minute, so a post goes
out at its time instead of on a five-minute grid; afterwards it lingers (PIPELINE_DISPATCH_LINGER_S) and posts
what falls due meanwhile itself, so the sensor asks for nothing while an account's run is alive. Each run carries the tag pipeline/account=<handle>: the
run queue (dagster.yaml, applyLimitPerUniqueValue) never starts two runs of one account, and the UI shows
per run which account it posted for. The run key (account + due minute) asks once per minute at most.
"""

import dagster as dg

from pipeline import dispatch
from pipeline.settings import load_settings
from resources import Database
from sensors.common import ACCOUNT_TAG, POST_JOB, active_run, sensor_tags

TICK_S = 15


def dispatch_requests(instance: dg.DagsterInstance, engine, horizon_s: float) -> list[dg.RunRequest]:  # noqa: ANN001
    """Run requests for the accounts due now or within the horizon that have no posting run in progress."""
    now, due = dispatch.accounts_to_dispatch(engine, horizon_s)
    requests = []
    for account in due:
        if active_run(instance, POST_JOB, tags={ACCOUNT_TAG: account.account}):
            continue  # its run is queued, waiting for the minute or posting; it looks again before ending
        minute = max(account.first_due, now).strftime("%Y%m%dT%H%M")
        requests.append(dg.RunRequest(
            run_key=f"post:{account.account}:{minute}",
            tags={**sensor_tags("dispatch_sensor", "post"), ACCOUNT_TAG: account.account},
        ))
    return requests


@dg.sensor(
    name="dispatch_sensor",
    job_name=POST_JOB,
    minimum_interval_seconds=TICK_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 15 s: a post_job run per account with a post due within the horizon (or an unknown "
                "outcome to reconcile); the run waits for the post's minute.",
)
def dispatch_sensor(context: dg.SensorEvaluationContext, database: Database):
    requests = dispatch_requests(context.instance, database.engine, load_settings().dispatch_horizon_s)
    return requests or dg.SkipReason("no account has a post due within the horizon")
