"""`daemon_health_sensor`: a Dagster daemon other than the sensor daemon stopped -> alert naming it.

The scheduler, the run queue or run monitoring can die while the sensor daemon lives on (they are threads, or
separate processes, of `pipeline-daemon`; a process that died is seen at once by its free lock, a hung thread
by its heartbeat: pipeline/daemons.py). The sensor daemon itself cannot be watched from inside: that is
what `pipeline health --alert`, run from outside, is for. Both alert through pipeline.watch: one key per daemon
(health:daemon:<type>) or dead process (health:daemon-process:<name>) in the out-of-band ledger, so the sensor
and the watchdog never tell the same death twice.
"""

import dagster as dg

from pipeline.daemons import DaemonProbe, read_daemon_locks
from pipeline.health import check_daemons
from pipeline.settings import load_settings
from pipeline.watch import tell_watched
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
    settings = load_settings()
    max_age_s = settings.daemon_max_heartbeat_age_s
    probe = DaemonProbe.from_json(daemon_statuses(context.instance)).with_processes(
        read_daemon_locks(settings.state_path))
    report = check_daemons(probe, max_age_s)
    sent = tell_watched(report, alerts.sink(context.log))
    down = [d.daemon_type for d in probe.daemons if d.down(max_age_s)]
    return dg.SkipReason(f"down: {', '.join(down)} (alerted now: {', '.join(sent) or 'none'})" if down
                         else f"{len(probe.daemons)} daemons beating")
