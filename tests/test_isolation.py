"""Accounts post in parallel and apart, in real Dagster runs against the sandbox in real Chromium: one
account's stall or rate limit never delays another's posts (accounts packed into one run each post on their
own thread and browser), and two posting runs for one account never overlap, whichever way they were
launched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from pipeline import queue
from pipeline import schema as s
from resources import Database
from sensors.dispatch import dispatch_sensor
from tests.conftest import once_on_postgres
from tests.fixtures_world import World

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")
POST_TIMEOUT_S = 30  # a stalled post costs this long: far longer than the healthy account's whole run
LINGER_S = 2  # tagged runs linger after their last post (5 min by default); briefly here, so they end


def _env(world: World, tmp_path: Path, **settings: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(DAGSTER_HOME=str(home), PIPELINE_DATABASE_URL=world.settings.database_url,
               PIPELINE_X_BASE_URL=world.sandbox.url, PIPELINE_STATE_DIR=str(world.state_dir),
               PIPELINE_POST_TIMEOUT_S=str(POST_TIMEOUT_S), PIPELINE_RECONCILE_SETTLE_S="0.5",
               PIPELINE_DISPATCH_HORIZON_S="0", PIPELINE_DISPATCH_LINGER_S=str(LINGER_S))
    env.update({f"PIPELINE_{k.upper()}": v for k, v in settings.items()})
    # Create Dagster's own storage once: runs starting together on an empty DAGSTER_HOME race to stamp it.
    subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"], env=env,
                   cwd=ROOT, check=True, capture_output=True)
    return env


def _launch(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([DAGSTER, *args, "-m", "pipeline.definitions"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=240)
    return out


def _live_at(tweet: dict) -> float:
    return datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
@pytest.mark.timeout(600)
@once_on_postgres  # threads, not SQL, keep accounts apart: once
def test_a_stalling_and_a_rate_limited_account_never_delay_a_healthy_one(world: World, tmp_path: Path,
                                                                          db_url: str) -> None:
    for handle in ("a_stalls", "b_limited", "healthy"):
        world.login(handle)
        for n in range(3):
            world.enqueue(handle, f"@{handle} post number {n}")
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 600, "accounts": ["a_stalls"]},
                              "rate_limit": {"p": 1.0, "reset_s": 600, "accounts": ["b_limited"]}})

    # What the daemon does: the dispatch sensor packs the three accounts due together into one run;
    # the healthy account comes last, so posted one after another it would wait out both others.
    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources={"database": Database(url=db_url)}) as context:
        requests = dispatch_sensor.evaluate_tick(context).run_requests
    assert [r.tags.get("pipeline/accounts") for r in requests] == ["a_stalls,b_limited,healthy"]
    env = _env(world, tmp_path)
    proc = _launch(env, "job", "execute", "-j", "post_job", "--tags", json.dumps(requests[0].tags))
    output = _finish(proc)
    assert proc.returncode == 0, output[-3000:]

    healthy = world.truth("healthy")
    assert sorted(t["text"] for t in healthy) == [f"@healthy post number {n}" for n in range(3)]
    # Posted one after another, the healthy account would wait out the stalled post's 30 s timeout first.
    # Judged against that timeout, not the wall clock: a loaded machine slows both accounts alike.
    stalled = world.truth("a_stalls")
    assert len(stalled) == 1
    stalled_until = _live_at(stalled[0]) + POST_TIMEOUT_S
    last_live = max(_live_at(t) for t in healthy)
    assert last_live < stalled_until, (
        f"healthy account's last post went live {last_live - stalled_until:.1f} s after the stalled post timed out")

    # The stalled post was stored by X: reconciled to posted, and the account stopped for the run (no second
    # stall). The rate-limited account posted nothing and its items wait for the breaker.
    stalled_items = queue.list_items(world.engine, account="a_stalls")
    assert Counter(i.state for i in stalled_items) == {"posted": 1, "queued": 2}
    assert world.truth("b_limited") == []
    assert {i.state for i in queue.list_items(world.engine, account="b_limited")} == {"queued"}

    # Nothing duplicated: each stored tweet belongs to exactly one item part, each text once per account.
    truth = world.sandbox.tweets()
    assert len({(t["account"], t["text"]) for t in truth}) == len(truth)
    with world.engine.connect() as conn:
        recorded = dict(conn.execute(sa.select(s.tweets.c.tweet_id, s.tweets.c.account)).all())
    assert recorded == {t["id"]: t["account"] for t in truth}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_posting_runs_for_one_account_never_overlap_by_any_launch_path(world: World, tmp_path: Path) -> None:
    """A dispatched run (tagged, `dagster job execute`) and a UI-style materialization of posted_tweets
    (untagged, `dagster asset materialize`) start together for the same account with slow posts: one holds
    the account's lease and posts everything once; the other skips the account."""
    texts = [f"Only one run posts this, number {n}" for n in range(4)]
    for text in texts:
        world.enqueue("alice", text)
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 3}})  # slow, within the timeout
    env = _env(world, tmp_path)
    procs = [
        _launch(env, "job", "execute", "-j", "post_job", "--tags", json.dumps({"pipeline/account": "alice"})),
        _launch(env, "asset", "materialize", "--select", "posted_tweets"),
    ]
    outputs = [_finish(p) for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-2000:] for o in outputs)

    assert sorted(t["text"] for t in world.truth("alice")) == sorted(texts)
    with world.engine.connect() as conn:
        workers = set(conn.execute(sa.select(s.post_attempts.c.worker).where(s.post_attempts.c.account == "alice"))
                      .scalars())
        leftover = conn.execute(sa.select(sa.func.count()).select_from(s.account_leases)).scalar()
    assert len(workers) == 1, f"two runs posted for @alice: {workers}"
    assert leftover == 0  # released at the end of each run
    # The other run saw the lease and skipped @alice; the UI shows it on that run's materialization.
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        events = instance.fetch_materializations(dg.AssetKey("posted_tweets"), limit=10).records
        skipped = [e.asset_materialization.metadata["skipped_busy_accounts"].value for e in events]
        posted = [e.asset_materialization.metadata["posted_by_account"].value for e in events]
    assert sorted(skipped) == ["alice", "none"]
    assert sorted(len(p.get("alice", [])) for p in posted) == [0, 4]
