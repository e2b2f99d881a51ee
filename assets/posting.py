"""Posting: `posted_tweets` reconciles, then posts what is due, per account, through `pipeline.posting`."""

from datetime import timedelta

import dagster as dg

from assets.content import generated_content
from assets.metadata import breaker_metadata, count_metadata, queue_metadata, report_dict
from pipeline import integrity, jobruns
from pipeline.settings import load_settings
from resources import Alerts, Browser, Database

# Set by dispatch_sensor: a run for one account carries ACCOUNT_TAG (the run queue starts one run per value);
# a run packing several accounts due together carries ACCOUNTS_TAG ("a,b,c"). The account leases keep either
# from posting an account another run holds.
ACCOUNT_TAG = "pipeline/account"
ACCOUNTS_TAG = "pipeline/accounts"


def run_accounts(tags: dict[str, str]) -> list[str]:
    """The accounts a dispatched run posts for; empty for an untagged run (all accounts)."""
    if tags.get(ACCOUNTS_TAG):
        return [a for a in tags[ACCOUNTS_TAG].split(",") if a]
    return [tags[ACCOUNT_TAG]] if tags.get(ACCOUNT_TAG) else []
# Every step that drives a browser takes a slot of this pool (dagster.yaml: concurrency.pools), so all launch
# paths together never run more browsers than the machine holds.
BROWSER_POOL = "x_browser"


@dg.asset(
    group_name="posting",
    kinds={"python"},
    deps=[generated_content],
    pool=BROWSER_POOL,
    # Dispatched runs post only when something is due; the planner keeps items due within its window (60 min by
    # default), so three hours without a posting run means posting has stopped.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=1)),
    description=(
        "Tweets posted to X: journal replay and reconciliation of unknown posts first, then every due item per "
        "account until nothing is due, the account's breaker opens or the run's budget is spent. A run tagged "
        "pipeline/account=<handle> or pipeline/accounts=<a,b,c> (dispatch_sensor) posts those accounts only, "
        "each on its own thread and browser, waits for items due within "
        "the dispatch horizon and then lingers (browser kept, queue polled each second) for "
        "PIPELINE_DISPATCH_LINGER_S after its last due item, at most PIPELINE_DISPATCH_RUN_MAX_S in all; "
        "untagged runs post every account no other run is posting for."
    ),
)
def posted_tweets(context: dg.AssetExecutionContext, database: Database, browser: Browser,
                  alerts: Alerts) -> dg.MaterializeResult:
    from pipeline.posting import run_posting

    settings = load_settings()
    engine = database.ready_engine()
    accounts = run_accounts(context.run.tags)
    with jobruns.track(engine, jobruns.POST) as run:
        # A dispatched run waits for its items' minute, then lingers for later posts, each account on its own
        # thread and browser; a run without the tag (UI materialize, `dagster job execute`) posts what is due
        # now, account after account, and ends.
        report = run_posting(engine, settings, browser.session, accounts=accounts or None,
                             alerts=alerts.sink(context.log), wait_s=settings.dispatch_horizon_s if accounts else 0.0,
                             linger_s=settings.dispatch_linger_s if accounts else 0.0,
                             run_max_s=settings.dispatch_run_max_s,
                             browser_per_account=browser.new_session if accounts else None)
        run.produced = report.posted
        run.detail = report_dict(report)
    duplicates = integrity.duplicate_posts(engine, lookback_days=1, limit=100)
    context.log.info(f"posted {report.posted}, reconciled {report.reconciled}, unknown {report.unknown}")
    posted_by = report.posted_by_account
    return dg.MaterializeResult(metadata={
        "accounts": dg.MetadataValue.text(", ".join(accounts) or "all"),
        "posted_by_account": dg.MetadataValue.json({a: ids for a, ids in sorted(posted_by.items())}),
        "skipped_busy_accounts": dg.MetadataValue.text(", ".join(report.skipped_busy) or "none"),
        "posted": dg.MetadataValue.int(report.posted),
        "reconciled": dg.MetadataValue.int(report.reconciled),
        "requeued": dg.MetadataValue.int(report.requeued),
        "unknown": dg.MetadataValue.int(report.unknown),
        "needs_review": dg.MetadataValue.int(report.needs_review),
        "journal_replayed": dg.MetadataValue.int(report.journal_replayed),
        "duplicates_found": dg.MetadataValue.int(duplicates.total),
        **count_metadata("failed_", report.failed_by_class),
        **breaker_metadata(report.breaker_states or {}),
        **queue_metadata(engine),
    })
