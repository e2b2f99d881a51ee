"""Alerts: the alerts table and a structured log line always; a Slack-compatible webhook when configured."""

from typing import Any

import dagster as dg
from pydantic import Field

from pipeline.alerts import AlertLedger, AlertSink
from pipeline.settings import load_settings_lenient
from resources.database import Database


class Alerts(dg.ConfigurableResource):
    """`webhook_url` is normally `dg.EnvVar("PIPELINE_ALERT_WEBHOOK_URL")`: a secret, shown in the UI only as
    the variable's name and never logged. Empty means no webhook (table and logs only)."""

    database: Database
    webhook_url: str = Field(default="", description="Slack-compatible webhook (secret)")
    cooldown_s: int | None = Field(default=None, description="Same-key alerts are not re-sent within this (PIPELINE_ALERT_COOLDOWN_S)")

    def sink(self, logger: Any = None) -> AlertSink:
        settings = load_settings_lenient()[0]  # alerts must go out when another setting is invalid
        cooldown = self.cooldown_s if self.cooldown_s is not None else settings.alert_cooldown_s
        return AlertSink(self.database.engine, webhook_url=self.webhook_url, cooldown_s=cooldown, logger=logger,
                         ledger=AlertLedger.in_state_dir(settings.state_path))
