"""Posting: `posted_tweets` reconciles, then posts what is due, per account, through `pipeline.posting`."""

from datetime import timedelta

import dagster as dg

from assets.content import generated_content
from assets.metadata import breaker_metadata, count_metadata, queue_metadata, report_dict
from pipeline import integrity, jobruns
from pipeline.settings import load_settings
from resources import Alerts, Browser, Database

ACCOUNT_TAG = "pipeline/account"  # set by dispatch_sensor; sensors/common.py names it for the sensors
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
        "pipeline/account=<handle> (dispatch_sensor) posts that account only, waits for items due within "
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
    account = context.run.tags.get(ACCOUNT_TAG)
    with jobruns.track(engine, jobruns.POST) as run:
        # A dispatched run (one account) waits for its item's minute, then lingers for later posts; a run
        # without the tag (UI materialize, `dagster job execute`) posts what is due now and ends.
        report = run_posting(engine, settings, browser.session, accounts=[account] if account else None,
                             alerts=alerts.sink(context.log), wait_s=settings.dispatch_horizon_s if account else 0.0,
                             linger_s=settings.dispatch_linger_s if account else 0.0,
                             run_max_s=settings.dispatch_run_max_s)
        run.produced = report.posted
        run.detail = report_dict(report)
    duplicates = integrity.duplicate_posts(engine, lookback_days=1, limit=100)
    context.log.info(f"posted {report.posted}, reconciled {report.reconciled}, unknown {report.unknown}")
    posted_by = report.posted_by_account
    return dg.MaterializeResult(metadata={
        "accounts": dg.MetadataValue.text(account or "all"),
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
