"""What the pipeline's own jobs did, in the app database (`job_runs`).

Dagster keeps run records in its instance; this table is the app's own copy of the few facts
`pipeline health` needs (when did planning and posting last succeed, and did they produce anything), so
health can be answered from PIPELINE_DATABASE_URL alone, even when the Dagster instance is elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.db import db_now, transaction

PLAN, POST, METRICS, PERFORMANCE = "plan", "post", "metrics", "performance"


def record(engine: Engine, job: str, ok: bool, produced: int, detail: dict[str, Any] | None = None,
           started_at: datetime | None = None) -> int:
    """Write one finished run; returns its id. `started_at` defaults to the finish time (database clock)."""
    with transaction(engine) as conn:
        now = db_now(conn)
        result = conn.execute(s.job_runs.insert().values(
            job=job, started_at=started_at or now, finished_at=now, ok=ok, produced=int(produced),
            detail=_jsonable(detail or {}),
        ))
        return int(result.inserted_primary_key[0])


def last_success(engine: Engine, job: str) -> datetime | None:
    """When `job` last finished successfully (uses ix_job_runs_job_finished)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(s.job_runs.c.finished_at)).where(s.job_runs.c.job == job, s.job_runs.c.ok.is_(True))
        ).scalar()


def last_run(engine: Engine, job: str) -> dict[str, Any] | None:
    """The newest finished run of `job`, successful or not."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(s.job_runs).where(s.job_runs.c.job == job, s.job_runs.c.finished_at.is_not(None))
            .order_by(s.job_runs.c.finished_at.desc(), s.job_runs.c.id.desc()).limit(1)
        ).first()
    return dict(row._mapping) if row else None


@dataclass
class Tracked:
    produced: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@contextmanager
def track(engine: Engine, job: str) -> Iterator[Tracked]:
    """Record the enclosed work as one job run: ok when the block returns, failed (with the error) when it
    raises. The exception is re-raised; a failure to record never hides it."""
    with engine.connect() as conn:
        started = db_now(conn)
    run = Tracked()
    try:
        yield run
    except BaseException as exc:
        try:
            record(engine, job, False, run.produced,
                   {**run.detail, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}, started_at=started)
        except Exception:  # noqa: BLE001 - the database may be the thing that failed
            pass
        raise
    record(engine, job, True, run.produced, run.detail, started_at=started)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
