"""The Dagster daemon: its process (`pipeline-daemon`) and each daemon's status (`python -m resources.daemon`).

`pipeline-daemon [dagster-daemon run options]` is `dagster-daemon run` holding this machine's daemon lock
(pipeline/daemons.py) for its whole life, so `pipeline health` and `daemon_health_sensor` see its death at
their next look instead of a heartbeat limit later.

Sensors run inside the daemon and cannot notice that it (or one of its threads) stopped; this probe reads
the heartbeats every daemon writes into the instance's storage (`get_daemon_statuses`, the data behind
`dagster-daemon liveness-check`). `pipeline health` runs it as a subprocess (pipeline/daemons.py) and judges the
ages itself, so the core never imports Dagster.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
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


def main(argv: Sequence[str] | None = None) -> None:
    """`pipeline-daemon`: `dagster-daemon run` with the same options, under the daemon lock."""
    from dagster._daemon.cli import run_command

    from pipeline.daemons import DaemonAlreadyRunning, hold_daemon_lock
    from pipeline.settings import ConfigError, load_settings_lenient

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings, _ = load_settings_lenient()  # an invalid setting is alerted by the sensors this daemon runs
        with dg.DagsterInstance.get() as instance:
            types = sorted(instance.get_required_daemon_types())
        with hold_daemon_lock(settings.state_path, "daemon", types):
            run_command.main(args=args, prog_name="pipeline-daemon", obj={})
    except (ConfigError, DaemonAlreadyRunning, dg.DagsterInvariantViolationError) as exc:
        sys.exit(f"pipeline-daemon: {exc}")


if __name__ == "__main__":
    try:
        print(json.dumps(daemon_statuses()))
    except Exception as exc:  # noqa: BLE001 - the caller reads the reason from the JSON
        print(json.dumps({"error": f"cannot read the Dagster instance: {type(exc).__name__}: {str(exc)[:300]}"}))
