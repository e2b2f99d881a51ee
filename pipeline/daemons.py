"""Per-daemon liveness for `pipeline health`, without importing Dagster into the core.

The Dagster part (`resources/daemon.py`) runs as a subprocess (`python -m resources.daemon`) and prints each
daemon's status as JSON; this module runs it and reads the answer. A dead scheduler or sensor thread must not
hide behind the run queue's fresh heartbeat, so every daemon is judged on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROBE_TIMEOUT_S = 60.0
# Daemon type (Dagster's name) -> what stops when it is down, for the operator.
WHAT_IT_RUNS = {
    "SCHEDULER": "schedules (plan, post, metrics) do not fire",
    "SENSOR": "sensors (alerts, plan health, empty queue, canary) do not run",
    "QUEUED_RUN_COORDINATOR": "queued runs are never launched",
    "MONITORING": "hung or dead runs are not failed, run retries are not launched",
}
# How often each daemon writes a heartbeat. Dagster beats at most every 30 s, but only when the daemon's loop
# yields: the scheduler's loop sleeps until the next minute boundary, so it beats once a minute. Judging it by
# the 30 s daemons' limit called a healthy scheduler down (the detection bench's false alarm).
DEFAULT_BEAT_S = 30.0
BEAT_INTERVAL_S = {"SCHEDULER": 60.0}


def heartbeat_limit_s(daemon_type: str, max_age_s: float) -> float:
    """The age past which `daemon_type` is down: `max_age_s` is set for 30 s beaters; a daemon that beats less
    often gets the same slack beyond its own cadence (the scheduler: max_age_s + 30 s)."""
    return max_age_s + max(0.0, BEAT_INTERVAL_S.get(daemon_type, DEFAULT_BEAT_S) - DEFAULT_BEAT_S)


@dataclass(frozen=True)
class DaemonState:
    """One daemon's status as `dagster-daemon liveness-check` sees it."""

    daemon_type: str
    heartbeat_age_s: float | None
    errors: list[str] = field(default_factory=list)

    def down(self, max_age_s: float) -> bool:
        """Down: never beat, or beat too long ago. Errors in a fresh heartbeat (a sensor that raised in the last
        5 min) do not make it down, as for `dagster-daemon liveness-check`; health reports them as degraded.
        Dagster tolerates 30 min of silence; ours is the daemon_max_heartbeat_age_s setting, stretched for a
        daemon that beats less often than every 30 s (heartbeat_limit_s)."""
        return self.heartbeat_age_s is None or self.heartbeat_age_s > self.limit_s(max_age_s)

    def limit_s(self, max_age_s: float) -> float:
        return heartbeat_limit_s(self.daemon_type, max_age_s)


@dataclass(frozen=True)
class DaemonProbe:
    """The answer of the probe: each required daemon, or why the probe itself failed."""

    daemons: list[DaemonState] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def beating(cls, age_s: float = 5.0, types: tuple[str, ...] = tuple(WHAT_IT_RUNS)) -> DaemonProbe:
        """Every daemon with a clean heartbeat `age_s` old (for tests)."""
        return cls([DaemonState(t, age_s) for t in types])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DaemonProbe:
        if data.get("error"):
            return cls(error=str(data["error"]))
        return cls([DaemonState(d["daemon_type"], d.get("heartbeat_age_s"),
                                list(d.get("errors") or [])) for d in data.get("daemons", [])])


def probe_daemons(timeout_s: float = PROBE_TIMEOUT_S) -> DaemonProbe:
    """Run the Dagster-side probe in a subprocess and parse its JSON; failures become `error`."""
    try:
        out = subprocess.run([sys.executable, "-m", "resources.daemon"], cwd=PROJECT_ROOT, env=os.environ.copy(),
                             capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return DaemonProbe(error=f"the daemon probe did not answer within {timeout_s:.0f} s "
                                 "(is the Dagster instance storage reachable?)")
    try:
        return DaemonProbe.from_json(json.loads(out.stdout))
    except (ValueError, KeyError, TypeError):
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return DaemonProbe(error=f"the daemon probe failed (exit {out.returncode}): {tail}")
