"""Alerts for what cannot alert for itself: the database, the journal, the Dagster daemons.

A sensor that needs the database cannot tell that the database is down, and a dead sensor daemon runs no
sensor at all. So these findings of `pipeline health` are turned into alerts here, through the sink's
out-of-band path (de-duplicated in a file, not in the database), by a sensor (sensors/local.py,
sensors/daemons.py) and by `pipeline health --alert` run from outside Dagster (a systemd timer or cron line).
All of them share one ledger, so the same condition is told once, and a healed one is re-armed.
"""

from __future__ import annotations

from pipeline.alerts import AlertSink
from pipeline.health import OK, UNHEALTHY, Finding, HealthReport

KEY_PREFIX = "health:"
_DAEMON_FINDINGS = ("daemon:", "daemon-process:")  # one daemon (heartbeat), one pipeline-daemon process (lock)
_DAEMON_FIX = ("To fix: restart `pipeline-daemon` (systemctl restart pipeline-daemon) and read its log; "
               "`pipeline health` shows every daemon.")
_FIX = {
    "database": "To fix: check that the database server is up and that PIPELINE_DATABASE_URL points at it; "
                "posting and planning wait for it, tweet ids posted meanwhile go to the journal. "
                "`pipeline health` shows when it answers again.",
    "journal": "To fix: do not post these again. The next post run replays them into the database once it "
               "answers; if it is down, bring it back (see the database alert), then check `pipeline health`.",
    "daemon": "To fix: check DAGSTER_HOME and start `pipeline-daemon` (see README, Production).",
    "configuration": "To fix: correct the variable named above where the daemon reads its environment "
                     "(e.g. /etc/pipeline.env), check it with `pipeline config`, then restart the daemon; until "
                     "then every run that reads it fails.",
}
_TITLE = {
    "database": "Database unreachable: posting and planning are stopped",
    "journal": "Posted tweets not yet recorded in the database (journal)",
    "daemon": "Dagster daemons are not running (or cannot be read)",
    "configuration": "A setting is invalid: runs fail until it is fixed",
}


def watched(name: str) -> bool:
    """The findings told here: those no database-reading sensor can raise for itself."""
    return name in _FIX or name.startswith(_DAEMON_FINDINGS)


def _title(f: Finding) -> str:
    if f.name.startswith("daemon:"):
        return f"Dagster daemon {f.name.split(':', 1)[1].upper()} is down"
    if f.name.startswith("daemon-process:"):
        return f"The pipeline-daemon process {f.name.split(':', 1)[1]} is down"
    return _TITLE[f.name]


def tell_watched(report: HealthReport, sink: AlertSink) -> list[str]:
    """Alert each unhealthy watched finding once (out of band), re-arm each one that is ok again.
    Returns the keys alerted now. A degraded finding (a daemon alive but with errors) does neither."""
    db_up = not any(f.name == "database" and f.status == UNHEALTHY for f in report.findings)
    sent: list[str] = []
    for f in report.findings:
        if not watched(f.name):
            continue
        key = KEY_PREFIX + f.name
        if f.status == UNHEALTHY:
            fix = _DAEMON_FIX if f.name.startswith(_DAEMON_FINDINGS) else _FIX[f.name]
            if sink.send_out_of_band(key, _title(f), f"{f.reason}\n{fix}", severity="critical", record=db_up):
                sent.append(key)
        elif f.status == OK:
            sink.resolve(key, database=db_up, exact=True)
    if any(f.name.startswith("daemon:") for f in report.findings):  # the probe worked: daemons are readable
        sink.resolve(KEY_PREFIX + "daemon", database=db_up, exact=True)
    return sent
