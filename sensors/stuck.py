"""`stuck_work_sensor`: breakers forced open (at once) or open too long, and items stuck in flight -> alert (no
run: posting runs, dispatched within 15 s of an unknown outcome, reconcile stuck items by themselves; this sensor
tells a human when they do not)."""

import dagster as dg

from pipeline import integrity
from pipeline.alerts import tell_forced_open
from pipeline.breaker import Breaker
from pipeline.settings import load_settings
from resources import Alerts, Database
from sensors.common import SENSOR_INTERVAL_S

BREAKER_ALERT_AFTER_S = 3600


@dg.sensor(
    name="stuck_work_sensor",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on breakers forced open (once per account and episode), open longer than an hour, and on items stuck in claimed/posting/unknown past the lease.",
)
def stuck_work_sensor(context: dg.SensorEvaluationContext, database: Database, alerts: Alerts):
    settings = load_settings()
    engine = database.engine
    sink = alerts.sink(context.log)
    found: list[str] = []

    # Forced open needs a human at once: one alert per account and episode, whoever forced it.
    told = tell_forced_open(sink, Breaker(engine).status())
    found += [f"breaker @{a} forced open" for a in told]
    for b in integrity.open_breakers(engine, older_than_s=BREAKER_ALERT_AFTER_S):
        if b["state"] == "forced_open":
            continue
        found.append(f"breaker @{b['account']}")
        sink.send(
            key=f"breaker-open:{b['account']}",
            title=f"Breaker for @{b['account']} open for {b['open_for_min']:.0f} min",
            body=(f"state {b['state']}{' (forced: needs a human)' if b['forced'] else ''}, reason: {b['reason']}, "
                  f"opened {b['opened_at']}, open until {b['open_until'] or 'reset'}. Nothing is posted for this "
                  f"account meanwhile. See `pipeline breaker status`; `pipeline breaker reset {b['account']}` once fixed."),
            severity="error" if b["forced"] else "warning",
        )

    stuck = integrity.stuck_items(engine, lease_s=settings.lease_s, limit=50)
    if stuck.total:
        found.append(f"{stuck.total} stuck items")
        ids = ",".join(str(r["item_id"]) for r in stuck.rows)
        sink.send(
            key=f"stuck-items:{ids}"[:200],
            title=f"{stuck.total}{'+' if stuck.truncated else ''} items stuck in flight",
            body=integrity.markdown(stuck.rows, limit=10)
            + "\nPosting runs reconcile these; if they stay, check the post_job runs and `pipeline queue`.",
            severity="warning",
        )
    return dg.SkipReason("; ".join(found) + " (alerted)" if found else "no open breakers or stuck items")
