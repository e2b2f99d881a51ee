"""AlertSink: recorded, de-duplicated by key with a cool-down, delivered to a real local webhook, never
leaking the webhook URL. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from pipeline import schema as s
from pipeline.alerts import AlertSink, recent_alerts
from pipeline.db import db_now
from tests.dagster_helpers import Webhook, alert_rows, serve_webhook


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with serve_webhook() as hook:
        yield hook


SECRET_PART = "secret-token-xyz"


def test_send_records_and_delivers_slack_json(engine: sa.Engine, webhook: Webhook) -> None:
    sink = AlertSink(engine, webhook_url=webhook.url, cooldown_s=3600)
    assert sink.send("plan-health:stale", "Planning has stopped", "no plan for 4 h", severity="error") is True

    assert len(webhook.received) == 1
    hit = webhook.received[0]
    assert hit["content_type"] == "application/json"
    assert set(hit["json"]) == {"text"}
    assert hit["json"]["text"].startswith("[ERROR] Planning has stopped")
    assert "no plan for 4 h" in hit["json"]["text"]

    [row] = alert_rows(engine)
    assert row["key"] == "plan-health:stale" and row["severity"] == "error"
    assert row["delivered"] is True and row["delivery_error"] is None
    assert row["created_at"].tzinfo is not None


def test_same_key_within_cooldown_records_nothing(engine: sa.Engine, webhook: Webhook) -> None:
    sink = AlertSink(engine, webhook_url=webhook.url, cooldown_s=3600)
    assert sink.send("empty-queue:alice", "Queue low", "1/3") is True
    assert sink.send("empty-queue:alice", "Queue low", "1/3") is False
    assert sink.send("empty-queue:alice", "Queue low", "0/3") is False
    assert sink.send("empty-queue:bob", "Queue low", "0/3") is True  # another key is another condition
    assert len(webhook.received) == 2
    assert [r["key"] for r in alert_rows(engine)] == ["empty-queue:alice", "empty-queue:bob"]


def test_cooldown_expires(engine: sa.Engine, webhook: Webhook) -> None:
    sink = AlertSink(engine, webhook_url=webhook.url, cooldown_s=60)
    assert sink.send("k", "t", "b") is True
    with engine.begin() as conn:  # the first alert is now 2 minutes old
        conn.execute(s.alerts.update().values(created_at=db_now(conn) - timedelta(minutes=2)))
    assert sink.send("k", "t", "b") is True
    assert len(webhook.received) == 2


def test_zero_cooldown_sends_every_time(engine: sa.Engine, webhook: Webhook) -> None:
    sink = AlertSink(engine, webhook_url=webhook.url, cooldown_s=0)
    assert all(sink.send("k", "t", "b") for _ in range(3))
    assert len(webhook.received) == 3


def test_without_webhook_the_table_and_log_still_get_it(engine: sa.Engine, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.alerts")
    sink = AlertSink(engine)
    assert sink.send("k", "Breaker open", "for 2 h", severity="warning") is True
    [row] = alert_rows(engine)
    assert row["delivered"] is False and row["delivery_error"] is None
    [record] = [r for r in caplog.records if r.name == "pipeline.alerts"]
    assert record.levelno == logging.WARNING
    assert '"event": "alert"' in record.getMessage() and '"key": "k"' in record.getMessage()


def test_webhook_http_error_is_recorded(engine: sa.Engine, webhook: Webhook, caplog) -> None:
    caplog.set_level(logging.INFO)
    webhook.status = 500
    sink = AlertSink(engine, webhook_url=webhook.url)
    assert sink.send("k", "t", "b") is True  # recorded; delivery failure is in the row, not an exception
    [row] = alert_rows(engine)
    assert row["delivered"] is False and row["delivery_error"] == "webhook answered HTTP 500"
    assert SECRET_PART not in caplog.text and webhook.url not in caplog.text


def test_unreachable_webhook_never_leaks_the_url(engine: sa.Engine, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/{SECRET_PART}"
    sink = AlertSink(engine, webhook_url=url, timeout_s=2)
    assert sink.send("k", "t", "b") is True
    [row] = alert_rows(engine)
    assert row["delivered"] is False and row["delivery_error"]
    assert SECRET_PART not in row["delivery_error"]
    assert SECRET_PART not in caplog.text
    assert SECRET_PART not in repr(sink)


def test_concurrent_sends_of_one_key_record_one_alert(engine: sa.Engine, webhook: Webhook) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def fire() -> None:
        sink = AlertSink(engine, webhook_url=webhook.url, cooldown_s=3600)
        barrier.wait()
        results.append(sink.send("run-failure:post_job:abc", "t", "b"))

    threads = [threading.Thread(target=fire) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    assert len(webhook.received) == 1
    assert len(alert_rows(engine)) == 1


def test_long_bodies_are_cut_for_the_webhook_but_kept_in_the_table(engine: sa.Engine, webhook: Webhook) -> None:
    body = "x" * 10_000
    AlertSink(engine, webhook_url=webhook.url).send("k", "t", body)
    assert len(webhook.texts[0]) <= 3000
    assert recent_alerts(engine)[0]["body"] == body


def test_unknown_severity_becomes_error(engine: sa.Engine) -> None:
    AlertSink(engine).send("k", "t", "b", severity="catastrophic")
    assert alert_rows(engine)[0]["severity"] == "error"


def test_forced_open_reason_class_and_fix_per_reason() -> None:
    from pipeline.alerts import forced_open_reason_class, tell_forced_open

    assert forced_open_reason_class("auth: 326 locked; needs a human") == "auth"
    assert forced_open_reason_class("automation_block: 226") == "automation_block"
    assert forced_open_reason_class("operator isolate") == "operator_isolate"

    class Sink:
        def __init__(self) -> None:
            self.sent: list[tuple[str, str]] = []

        def send(self, key: str, title: str, body: str, severity: str = "error") -> bool:
            self.sent.append((key, body))
            return True

    sink = Sink()
    told = tell_forced_open(sink, [
        {"account": "a", "state": "forced_open", "reason": "auth: expired", "opened_at": "t1"},
        {"account": "b", "state": "open", "reason": "rate limited", "opened_at": "t1"},
        {"account": "c", "state": "forced_open", "reason": "operator isolate", "opened_at": "t2"},
    ])
    assert told == ["a", "c"]
    assert sink.sent[0][0] == "breaker-forced:a:auth:t1" and "pipeline login --account a" in sink.sent[0][1]
    assert "pipeline breaker reset --account c" in sink.sent[1][1]
