"""Metrics: engagement snapshots per posting day (`tweet_metrics`) and their summary (`content_performance`).

`content_performance` is a report for people, in its own job (performance_job): planning reads the snapshots
itself (pipeline.learning), so a failing report never reads as stopped planning."""

from collections import Counter
from datetime import date, timedelta

import dagster as dg

from assets.metadata import count_metadata
from assets.posting import BROWSER_POOL, posted_tweets
from pipeline import jobruns
from pipeline.settings import load_settings
from resources import Alerts, Browser, Database

# One partition per UTC posting day. end_offset=1 makes today's partition exist, so the 20-minute
# schedule can collect today's 1-hour snapshots while the day is still running.
posting_days = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC", end_offset=1)


@dg.asset(
    group_name="metrics",
    kinds={"python"},
    deps=[posted_tweets],
    partitions_def=posting_days,
    pool=BROWSER_POOL,
    # A backfill of many days is one run: one process, one browser, the days read one after another.
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Engagement snapshots (likes, reposts, replies, views) of the posts of each posting day, read with the browser.",
    # metrics_job runs every 20 minutes: two hours without a snapshot run means metrics have stopped.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(hours=1)),
)
def tweet_metrics(context: dg.AssetExecutionContext, database: Database, browser: Browser,
                  alerts: Alerts) -> dg.MaterializeResult:
    from pipeline.metrics import collect_metrics

    settings = load_settings()
    engine = database.ready_engine()
    days = [date.fromisoformat(key) for key in context.partition_keys]
    snapshots, skipped, errors = 0, 0, Counter()
    with jobruns.track(engine, jobruns.METRICS) as run:
        for day in days:
            report = collect_metrics(engine, settings, browser.session, day, alerts=alerts.sink(context.log))
            snapshots, skipped = snapshots + report.snapshots, skipped + report.skipped
            errors.update(report.errors or {})
        run.produced = snapshots
        run.detail = {"days": [d.isoformat() for d in days], "snapshots": snapshots, "skipped": skipped,
                      "errors": dict(errors)}
    return dg.MaterializeResult(metadata={
        "days": dg.MetadataValue.int(len(days)),
        "snapshots": dg.MetadataValue.int(snapshots),
        "skipped": dg.MetadataValue.int(skipped),
        **count_metadata("errors_", dict(errors)),
    })


@dg.asset(
    group_name="metrics",
    kinds={"pandas"},
    deps=[tweet_metrics],
    description="What performed: engagement per topic and format from the latest snapshots (pandas), as a Markdown table.",
)
def content_performance(context: dg.AssetExecutionContext, database: Database) -> dg.MaterializeResult:
    from pipeline import learning

    engine = database.ready_engine()
    with jobruns.track(engine, jobruns.PERFORMANCE) as run:
        snapshots = learning.latest_snapshots(engine)
        table = learning.performance_table(snapshots)
        run.produced = len(table)
    context.log.info(f"performance of {len(snapshots)} measured tweets: {len(table)} rows")
    by_dimension = table["dimension"].value_counts().to_dict() if len(table) else {}
    return dg.MaterializeResult(metadata={
        "summary": dg.MetadataValue.md(learning.markdown_table(table)),
        "rows": dg.MetadataValue.int(len(table)),
        "tweets_measured": dg.MetadataValue.int(len(snapshots)),
        **{f"{dim}s": dg.MetadataValue.int(int(by_dimension.get(dim, 0))) for dim in ("topic", "format")},
    })
