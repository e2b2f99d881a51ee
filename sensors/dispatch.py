"""`dispatch_sensor`: every 15 s, post_job runs for the accounts with something due within the horizon.

The run starts up to `PIPELINE_DISPATCH_HORIZON_S` early and waits for the item's minute, so a post goes
out at its time instead of on a five-minute grid; afterwards it lingers (PIPELINE_DISPATCH_LINGER_S) and posts
what falls due meanwhile itself, so the sensor asks for nothing while an account's run is alive. Accounts due
in the same tick share runs of at most PIPELINE_DISPATCH_ACCOUNTS_PER_RUN (pipeline.dispatch.pack_accounts),
each account on its own thread and browser. A run for one account carries pipeline/account=<handle> (the run
queue, dagster.yaml, never starts two runs of one account); a packed run carries pipeline/accounts=<a,b,c>;
the UI shows per run which accounts it posted for. The run key (accounts + due minute) asks once per minute.
"""

import time
from datetime import UTC, datetime

import dagster as dg

from pipeline import dispatch
from pipeline.settings import load_settings
from resources import Database
from sensors.common import (
    ACCOUNT_TAG,
    ACCOUNTS_TAG,
    ACTIVE_STATUSES,
    POST_JOB,
    STALE_ACTIVE_S,
    run_accounts,
    sensor_tags,
)

TICK_S = 15
# A started run takes its accounts' leases within this (process start, code load, first lease); after it, an
# account of a started run counts as served only while it holds its lease: a packed run whose thread for
# that account has ended (linger over) no longer hides the account's new posts from the sensor.
LEASE_GRACE_S = 90


def served_accounts(instance: dg.DagsterInstance, leased: set[str], now: float | None = None) -> set[str]:
    """Accounts a queued, starting or running post_job run will post for."""
    now = time.time() if now is None else now
    records = instance.get_run_records(
        dg.RunsFilter(job_name=POST_JOB, statuses=ACTIVE_STATUSES,
                      created_after=datetime.fromtimestamp(now - STALE_ACTIVE_S, tz=UTC)),
        limit=1000,
    )
    return accounts_served([(record.dagster_run.tags,
                             record.start_time if record.dagster_run.status == dg.DagsterRunStatus.STARTED else None)
                            for record in records], leased, now)


def accounts_served(runs: list[tuple[dict[str, str], float | None]], leased: set[str], now: float) -> set[str]:
    """From active runs as (tags, start time if started): every account of a run not yet started or started
    within LEASE_GRACE_S; of a run started before that, only the accounts holding a lease."""
    served: set[str] = set()
    for tags, started_at in runs:
        settled = started_at is not None and now - started_at > LEASE_GRACE_S
        served.update(a for a in run_accounts(tags) if not settled or a in leased)
    return served


def dispatch_requests(instance: dg.DagsterInstance, engine, horizon_s: float,  # noqa: ANN001
                      per_run: int) -> list[dg.RunRequest]:
    """Run requests for the accounts due now or within the horizon that no posting run serves, packed."""
    now, due = dispatch.accounts_to_dispatch(engine, horizon_s)
    served = served_accounts(instance, dispatch.leased_accounts(engine)) if due else set()
    waiting = [account for account in due if account.account not in served]
    first_due = {account.account: account.first_due for account in waiting}
    requests = []
    for pack in dispatch.pack_accounts([account.account for account in waiting], per_run):
        minute = max(min(first_due[a] for a in pack), now).strftime("%Y%m%dT%H%M")
        tag = {ACCOUNT_TAG: pack[0]} if len(pack) == 1 else {ACCOUNTS_TAG: ",".join(pack)}
        requests.append(dg.RunRequest(
            run_key=f"post:{'+'.join(pack)}:{minute}",
            tags={**sensor_tags("dispatch_sensor", "post"), **tag},
        ))
    return requests


@dg.sensor(
    name="dispatch_sensor",
    job_name=POST_JOB,
    minimum_interval_seconds=TICK_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 15 s: post_job runs for the accounts with a post due within the horizon (or an unknown "
                "outcome to reconcile), accounts due together packed into runs of at most "
                "PIPELINE_DISPATCH_ACCOUNTS_PER_RUN; the run waits for the post's minute.",
)
def dispatch_sensor(context: dg.SensorEvaluationContext, database: Database):
    settings = load_settings()
    requests = dispatch_requests(context.instance, database.engine, settings.dispatch_horizon_s,
                                 settings.dispatch_accounts_per_run)
    return requests or dg.SkipReason("no account has a post due within the horizon")
