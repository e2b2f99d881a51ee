"""`daemon_health_sensor`: a Dagster daemon other than the sensor daemon stopped -> alert naming it.

The scheduler, the run queue or run monitoring can die while the sensor daemon lives on (they are threads, or
separate processes, of `dagster-daemon run`). The sensor daemon itself cannot be watched from inside: that is
what `pipeline health`, run from outside, is for.
"""

import dagster as dg

from pipeline.daemons import WHAT_IT_RUNS, DaemonProbe
from pipeline.settings import load_settings
from resources import Alerts
from resources.daemon import daemon_statuses
from sensors.common import SENSOR_INTERVAL_S


@dg.sensor(
    name="daemon_health_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts when a Dagster daemon (scheduler, run queue, monitoring...) stops sending heartbeats.",
)
def daemon_health_sensor(context: dg.SensorEvaluationContext, alerts: Alerts):
    max_age_s = load_settings().daemon_max_heartbeat_age_s
    probe = DaemonProbe.from_json(daemon_statuses(context.instance))
    down = [d for d in probe.daemons if d.daemon_type != "SENSOR" and d.down(max_age_s)]
    sink = alerts.sink(context.log)
    for d in down:
        age = "never" if d.heartbeat_age_s is None else f"{d.heartbeat_age_s:.0f} s ago"
        why = f"last heartbeat {age}"
        sink.send(key=f"daemon-down:{d.daemon_type}", title=f"Dagster daemon {d.daemon_type} is down",
                  body=f"{why} (limit {d.limit_s(max_age_s):.0f} s): {WHAT_IT_RUNS.get(d.daemon_type, 'its work does not happen')}. "
                       "Restart `dagster-daemon run` (systemctl restart pipeline-daemon) and check its log; "
                       "`pipeline health` shows every daemon.",
                  severity="critical")
    return dg.SkipReason(f"down: {', '.join(d.daemon_type for d in down)} (alerted)" if down
                         else f"{len(probe.daemons)} daemons beating")
