"""job_runs: the app's own record of plan/post/metrics runs, read by `pipeline health`."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pipeline import jobruns


def test_record_and_last_success(engine: sa.Engine) -> None:
    assert jobruns.last_success(engine, jobruns.PLAN) is None
    jobruns.record(engine, jobruns.PLAN, ok=True, produced=3, detail={"per_account": {"alice": 3}})
    first = jobruns.last_success(engine, jobruns.PLAN)
    assert first is not None and first.tzinfo is not None
    jobruns.record(engine, jobruns.PLAN, ok=False, produced=0, detail={"error": "boom"})
    assert jobruns.last_success(engine, jobruns.PLAN) == first  # a failure is not a success
    last = jobruns.last_run(engine, jobruns.PLAN)
    assert last["ok"] is False and last["detail"] == {"error": "boom"}
    assert jobruns.last_success(engine, jobruns.POST) is None  # per job


def test_track_records_success_and_failure(engine: sa.Engine) -> None:
    with jobruns.track(engine, jobruns.POST) as run:
        run.produced = 2
        run.detail = {"posted": 2, "odd": object()}  # anything not JSON is stored as text
    ok = jobruns.last_run(engine, jobruns.POST)
    assert ok["ok"] is True and ok["produced"] == 2 and ok["detail"]["posted"] == 2
    assert ok["started_at"] <= ok["finished_at"]

    with pytest.raises(RuntimeError, match="browser gone"):
        with jobruns.track(engine, jobruns.POST) as run:
            run.produced = 1
            raise RuntimeError("browser gone")
    failed = jobruns.last_run(engine, jobruns.POST)
    assert failed["ok"] is False and failed["produced"] == 1
    assert "RuntimeError: browser gone" in failed["detail"]["error"]
