"""Asset checks: indexed SQL through the Database resource (never loading partitions), offending rows in metadata.

ERROR + blocking: `no_duplicate_posts`, `no_missing_tweet_ids`, `queued_media_intact` (a failure fails the post
run, which the run-failure sensor turns into an alert). ERROR: `plan_produced_content` (the plan-health sensor
alerts on it). WARN: `no_stuck_items`, `content_within_limits`.
"""

import dagster as dg
from pydantic import Field

from assets.content import generated_content
from assets.posting import posted_tweets
from pipeline import integrity
from pipeline.integrity import Finding
from pipeline.settings import load_settings
from resources import Database


class WindowConfig(dg.Config):
    lookback_days: float = Field(
        default=integrity.DEFAULT_LOOKBACK_DAYS,
        description="Check the posts of the last N days against the whole history; 0 audits the full history",
    )


def _result(finding: Finding, severity: dg.AssetCheckSeverity, count_key: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=finding.ok,
        severity=severity,
        description=f"{finding.total}{'+' if finding.truncated else ''} found; {finding.scope}",
        metadata={
            count_key: dg.MetadataValue.int(finding.total),
            "scope": dg.MetadataValue.text(finding.scope),
            "elapsed_ms": dg.MetadataValue.float(finding.elapsed_ms),
            "offending_rows": dg.MetadataValue.md(integrity.markdown(finding.rows)),
            "sample": dg.MetadataValue.json(finding.sample()),
        },
    )


@dg.asset_check(asset=posted_tweets, blocking=True,
                description="No post exists twice for an account: same content (fingerprint) or same tweet text.")
def no_duplicate_posts(database: Database, config: WindowConfig) -> dg.AssetCheckResult:
    found = integrity.duplicate_posts(database.engine, lookback_days=config.lookback_days)
    return _result(found, dg.AssetCheckSeverity.ERROR, "duplicates_found")


@dg.asset_check(asset=posted_tweets, blocking=True,
                description="Every posted item has a tweet id for each of its parts.")
def no_missing_tweet_ids(database: Database, config: WindowConfig) -> dg.AssetCheckResult:
    found = integrity.missing_tweet_ids(database.engine, lookback_days=config.lookback_days)
    return _result(found, dg.AssetCheckSeverity.ERROR, "items_missing_ids")


@dg.asset_check(asset=posted_tweets, blocking=True,
                description="Every item that may still post has its media in the store, unchanged (SHA-256).")
def queued_media_intact(database: Database) -> dg.AssetCheckResult:
    found = integrity.missing_media(database.engine, load_settings().state_path)
    return _result(found, dg.AssetCheckSeverity.ERROR, "items_missing_media")


@dg.asset_check(asset=posted_tweets,
                description="No item sits in claimed/posting past its lease, or in unknown untouched for a lease.")
def no_stuck_items(database: Database) -> dg.AssetCheckResult:
    found = integrity.stuck_items(database.engine, lease_s=load_settings().lease_s)
    return _result(found, dg.AssetCheckSeverity.WARN, "stuck_items")


@dg.asset_check(asset=generated_content,
                description="Queued content fits X's limits: 280 weighted characters per part, threads of 2-25 parts.")
def content_within_limits(database: Database) -> dg.AssetCheckResult:
    found = integrity.over_limit_content(database.engine)
    return _result(found, dg.AssetCheckSeverity.WARN, "items_over_limit")


PLAN_PRODUCED_CONTENT = "plan_produced_content"


@dg.asset_check(asset=generated_content, name=PLAN_PRODUCED_CONTENT,
                description="The latest plan enqueued something, or every account still has something queued.")
def plan_produced_content(context: dg.AssetCheckExecutionContext, database: Database) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(generated_content.key)
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get("enqueued") if materialization else None
    enqueued = int(getattr(value, "value", value)) if value is not None else None
    empty = integrity.accounts_without_queue(database.engine)
    passed = not (enqueued == 0 and empty)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"plan enqueued {enqueued} items" if passed else
                     f"the plan enqueued 0 items and {', '.join('@' + a for a in empty)} have nothing queued"),
        metadata={"enqueued": dg.MetadataValue.int(enqueued if enqueued is not None else -1),
                  "accounts_without_queue": dg.MetadataValue.json(empty),
                  "run_id": dg.MetadataValue.text(event.run_id if event else "")},
    )


all_checks = [no_duplicate_posts, no_missing_tweet_ids, queued_media_intact, no_stuck_items, content_within_limits,
              plan_produced_content]
