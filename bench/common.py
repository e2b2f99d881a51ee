"""Shared helpers for the benchmarks: percentiles, a Markdown table, and writing bench/results/*.json."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "mean_ms": round(statistics.fmean(ms), 3), "n": len(ms)}


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---" for _ in columns) + "|\n"
    return head + "\n".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows)


def write_result(name: str, payload: dict[str, Any], table: str) -> None:
    """Also records the load average at the end: a tail latency means little without it."""
    payload.setdefault("load_average", [round(x, 2) for x in os.getloadavg()])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(json.dumps(payload, indent=2, default=str))
    print()
    print(table)


def start_sandbox(port: int) -> tuple[subprocess.Popen[bytes], Any]:
    """A sandbox in its own process, with X's duplicate and volume rules off (benchmarks post many alike posts);
    returns the process (terminate it when done) and its admin client once it answers."""
    from sandbox.client import SandboxAdmin

    server = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    admin = SandboxAdmin(f"http://127.0.0.1:{port}")
    for _ in range(100):
        try:
            if admin.health():
                break
        except OSError:
            time.sleep(0.1)
    admin.set_rules(duplicate_window_hours=0, posts_per_3h=0, posts_per_day=0)
    return server, admin
