"""Alerts: recorded in the `alerts` table, logged as one structured line, sent to a Slack-compatible webhook.

One condition raises one alert, not one per sensor tick: `send` is de-duplicated by `key` with a cool-down
read from the alerts table (durable, so a restarted sensor or a second process does not re-send). The
webhook URL is a secret: it is never logged, and delivery errors are recorded without it.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.db import db_now, is_sqlite, transaction

SEVERITIES = ("info", "warning", "error", "critical")
WEBHOOK_TIMEOUT_S = 5.0
MAX_BODY_CHARS = 3000  # Slack truncates long messages; the full body stays in the alerts table

_LOG_METHOD = {"info": "info", "warning": "warning", "error": "error", "critical": "critical"}


class AlertSink:
    """Record, log and deliver alerts.

    `logger` may be a `logging.Logger` or Dagster's `context.log`; both have info/warning/error/critical.
    """

    def __init__(self, engine: Engine, webhook_url: str = "", cooldown_s: int = 3600, logger: Any = None,
                 timeout_s: float = WEBHOOK_TIMEOUT_S) -> None:
        self._engine = engine
        self._webhook_url = webhook_url or ""
        self._cooldown_s = cooldown_s
        self._logger = logger or logging.getLogger("pipeline.alerts")
        self._timeout_s = timeout_s

    @property
    def webhook_configured(self) -> bool:
        return bool(self._webhook_url)

    def __repr__(self) -> str:  # never show the webhook
        return f"AlertSink(webhook={'set' if self._webhook_url else 'unset'}, cooldown_s={self._cooldown_s})"

    def send(self, key: str, title: str, body: str, severity: str = "error") -> bool:
        """Raise an alert. Returns False (and records nothing) when an alert with the same key was raised
        within the cool-down; True when it was recorded (delivery success or failure is recorded in the row)."""
        severity = severity if severity in SEVERITIES else "error"
        key = key[:200]
        alert_id = self._record(key, title, body, severity)
        if alert_id is None:
            self._log(severity, {"event": "alert", "key": key, "severity": severity, "title": title,
                                 "deduplicated": True})
            return False
        delivered, error = self._deliver(title, body, severity)
        if self._webhook_url:
            with transaction(self._engine) as conn:
                conn.execute(s.alerts.update().where(s.alerts.c.id == alert_id)
                             .values(delivered=delivered, delivery_error=error))
        self._log(severity, {"event": "alert", "key": key, "severity": severity, "title": title, "body": body[:500],
                             "alert_id": alert_id, "webhook": "set" if self._webhook_url else "unset",
                             "delivered": delivered, "delivery_error": error})
        return True

    # ------------------------------------------------------------------ internals

    def _record(self, key: str, title: str, body: str, severity: str) -> int | None:
        """Insert the alert unless one with the same key is within the cool-down (atomically)."""
        with transaction(self._engine) as conn:
            if not is_sqlite(conn):  # SQLite's BEGIN IMMEDIATE already serialises writers
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "alert:" + key})
            now = db_now(conn)
            if self._cooldown_s > 0:
                recent = conn.execute(
                    sa.select(s.alerts.c.id)
                    .where(s.alerts.c.key == key, s.alerts.c.created_at > now - timedelta(seconds=self._cooldown_s))
                    .limit(1)
                ).first()
                if recent is not None:
                    return None
            result = conn.execute(s.alerts.insert().values(
                key=key, severity=severity, title=title, body=body, created_at=now, delivered=False,
            ))
            return int(result.inserted_primary_key[0])

    def _deliver(self, title: str, body: str, severity: str) -> tuple[bool, str | None]:
        if not self._webhook_url:
            return False, None
        text = f"[{severity.upper()}] {title}\n{body}"
        if len(text) > MAX_BODY_CHARS:
            text = text[: MAX_BODY_CHARS - 1] + "…"
        request = urllib.request.Request(
            self._webhook_url, data=json.dumps({"text": text}).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "x-posting-pipeline-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310 - operator URL
                status = response.status
            if 200 <= status < 300:
                return True, None
            return False, f"webhook answered HTTP {status}"
        except urllib.error.HTTPError as exc:
            return False, f"webhook answered HTTP {exc.code}"
        except Exception as exc:  # noqa: BLE001 - an alert must never crash its caller
            return False, self._scrub(f"{type(exc).__name__}: {exc}")

    def _scrub(self, text: str) -> str:
        """Delivery errors go to the table and the log: keep the secret URL (and its host) out of them."""
        if self._webhook_url:
            text = text.replace(self._webhook_url, "<webhook>")
        return text[:500]

    def _log(self, severity: str, fields: dict[str, Any]) -> None:
        line = json.dumps(fields, default=str, ensure_ascii=False, sort_keys=True)
        method = getattr(self._logger, _LOG_METHOD[severity], None) or self._logger.info
        try:
            method(line)
        except Exception:  # noqa: BLE001 - logging must never turn an alert into a failure
            pass


def recent_alerts(engine: Engine, limit: int = 50, key_prefix: str | None = None) -> list[dict[str, Any]]:
    """Newest alerts first (for `pipeline health` and tests)."""
    with engine.connect() as conn:
        query = sa.select(s.alerts).order_by(s.alerts.c.created_at.desc(), s.alerts.c.id.desc()).limit(limit)
        if key_prefix:
            query = query.where(s.alerts.c.key.startswith(key_prefix, autoescape=True))
        return [dict(r._mapping) for r in conn.execute(query)]


# ---------------------------------------------------------------------- forced-open breakers

_FORCED_OPEN_FIX = {
    "auth": "the session expired or was logged out: run `pipeline login --account {a}`, then "
            "`pipeline breaker reset --account {a}` (a posting run also closes it once the session works)",
    "automation_block": "X suspects automation: open x.com as @{a} in a normal browser, clear the challenge or "
                        "warning, then `pipeline breaker reset --account {a}`",
}
_FORCED_OPEN_FIX_OTHER = "find out why (`pipeline breaker status`), fix it, then `pipeline breaker reset --account {a}`"


def forced_open_reason_class(reason: str | None) -> str:
    """The error class a forced-open reason starts with ("auth: ...; needs a human" -> "auth")."""
    head = (reason or "forced open").split(":", 1)[0].split(";", 1)[0].strip()
    return head.replace(" ", "_")[:40] or "forced_open"


def tell_forced_open(sink: AlertSink | Any, breakers: list[dict[str, Any]]) -> list[str]:
    """Alert once per forced-open episode of each account: the key names account, reason and when it opened,
    so a second account (or the same account forced open again after a reset) is always told, while the same
    episode is re-sent only as a reminder after the cool-down. Returns the accounts alerted now."""
    told: list[str] = []
    for b in breakers:
        if b.get("state") != "forced_open":
            continue
        account, reason_class = b["account"], forced_open_reason_class(b.get("reason"))
        opened = b.get("opened_at")
        opened_key = opened.isoformat() if hasattr(opened, "isoformat") else str(opened)
        fix = _FORCED_OPEN_FIX.get(reason_class, _FORCED_OPEN_FIX_OTHER).format(a=account)
        if sink.send(key=f"breaker-forced:{account}:{reason_class}:{opened_key}",
                     title=f"@{account}: posting stopped ({reason_class}), needs a human",
                     body=f"The breaker for @{account} is forced open since {opened_key}: {b.get('reason')}. "
                          f"Nothing is posted for @{account} until it is reset. To fix: {fix}.",
                     severity="critical" if reason_class in _FORCED_OPEN_FIX else "error"):
            told.append(account)
    return told
