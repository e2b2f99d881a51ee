"""Planning: `generated_content` fills the queue for the next window through `pipeline.planning.plan`."""

from datetime import timedelta

import dagster as dg

from assets.metadata import queue_metadata, report_dict
from pipeline import jobruns
from pipeline.settings import load_settings, load_settings_lenient
from resources import Database, Generator


@dg.asset(
    group_name="content",
    kinds={"python"},
    # Stale when no plan materialised it within PIPELINE_PLAN_MAX_AGE_MIN (the plan-health sensor and
    # `pipeline health` judge the same asset against the same limit).
    # Read leniently: an invalid setting must not keep the code location (and its alerting sensors) from loading.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=load_settings_lenient()[0].plan_max_age_min)),
    description="Queued content items for the next planning window (planner + generator, weighted by what performed).",
)
def generated_content(context: dg.AssetExecutionContext, database: Database, generator: Generator) -> dg.MaterializeResult:
    from pipeline import (  # the core is imported on use: a broken module fails the run, not the UI
        learning,
        planning,
    )

    settings = load_settings()
    engine = database.ready_engine()
    with jobruns.track(engine, jobruns.PLAN) as run:
        snapshots = learning.latest_snapshots(engine)
        weights = None if snapshots is None or len(snapshots) == 0 else learning.topic_weights(
            learning.performance_table(snapshots))
        report = planning.plan(engine, settings, generator.get(settings), weights=weights)
        run.produced = report.enqueued
        run.detail = report_dict(report)
    context.log.info(f"planned {report.enqueued} items for {report.accounts} accounts; dropped {len(report.dropped)}")
    return dg.MaterializeResult(metadata={
        "enqueued": dg.MetadataValue.int(report.enqueued),
        "dropped": dg.MetadataValue.int(len(report.dropped)),
        "accounts": dg.MetadataValue.int(report.accounts),
        "weighted_topics": dg.MetadataValue.int(len(weights or {})),
        "per_account": dg.MetadataValue.json({k: v for k, v in (report.per_account or {}).items()}),
        **queue_metadata(engine),
    })
