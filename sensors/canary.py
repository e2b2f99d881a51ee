"""`canary_job` (hourly, `canary_schedule`): `pipeline.canary.run_canary` under Dagster.

A job, not a sensor: the canary needs the browser, and Playwright's sync API may not run in a sensor's thread
pool (resources/browser.py). A miss raises the `ui_changed` alert naming the selector and fails nothing else;
a canary that could not run at all fails its run, which the run-failure sensor tells.
"""

import dagster as dg

from pipeline.settings import load_settings
from resources import Alerts, Browser, Database
from sensors.common import JOB_TAG

CANARY_JOB = "canary_job"


@dg.op(description="Composer, timeline and one status page per account, never posting; alert each missing selector.")
def check_x_pages(context: dg.OpExecutionContext, database: Database, browser: Browser,
                  alerts: Alerts) -> dg.Output[dict]:
    from pipeline.canary import run_canary

    report = run_canary(database.ready_engine(), load_settings(), browser.session, alerts=alerts.sink(context.log))
    context.log.info(report.render())
    misses = sum(len(a.misses) for a in report.accounts)
    return dg.Output(report.as_json(), metadata={"accounts": len(report.accounts), "misses": misses,
                                                 "report": dg.MetadataValue.md(f"```\n{report.render()}\n```")})


@dg.job(name=CANARY_JOB,
        tags={JOB_TAG: "canary", "dagster/max_runtime": "900"},
        description="Check X's pages for every selector the client needs (no posting).")
def canary_job() -> None:
    check_x_pages()


canary_schedule = dg.ScheduleDefinition(
    name="canary_schedule",
    job=canary_job,
    cron_schedule="30 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Run the canary every hour, between plan (:00) and performance (:45) runs.",
)
