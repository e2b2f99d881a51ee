"""Each Dagster daemon's status, read from the instance: `python -m resources.daemon` prints it as JSON.

Sensors run inside the daemon and cannot notice that it (or one of its threads) stopped; this probe reads
the heartbeats every daemon writes into the instance's storage (`get_daemon_statuses`, the data behind
`dagster-daemon liveness-check`). `pipeline health` runs it as a subprocess (pipeline/daemons.py) and judges the
ages itself, so the core never imports Dagster.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import dagster as dg


def daemon_statuses(instance: dg.DagsterInstance | None = None) -> dict[str, Any]:
    """{"daemons": [...]} for every daemon the instance requires, or {"error": ...} when it cannot be read.
    Without `instance`, the one DAGSTER_HOME names."""
    if instance is None:
        if not os.environ.get("DAGSTER_HOME"):
            return {"error": "DAGSTER_HOME is not set: point it at the directory holding dagster.yaml "
                             "(see README, Production)"}
        with dg.DagsterInstance.get() as home_instance:
            return daemon_statuses(home_instance)
    now = time.time()
    statuses = instance.get_daemon_statuses()
    beats = instance.get_daemon_heartbeats()
    daemons = []
    for daemon_type, status in sorted(statuses.items()):
        if not status.required:
            continue
        beat = beats.get(daemon_type)
        errors = [(e.message or "").strip().splitlines()[0][:300] for e in (beat.errors or [])] if beat else []
        daemons.append({"daemon_type": daemon_type,
                        "heartbeat_age_s": None if beat is None else round(max(0.0, now - beat.timestamp), 1),
                        "errors": errors})
    return {"daemons": daemons}


if __name__ == "__main__":
    try:
        print(json.dumps(daemon_statuses()))
    except Exception as exc:  # noqa: BLE001 - the caller reads the reason from the JSON
        print(json.dumps({"error": f"cannot read the Dagster instance: {type(exc).__name__}: {str(exc)[:300]}"}))
