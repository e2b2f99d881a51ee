"""Alerts: recorded in the `alerts` table, logged as one structured line, sent to a Slack-compatible webhook.

One condition raises one alert, not one per sensor tick: `send` is de-duplicated by `key` with a cool-down
read from the alerts table (durable, so a restarted sensor or a second process does not re-send). A condition
that heals is `resolve`d, so the next time it happens it is told again instead of hiding in the cool-down.
Alerts that must go out while the database is down (the database itself, the journal, a dead daemon) are
de-duplicated out of band by `send_out_of_band`, in a small JSON file under PIPELINE_STATE_DIR (mode 0600).
The webhook URL is a secret: it is never logged, and delivery errors are recorded without it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.db import db_now, is_sqlite, transaction
from pipeline.statefiles import open_private, write_private

SEVERITIES = ("info", "warning", "error", "critical")
WEBHOOK_TIMEOUT_S = 5.0
MAX_BODY_CHARS = 3000  # Slack truncates long messages; the full body stays in the alerts table

_LOG_METHOD = {"info": "info", "warning": "warning", "error": "error", "critical": "critical"}
RESOLVED_SUFFIX = "~resolved"  # a resolved alert's key: history stays, the cool-down no longer matches it
LEDGER_FILE = "alerts-out-of-band.json"


class AlertLedger:
    """Which out-of-band alerts are active, in a JSON file {key: sent_at}: the de-duplication that still works
    when the database (where `send` keeps it) is the thing that is down. Shared by the sensors and the
    `pipeline health --alert` watchdog through a lock file, written atomically with mode 0600."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_state_dir(cls, state_dir: str | Path) -> AlertLedger:
        return cls(Path(state_dir) / LEDGER_FILE)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, float]]:
        """The entries, under an exclusive lock; changes to the yielded dict are written back."""
        fd = open_private(self.path.with_suffix(".lock"), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            entries = self._read()
            before = dict(entries)
            yield entries
            if entries != before:
                write_private(self.path, json.dumps(entries, sort_keys=True).encode())
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # missing or torn: at worst one alert is sent again
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def active(self) -> dict[str, float]:
        with self._locked() as entries:
            return dict(entries)

    def claim(self, key: str, cooldown_s: float, now: float | None = None) -> bool:
        """True (and the key is marked sent now) unless the key was sent within the cool-down."""
        now = time.time() if now is None else now
        with self._locked() as entries:
            sent = entries.get(key)
            if sent is not None and cooldown_s > 0 and now - sent < cooldown_s:
                return False
            entries[key] = now
            return True

    def release(self, keys: list[str] | str) -> list[str]:
        """Forget `keys` (exact) so they can fire again; returns those that were active."""
        wanted = [keys] if isinstance(keys, str) else list(keys)
        with self._locked() as entries:
            gone = [k for k in wanted if k in entries]
            for k in gone:
                del entries[k]
            return gone

    def release_prefix(self, prefix: str) -> list[str]:
        with self._locked() as entries:
            gone = [k for k in entries if k.startswith(prefix)]
            for k in gone:
                del entries[k]
            return gone


class AlertSink:
    """Record, log and deliver alerts.

    `logger` may be a `logging.Logger` or Dagster's `context.log`; both have info/warning/error/critical.
    """

    def __init__(self, engine: Engine, webhook_url: str = "", cooldown_s: int = 3600, logger: Any = None,
                 timeout_s: float = WEBHOOK_TIMEOUT_S, ledger: AlertLedger | None = None) -> None:
        self._engine = engine
        self._ledger = ledger
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

    def send_out_of_band(self, key: str, title: str, body: str, severity: str = "error",
                         record: bool = True) -> bool:
        """Raise an alert that must not depend on the database: de-duplicated in the ledger file, delivered,
        then (when `record` and the database answers) also written to the alerts table. A webhook that fails
        releases the key, so the next tick tries again. Returns True when sent now."""
        if self._ledger is None:
            raise ValueError("send_out_of_band needs an AlertLedger (PIPELINE_STATE_DIR)")
        severity = severity if severity in SEVERITIES else "error"
        key = key[:200]
        if not self._ledger.claim(key, self._cooldown_s):
            self._log(severity, {"event": "alert", "key": key, "severity": severity, "title": title,
                                 "deduplicated": True, "out_of_band": True})
            return False
        delivered, error = self._deliver(title, body, severity)
        if self._webhook_url and not delivered:
            self._ledger.release(key)
        recorded = False
        if record:
            try:
                with transaction(self._engine) as conn:
                    conn.execute(s.alerts.insert().values(key=key, severity=severity, title=title, body=body,
                                                          created_at=db_now(conn), delivered=delivered,
                                                          delivery_error=error))
                recorded = True
            except Exception:  # noqa: BLE001 - the database may be the very thing that is down
                recorded = False
        self._log(severity, {"event": "alert", "key": key, "severity": severity, "title": title, "body": body[:500],
                             "out_of_band": True, "recorded": recorded,
                             "webhook": "set" if self._webhook_url else "unset",
                             "delivered": delivered, "delivery_error": error})
        return True

    def resolve(self, key_prefix: str, database: bool = True, exact: bool = False) -> int:
        """The condition behind alerts whose key starts with `key_prefix` is over: the next occurrence alerts
        at once instead of waiting out the cool-down. Rows stay in the alerts table (key + '~resolved').
        Returns how many active alerts were resolved. `database=False` touches only the ledger (DB down)."""
        ledger = self._ledger
        done = 0 if ledger is None else len(ledger.release(key_prefix) if exact else ledger.release_prefix(key_prefix))
        if database:
            try:
                with transaction(self._engine) as conn:
                    c = s.alerts.c.key
                    result = conn.execute(
                        s.alerts.update()
                        .where(c == key_prefix if exact else c.startswith(key_prefix, autoescape=True),
                               ~c.endswith(RESOLVED_SUFFIX))
                        .values(key=sa.func.substr(c, 1, 200 - len(RESOLVED_SUFFIX)) + RESOLVED_SUFFIX))
                    done += result.rowcount or 0
            except Exception:  # noqa: BLE001 - resolving is best effort; the ledger part is done
                if self._ledger is None:
                    raise
        if done:
            self._log("info", {"event": "alert_resolved", "key_prefix": key_prefix, "resolved": done})
        return done

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
