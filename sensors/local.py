"""`local_state_sensor`: the database down, tweet ids waiting in the journal or an invalid setting -> an alert.

Every other sensor reads the database, so none of them can tell that it is gone; and the journal file
(pipeline/journal.py) holds tweets that are live on X but not yet recorded. This sensor runs the two checks
that need neither (pipeline.health.check_local) and alerts through the out-of-band ledger file, de-duplicated
with `pipeline health --alert` and re-armed when the condition heals (pipeline.watch).
"""

import dagster as dg

from pipeline.health import check_local
from pipeline.settings import load_settings_lenient
from pipeline.watch import tell_watched
from resources import Alerts, Database
from sensors.common import SENSOR_INTERVAL_S


@dg.sensor(
    name="local_state_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts when a setting is invalid, the app database does not answer or the journal holds "
                "unrecorded tweet ids (de-duplicated in a state file, so it works while the database is down).",
)
def local_state_sensor(context: dg.SensorEvaluationContext, database: Database, alerts: Alerts):
    settings, problems = load_settings_lenient()
    report = check_local(settings, database.engine, problems)
    sent = tell_watched(report, alerts.sink(context.log))
    bad = [f"{f.name}: {f.reason}" for f in report.findings if f.status != "ok"]
    return dg.SkipReason(("; ".join(bad)[:500] + (f" (alerted: {', '.join(sent)})" if sent else ""))
                         if bad else "settings valid, database answers, journal empty")
