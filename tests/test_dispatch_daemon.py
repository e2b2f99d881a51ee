"""Lingering posting runs under `dagster-daemon` with the shipped dagster.yaml (tests/daemon_stack.py: real runs,
real Chromium, the sandbox's ground truth): a run posts an item that fell due after it started without a new
run, ends after the linger time with nothing due, ends at its maximum age, and two runs of one account never
overlap. Linger and run maximum are shortened through the environment to keep the test time modest."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from pipeline.daemons import read_daemon_locks
from tests.daemon_stack import DaemonStack

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED]


def _runs(stack: DaemonStack, account: str) -> list[dg.RunRecord]:
    """The account's post_job runs, oldest first."""
    with dg.DagsterInstance.from_config(str(stack.home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="post_job", tags={"pipeline/account": account}))
    return sorted(records, key=lambda r: r.create_timestamp)


def _wait_no_active_run(stack: DaemonStack, account: str, timeout_s: float) -> list[dg.RunRecord]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = _runs(stack, account)
        if not any(r.dagster_run.status in ACTIVE for r in runs) or time.monotonic() > deadline:
            return runs
        stack.check_daemon()
        time.sleep(1)


def _live(stack: DaemonStack, text: str, timeout_s: float) -> float:
    live = stack.wait_live({text}, timeout_s=timeout_s)
    assert text in live, f"{text!r} never went live; daemon log: {stack.log_path}"
    return live[text]


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_lingering_run_posts_later_items_itself_then_ends_and_the_next_post_gets_a_new_run() -> None:
    linger_s = 20
    with DaemonStack(["linger"], settings={"dispatch_linger_s": str(linger_s)}) as stack:
        stack.schedule([("linger", "first post, due 20 s after the start", 20)])
        _live(stack, "first post, due 20 s after the start", timeout_s=150)
        assert len(_runs(stack, "linger")) == 1
        # The daemon is pipeline-daemon: it holds the lock health reads, naming every daemon it runs.
        (daemon,) = read_daemon_locks(stack.workdir / "state")
        assert daemon.alive and daemon.pid == stack.daemon.pid and {"SCHEDULER", "SENSOR"} <= set(daemon.types)

        # Falls due after the run started and posted: the lingering run posts it, within seconds of its time.
        stack.schedule([("linger", "second post, enqueued after the first went live", 5)])
        scheduled = stack.scheduled_times()
        live_second = _live(stack, "second post, enqueued after the first went live", timeout_s=60)
        lateness = live_second - scheduled["second post, enqueued after the first went live"]
        runs = _runs(stack, "linger")
        assert len(runs) == 1 and runs[0].dagster_run.status == dg.DagsterRunStatus.STARTED
        assert -1.0 <= lateness <= 5.0, f"the lingering run posted {lateness:.1f} s after the item's time"

        # Nothing due any more: the run ends about linger_s after its last due item, and succeeds.
        runs = _wait_no_active_run(stack, "linger", timeout_s=linger_s + 60)
        assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        lingered = runs[0].end_time - live_second
        assert linger_s - 2 <= lingered <= linger_s + 25, f"ended {lingered:.1f} s after its last post"

        # The next post finds no live run: the sensor starts a new one.
        stack.schedule([("linger", "third post, after the run ended", 3)])
        _live(stack, "third post, after the run ended", timeout_s=120)
        assert len(_runs(stack, "linger")) == 2
        assert stack.run_overlaps() == [] and stack.duplicates() == 0


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_lingering_run_ends_at_its_maximum_age_and_the_next_run_never_overlaps_it() -> None:
    run_max_s = 30
    settings = {"dispatch_linger_s": "600", "dispatch_run_max_s": str(run_max_s)}
    with DaemonStack(["maxage"], settings=settings) as stack:
        stack.schedule([("maxage", "posted by the first run", 15)])
        _live(stack, "posted by the first run", timeout_s=150)
        # Due after the first run's maximum age: it ends (however long its linger), and a second run posts this.
        stack.schedule([("maxage", "posted by the second run", run_max_s + 15)])
        _live(stack, "posted by the second run", timeout_s=run_max_s + 120)

        runs = _runs(stack, "maxage")
        assert len(runs) >= 2, [r.dagster_run.run_id for r in runs]
        first = runs[0]
        assert first.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        # Its age counts from the start of posting (after the process start), so allow for the start and exit.
        assert first.end_time - first.start_time <= run_max_s + 30, first.end_time - first.start_time
        assert stack.run_overlaps() == []  # the queue starts the second run only after the first ended
        assert stack.duplicates() == 0
