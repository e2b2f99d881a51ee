"""Structured logs: every posting event carries item id, attempt id, account and error class.

`PIPELINE_LOG_FORMAT=json` writes one JSON object per line (for log shippers); `text` is for people.
Both pass every line through `redact`, so a URL with credentials in an error never reaches a log.
Call `log_event(logger, "posted", item_id=..., account=...)` rather than formatting messages by hand.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pipeline.redact import redact

EVENT_FIELDS = ("event", "item_id", "attempt_id", "account", "error_class", "tweet_id", "part")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        tail = " ".join(f"{k}={v}" for k, v in fields.items() if k != "event" and v is not None)
        base = f"{datetime.fromtimestamp(record.created, UTC):%H:%M:%S} {record.levelname:<7} {record.getMessage()}"
        return redact(f"{base} {tail}".rstrip())


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    root = logging.getLogger("pipeline")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured event; unknown keys are kept, None values dropped from text output."""
    logger.log(level, event, extra={"fields": {"event": event, **fields}})
