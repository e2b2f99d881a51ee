"""Posting: `posted_tweets` reconciles, then posts what is due, per account, through `pipeline.posting`."""

from datetime import timedelta

import dagster as dg

from assets.content import generated_content
from assets.metadata import breaker_metadata, count_metadata, queue_metadata, report_dict
from pipeline import integrity, jobruns
from pipeline.settings import load_settings
from resources import Alerts, Browser, Database


@dg.asset(
    group_name="posting",
    kinds={"python"},
    deps=[generated_content],
    # post_job runs every 5 minutes: 30 minutes without one means posting has stopped (health's backlog limit).
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=15)),
    description=(
        "Tweets posted to X: journal replay and reconciliation of unknown posts first, then every due item per "
        "account until nothing is due, the account's breaker opens or the run's budget is spent."
    ),
)
def posted_tweets(context: dg.AssetExecutionContext, database: Database, browser: Browser,
                  alerts: Alerts) -> dg.MaterializeResult:
    from pipeline.posting import run_posting

    settings = load_settings()
    engine = database.ready_engine()
    with jobruns.track(engine, jobruns.POST) as run:
        report = run_posting(engine, settings, browser.session, alerts=alerts.sink(context.log))
        run.produced = report.posted
        run.detail = report_dict(report)
    duplicates = integrity.duplicate_posts(engine, lookback_days=1, limit=100)
    context.log.info(f"posted {report.posted}, reconciled {report.reconciled}, unknown {report.unknown}")
    return dg.MaterializeResult(metadata={
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
