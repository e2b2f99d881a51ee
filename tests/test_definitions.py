"""The Dagster definitions: they load and validate with both CLIs, every contracted name exists with the
promised shape, the instance configs load, and the plan/post jobs really run on a real instance."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from pipeline import jobruns
from pipeline import schema as s
from pipeline.definitions import defs
from resources import Alerts, Browser, Database
from tests import pg
from tests.dagster_helpers import add_account, add_item, temp_instance

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

ASSETS = {"generated_content", "posted_tweets", "tweet_metrics", "content_performance"}
CHECKS = {
    ("posted_tweets", "no_duplicate_posts"), ("posted_tweets", "no_missing_tweet_ids"),
    ("posted_tweets", "no_stuck_items"), ("generated_content", "content_within_limits"),
    ("generated_content", "plan_produced_content"),
    ("posted_tweets", "queued_media_intact"),
}
JOBS = {"plan_job", "post_job", "metrics_job", "performance_job", "canary_job"}
# posting is dispatched by a sensor, not a schedule
SCHEDULES = {"plan_schedule": "0 * * * *", "metrics_schedule": "*/20 * * * *",
             "performance_schedule": "45 * * * *", "canary_schedule": "30 * * * *"}
REPO = defs.get_repository_def()
SENSORS = {"dispatch_sensor", "empty_queue_sensor", "plan_health_sensor", "run_failure_alert_sensor",
           "stuck_work_sensor", "daemon_health_sensor"}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with temp_instance() as inst:
        yield inst


def _cli_env(tmp_path: Path, dagster_yaml: str = "dagster.yaml") -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / dagster_yaml, home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_") or k.startswith("PIPELINE_TEST_")}
    env.update(DAGSTER_HOME=str(home), PATH=f"{BIN}:{env.get('PATH', '')}")
    return env


# --------------------------------------------------------------------------- both CLIs


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-m", "pipeline.definitions"],
                          cwd=ROOT, env=_cli_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_dagster_validate_with_the_workspace_file(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=ROOT, env=_cli_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dg_check_defs(tmp_path: Path) -> None:
    """The successor CLI reads [tool.dg] in pyproject.toml."""
    proc = subprocess.run([str(BIN / "dg"), "check", "defs"], cwd=ROOT, env=_cli_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- the contract


def test_every_contracted_name_exists() -> None:
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys} == CHECKS
    assert {j.name for j in defs.resolve_all_job_defs()} >= JOBS
    for name, cron in SCHEDULES.items():
        schedule = defs.resolve_schedule_def(name)
        assert schedule.cron_schedule == cron
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        assert schedule.execution_timezone == "UTC"
    for name in SENSORS:
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert {s.name for s in REPO.schedule_defs} == set(SCHEDULES)  # one way to dispatch posts: no post_schedule


def test_jobs_select_their_assets_and_run_in_process() -> None:
    expected = {"plan_job": {"generated_content"}, "post_job": {"posted_tweets"},
                "metrics_job": {"tweet_metrics"}, "performance_job": {"content_performance"}}
    for name, assets in expected.items():
        job = defs.resolve_job_def(name)
        assert job.executor_def is dg.in_process_executor, name  # one process: one browser, resources set up once
        selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
        assert selected == assets, name
    assert defs.resolve_job_def("post_job").run_tags["pipeline/job"] == "post"
    assert defs.resolve_job_def("plan_job").run_tags["dagster/max_retries"] == "2"  # Dagster's run retries
    assert defs.executor is dg.in_process_executor  # set once, on the Definitions


def test_browser_assets_share_one_pool_and_metrics_backfill_in_one_run() -> None:
    assert defs.resolve_assets_def("posted_tweets").op.pool == "x_browser"
    metrics = defs.resolve_assets_def("tweet_metrics")
    assert metrics.op.pool == "x_browser"
    assert metrics.backfill_policy == dg.BackfillPolicy.single_run()


def test_dg_and_dagster_dev_share_the_code_location_name() -> None:
    import tomllib

    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert project["code_location_name"] == workspace["load_from"][0]["python_module"]["location_name"]


def test_freshness_policies_on_the_three_pipeline_assets() -> None:
    from pipeline.settings import load_settings

    policies = {key: defs.resolve_assets_def(key).specs_by_key[dg.AssetKey(key)].freshness_policy
                for key in ("generated_content", "posted_tweets", "tweet_metrics", "content_performance")}
    assert policies["content_performance"] is None  # a report: nobody waits for it
    assert policies["generated_content"].fail_window.to_timedelta().total_seconds() == \
        load_settings().plan_max_age_min * 60  # the same limit as the plan-health sensor and `pipeline health`
    assert all(policies[k] is not None for k in ("posted_tweets", "tweet_metrics"))


def test_checks_on_posted_tweets_are_blocking() -> None:
    from assets.checks import (
        content_within_limits,
        no_duplicate_posts,
        no_missing_tweet_ids,
        no_stuck_items,
        queued_media_intact,
    )

    specs = {spec.name: spec for c in (no_duplicate_posts, no_missing_tweet_ids, no_stuck_items, content_within_limits,
                                       queued_media_intact) for spec in c.check_specs}
    assert specs["no_duplicate_posts"].blocking and specs["no_missing_tweet_ids"].blocking
    assert specs["queued_media_intact"].blocking
    assert not specs["no_stuck_items"].blocking and not specs["content_within_limits"].blocking
    # The post job runs the checks after posting.
    post_checks = {k.name for k in defs.resolve_job_def("post_job").asset_layer.asset_graph.asset_check_keys}
    assert {"no_duplicate_posts", "no_missing_tweet_ids", "queued_media_intact", "no_stuck_items"} <= post_checks


def test_metrics_are_partitioned_by_posting_day() -> None:
    job = defs.resolve_job_def("metrics_job")
    partitions = job.partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    keys = partitions.get_partition_keys()
    assert keys[0] == "2026-01-01"
    assert datetime.now(UTC).date().isoformat() in keys  # today's partition exists (end_offset=1)
    assert defs.resolve_assets_def("tweet_metrics").partitions_def == partitions


DAGSTER_LAYER = {"assets", "resources", "sensors"}


def test_no_dagster_import_in_the_core_outside_definitions() -> None:
    offenders = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        if path.name == "definitions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "dagster" or n.startswith("dagster.") or n.startswith("dagster_") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
            # The Dagster layer imports Dagster: importing it from the core is the same import one step removed.
            if any(n.split(".")[0] in DAGSTER_LAYER for n in names):
                offenders.append(f"{path.relative_to(ROOT)} imports {[n for n in names if n.split('.')[0] in DAGSTER_LAYER]}")
    assert offenders == []


# --------------------------------------------------------------------------- schedules


def test_metrics_schedule_targets_today_and_catches_up_hourly(instance: dg.DagsterInstance) -> None:
    schedule = defs.resolve_schedule_def("metrics_schedule")
    at_20 = datetime(2026, 11, 28, 13, 20, tzinfo=UTC)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=at_20, repository_def=REPO) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-28"]

    at_40 = datetime(2026, 11, 28, 13, 40, tzinfo=UTC)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=at_40, repository_def=REPO) as context:
        requests = schedule.evaluate_tick(context).run_requests
    # Default ages 1h,24h,7d: posts from 1-2 and 7-8 days ago reach a snapshot age today.
    assert [r.partition_key for r in requests] == ["2026-11-28", "2026-11-27", "2026-11-26", "2026-11-21",
                                                   "2026-11-20"]
    assert len({r.run_key for r in requests}) == len(requests)


def test_metrics_schedule_never_asks_before_the_first_partition(instance: dg.DagsterInstance) -> None:
    schedule = defs.resolve_schedule_def("metrics_schedule")
    at = datetime(2026, 1, 2, 0, 40, tzinfo=UTC)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=at, repository_def=REPO) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-01-02", "2026-01-01"]


# --------------------------------------------------------------------------- instance configs


def test_dagster_yaml_sqlite_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _cli_env(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as inst:
        assert type(inst.run_storage).__name__ == "SqliteRunStorage"
        assert Path(inst.root_directory) == Path(env["DAGSTER_HOME"])
        assert not inst.telemetry_enabled
        assert type(inst.run_coordinator).__name__ == "QueuedRunCoordinator"
        _assert_per_account_limits(inst)
        assert inst.run_monitoring_enabled
        assert inst.run_retries_enabled and inst.run_retries_max_retries == 0  # only jobs tagged are retried


def test_dagster_postgres_yaml_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_admin_url: str) -> None:
    url = sa.engine.make_url(pg.create_database(pg_admin_url, prefix="dagster_instance_test"))
    try:
        env = _cli_env(tmp_path, "dagster.postgres.yaml")
        monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
        for key, value in {"DAGSTER_PG_HOST": url.host, "DAGSTER_PG_PORT": str(url.port or 5432),
                           "DAGSTER_PG_USER": url.username, "DAGSTER_PG_PASSWORD": url.password or "",
                           "DAGSTER_PG_DB": url.database}.items():
            monkeypatch.setenv(key, value)
        with dg.DagsterInstance.get() as inst:
            assert type(inst.run_storage).__name__ == "PostgresRunStorage"
            assert type(inst.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert not inst.telemetry_enabled
            _assert_per_account_limits(inst)
            # A real run through the Postgres storage.
            result = dg.materialize([_noop_asset()], instance=inst)
            assert result.success and inst.get_run_records(limit=1)
    finally:
        pg.drop_database(pg_admin_url, url.render_as_string(hide_password=False))


PER_ACCOUNT = {"key": "pipeline/account", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def _assert_per_account_limits(inst: dg.DagsterInstance) -> None:
    """One posting run per account at a time; accounts in parallel; a browser pool across every run."""
    config = inst.get_concurrency_config()
    limits = config.run_queue_config.tag_concurrency_limits
    assert PER_ACCOUNT in limits
    assert not any(limit["key"] == "pipeline/job" and limit["value"] == "post" for limit in limits)
    # Lingering posting runs hold a run slot and a browser per account: room for 50 accounts plus other jobs.
    assert config.run_queue_config.max_concurrent_runs >= 50
    assert config.pool_config.default_pool_limit >= config.run_queue_config.max_concurrent_runs
    # The queue is read every 2 s by worker threads, so a due account's run starts within seconds.
    coordinator = inst.run_coordinator
    assert (coordinator.dequeue_interval_seconds, coordinator.dequeue_use_threads,
            coordinator.dequeue_num_workers) == (2, True, 4)
    # Sensors in threads: the dispatch tick never waits behind the others, and one tick's runs submit in parallel.
    assert inst.get_settings("sensors") == {"use_threads": True, "num_workers": 4, "num_submit_workers": 4}


def test_k8s_instance_config_loads_and_its_launcher_config_is_valid(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """dagster.k8s.yaml passes Dagster's instance-config schema and K8sRunLauncher's own config schema (no
    cluster needed), with the same per-account limits; a misspelt launcher key is refused."""
    from dagster._config import process_config
    from dagster._config.field import resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    home = tmp_path / "k8s_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.k8s.yaml", home / "dagster.yaml")
    for key, value in {"DAGSTER_PG_HOST": "pg", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
                       "DAGSTER_PG_PASSWORD": "x", "DAGSTER_PG_DB": "dagster", "DAGSTER_K8S_NAMESPACE": "posting",
                       "PIPELINE_IMAGE": "registry.example/x-posting-pipeline:1"}.items():
        monkeypatch.setenv(key, value)
    config, _ = dagster_instance_config(str(home))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert "postgres" in config["storage"]
    assert PER_ACCOUNT in config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert config["concurrency"]["pools"]["default_limit"] >= config["concurrency"]["runs"]["max_concurrent_runs"] >= 50
    assert config["run_coordinator"]["config"] == {"dequeue_interval_seconds": 2, "dequeue_use_threads": True,
                                                   "dequeue_num_workers": 4}
    assert config["sensors"] == {"use_threads": True, "num_workers": 4, "num_submit_workers": 4}
    launcher_schema = resolve_to_config_type(K8sRunLauncher.config_type())
    checked = process_config(launcher_schema, config["run_launcher"]["config"])
    assert checked.success, checked.errors
    assert not process_config(launcher_schema, {**config["run_launcher"]["config"], "job_namespac": "x"}).success


def _noop_asset() -> dg.AssetsDefinition:
    @dg.asset
    def noop() -> None:
        return None

    return noop


def test_workspace_yaml_loads_the_module() -> None:
    text = (ROOT / "workspace.yaml").read_text()
    assert "module_name: pipeline.definitions" in text and "attribute: defs" in text


# --------------------------------------------------------------------------- resources


def test_secrets_are_env_vars_in_the_resource_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import pipeline.definitions as definitions

    monkeypatch.setenv("PIPELINE_ALERT_WEBHOOK_URL", "https://hooks.example/T/B/very-secret")
    monkeypatch.setenv("PIPELINE_DATABASE_URL", "sqlite:////tmp/never-opened.db")
    try:
        reloaded = importlib.reload(definitions)
        assert isinstance(reloaded.resources["alerts"].webhook_url, dg.EnvVar)
        assert isinstance(reloaded.resources["database"].url, dg.EnvVar)
        assert "very-secret" not in repr(reloaded.resources["alerts"])
    finally:
        monkeypatch.delenv("PIPELINE_ALERT_WEBHOOK_URL")
        monkeypatch.delenv("PIPELINE_DATABASE_URL")
        importlib.reload(definitions)


def test_database_resource_engine_is_lazy_shared_and_disposed(sqlite_url: str) -> None:
    with dg.build_resources({"database": Database(url=sqlite_url), "other": Database(url=sqlite_url)}) as res:
        engine = res.database.engine
        assert engine is res.other.engine  # one engine per process and URL (pipeline.db.get_engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        assert engine.pool.checkedin() == 1
    assert engine.pool.checkedin() == 0  # teardown disposed the pool


def test_browser_resource_is_lazy_and_closed_at_teardown() -> None:
    with dg.build_resources({"browser": Browser()}) as res:
        assert not res.browser.started
        session = res.browser.session
        assert session is res.browser.session  # one session per process
        assert not session.started  # Chromium starts on the first page, not at setup
    assert not session.started


def test_alerts_resource_builds_a_sink(sqlite_url: str) -> None:
    database = Database(url=sqlite_url)
    with dg.build_resources({"alerts": Alerts(database=database, cooldown_s=5)}) as res:
        sink = res.alerts.sink()
        assert sink.send("k", "t", "b") is True and sink.send("k", "t", "b") is False
        assert "webhook=unset" in repr(sink)


# --------------------------------------------------------------------------- real runs


def test_plan_job_runs_for_real(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """plan_job on the real definitions: the planner fills the queue from the shipped drafts library."""
    monkeypatch.setenv("PIPELINE_DATABASE_URL", db_url)
    add_account(engine, "alice")
    result = defs.resolve_job_def("plan_job").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    [planned] = [e for e in result.get_asset_materialization_events()
                 if e.asset_key.to_user_string() == "generated_content"]
    metadata = planned.materialization.metadata
    assert metadata["enqueued"].value >= 1 and metadata["queue_depth"].value == metadata["enqueued"].value
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"content_within_limits": True, "plan_produced_content": True}
    assert jobruns.last_success(engine, jobruns.PLAN) is not None
    assert jobruns.last_run(engine, jobruns.PLAN)["produced"] == metadata["enqueued"].value


def test_performance_job_runs_for_real(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_DATABASE_URL", db_url)
    result = defs.resolve_job_def("performance_job").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    [perf] = result.get_asset_materialization_events()
    assert isinstance(perf.materialization.metadata["summary"], dg.MarkdownMetadataValue)


def test_plan_that_produced_nothing_fails_its_check(engine: sa.Engine, db_url: str, instance: dg.DagsterInstance,
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty drafts library: the plan run succeeds, enqueues 0 and its check names the quiet account."""
    monkeypatch.setenv("PIPELINE_DATABASE_URL", db_url)
    monkeypatch.setenv("PIPELINE_DRAFTS_DIR", str(tmp_path))
    add_account(engine, "alice")
    result = defs.resolve_job_def("plan_job").execute_in_process(instance=instance, raise_on_error=False)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "plan_produced_content"]
    assert not check.passed and check.metadata["accounts_without_queue"].value == ["alice"]


def test_post_job_with_nothing_due_posts_nothing_and_passes_its_checks(
        engine: sa.Engine, db_url: str, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    """The post_job wiring without a browser: no accounts, so nothing to post and Chromium never starts."""
    monkeypatch.setenv("PIPELINE_DATABASE_URL", db_url)
    result = defs.resolve_job_def("post_job").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["posted"].value == 0 and metadata["duplicates_found"].value == 0
    assert metadata["failed_total"].value == 0 and metadata["queue_depth"].value == 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"no_duplicate_posts": True, "no_missing_tweet_ids": True, "no_stuck_items": True,
                      "queued_media_intact": True}
    assert jobruns.last_success(engine, jobruns.POST) is not None


def test_post_job_fails_and_stays_failed_on_a_missing_tweet_id(
        engine: sa.Engine, db_url: str, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_DATABASE_URL", db_url)
    add_account(engine, "alice")  # nothing due, so nothing is posted; an earlier post lacks its id
    add_item(engine, "alice", ["posted but never recorded"], s.POSTED, tweets=0)
    result = defs.resolve_job_def("post_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == ["no_missing_tweet_ids"]
