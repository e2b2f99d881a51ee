"""The Dagster daemon's heartbeat age, read from the instance (for `pipeline health`).

Sensors run inside the daemon and cannot notice that it stopped; an external probe reads the heartbeats
the daemon writes into the instance's storage.
"""

from __future__ import annotations

import os
import time

import dagster as dg


def daemon_heartbeat_age_s() -> float | None:
    """Seconds since the newest daemon heartbeat; None when DAGSTER_HOME is unset or none was ever written."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    with dg.DagsterInstance.get() as instance:
        beats = instance.get_daemon_heartbeats()
    if not beats:
        return None
    return max(0.0, time.time() - max(b.timestamp for b in beats.values()))
