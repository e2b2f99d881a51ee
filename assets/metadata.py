"""Materialisation metadata shared by the assets: numeric values, so the UI plots them over time."""

import dataclasses
from collections import Counter
from typing import Any

import dagster as dg
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.queue import count_by_state


def queue_metadata(engine: Engine) -> dict[str, dg.MetadataValue]:
    """Queue depth (queued items) and a count per state."""
    counts = count_by_state(engine)
    out: dict[str, dg.MetadataValue] = {"queue_depth": dg.MetadataValue.int(counts.get(s.QUEUED, 0))}
    for state in (s.POSTING, s.UNKNOWN, s.NEEDS_REVIEW):
        out[f"items_{state}"] = dg.MetadataValue.int(counts.get(state, 0))
    return out


def breaker_metadata(states: dict[str, str]) -> dict[str, dg.MetadataValue]:
    """Breaker states as counts of accounts (closed/open/half_open/forced_open, as pipeline.breaker names them)."""
    counts = Counter(states.values())
    out = {f"breakers_{state}": dg.MetadataValue.int(counts.get(state, 0))
           for state in ("closed", "open", "half_open", "forced_open")}
    for state, n in counts.items():
        out.setdefault(f"breakers_{state}", dg.MetadataValue.int(n))
    return out


def count_metadata(prefix: str, counts: dict[str, int] | None) -> dict[str, dg.MetadataValue]:
    counts = counts or {}
    out = {f"{prefix}{key}": dg.MetadataValue.int(int(n)) for key, n in sorted(counts.items())}
    out[f"{prefix}total"] = dg.MetadataValue.int(sum(int(n) for n in counts.values()))
    return out


def report_dict(report: Any) -> dict[str, Any]:
    """A core report as a dict for the job_runs row (its own `as_dict()` when it has one)."""
    if callable(getattr(report, "as_dict", None)):
        return report.as_dict()
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return dict(getattr(report, "__dict__", {}))
