"""One settings object, read from `PIPELINE_*` environment variables and validated at start.

Every setting is declared once in `SETTINGS` (name, type, default, meaning, secret?) so that
`pipeline config`, the README's configuration table and validation all read the same list.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8765"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class Setting:
    name: str  # attribute name; the variable is PIPELINE_<NAME upper>
    kind: type
    default: Any
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return f"PIPELINE_{self.name.upper()}"


def _default_db_url() -> str:
    return f"sqlite:///{Path('.pipeline/pipeline.db').resolve()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", str, _default_db_url, "SQLAlchemy URL of the app database (SQLite file or postgresql://...)", secret=True),
    Setting("db_pool_size", int, 5, "Connections kept open per process (PostgreSQL)"),
    Setting("db_max_overflow", int, 10, "Extra connections allowed under load per process (PostgreSQL)"),
    Setting("x_base_url", str, SANDBOX_DEFAULT_URL, "Base URL of X: the local sandbox by default, https://x.com in production"),
    Setting("browser_executable", str, "", "Chromium binary; empty means a system Chromium, then Playwright's own"),
    Setting("headless", bool, True, "Run the browser without a window"),
    Setting("state_dir", str, ".pipeline/state", "Browser sessions (mode 0600) and the confirmation journal"),
    Setting("alert_webhook_url", str, "", "Slack-compatible webhook for alerts; empty means logs and the alerts table only", secret=True),
    Setting("alert_cooldown_s", int, 3600, "An alert with the same key is not re-sent within this many seconds"),
    Setting("nav_timeout_s", float, 30.0, "Page navigation timeout"),
    Setting("post_timeout_s", float, 20.0, "Wait for the CreateTweet response; past it the outcome is unknown, never failed"),
    Setting("reconcile_timeout_s", float, 30.0, "Timeout for reading the account's timeline during reconciliation"),
    Setting("reconcile_settle_s", float, 20.0, "An unknown post must be absent on two timeline checks this far apart before it is re-queued"),
    Setting("lease_s", int, 300, "How long a claimed item belongs to one worker"),
    Setting("run_budget", int, 50, "Most posts one post_job run makes per account"),
    Setting("max_attempts", int, 8, "Failed tries in a row of one part (no progress) before an item goes to needs_review"),
    Setting("log_format", str, "text", "text or json (JSON lines with item, attempt, account, error class)"),
    Setting("drafts_dir", str, "", "Folder of drafts (Markdown or JSON lines); empty means the shipped sample library"),
    Setting("llm_base_url", str, "", "OpenAI-compatible chat-completions base URL; empty means the drafts generator"),
    Setting("llm_model", str, "gpt-4o-mini", "Model name for the LLM generator"),
    Setting("llm_api_key", str, "", "API key for the LLM generator", secret=True),
    Setting("llm_daily_token_budget", int, 50000, "Tokens the LLM generator may spend per UTC day"),
    Setting("plan_window_min", int, 60, "Planning keeps at least plan_min_items due within this many minutes"),
    Setting("plan_min_items", int, 3, "Items each account should have due within the planning window"),
    Setting("posts_per_hour", int, 2, "Planner cap per account per hour"),
    Setting("posts_per_day", int, 24, "Planner cap per account per day"),
    Setting("min_spacing_min", int, 20, "Planner keeps at least this many minutes between an account's posts"),
    Setting("quiet_hours", str, "", "Hours with no posts in the account's time zone, e.g. 23-7; empty means none"),
    Setting("thread_ratio", float, 0.2, "Share of planned items that are threads"),
    Setting("plan_max_age_min", int, 180, "Plan health alerts when the last successful plan is older than this"),
    Setting("metrics_ages", str, "1h,24h,7d", "Ages at which a post's engagement is snapshotted"),
    Setting("metrics_per_run", int, 20, "Most posts one metrics run reads"),
    Setting("daemon_max_heartbeat_age_s", int, 90, "Health calls a Dagster daemon down when its heartbeat (every 30 s) is older than this"),
    Setting("canary_timeout_s", float, 10.0, "The canary waits this long for each selector before reporting it missing"),
    Setting("sensor_interval_s", int, 60, "How often the alerting sensors run (plan health, empty queue, stuck work, run failure)"),
    Setting("empty_queue_alert_after_s", int, 600, "The empty-queue sensor alerts when a queue stays below target this long despite plan runs"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def _parse(setting: Setting, raw: str) -> Any:
    try:
        if setting.kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        return setting.kind(raw)
    except ValueError:
        raise ConfigError(
            f"{setting.env}={raw!r} is not a valid {setting.kind.__name__}; "
            f"set it to a {setting.kind.__name__} ({setting.help.lower()})"
        ) from None


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def state_path(self) -> Path:
        return Path(self.values["state_dir"]).resolve()

    @property
    def is_sqlite(self) -> bool:
        return self.values["database_url"].startswith("sqlite")

    def describe(self) -> list[dict[str, str]]:
        """Every setting, its effective value (secrets masked) and where it came from."""
        rows = []
        for s in SETTINGS:
            value = self.values[s.name]
            shown = mask(str(value)) if s.secret and value else str(value)
            rows.append({"variable": s.env, "value": shown, "source": self.sources.get(s.name, "default"), "meaning": s.help})
        return rows


def mask(secret: str) -> str:
    """Show the shape of a secret (scheme and host of a URL) without its credentials or path."""
    parts = urlsplit(secret)
    if parts.scheme and parts.hostname:
        return f"{parts.scheme}://***@{parts.hostname}/***"
    if parts.scheme.startswith("sqlite"):
        return secret  # a file path holds no credential
    return "***"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate every setting. Raises ConfigError naming the variable and the fix."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        if s.name in overrides and overrides[s.name] is not None:
            values[s.name], sources[s.name] = overrides[s.name], "argument"
        elif env.get(s.env, "") != "":
            values[s.name], sources[s.name] = _parse(s, env[s.env]), "environment"
        else:
            default = s.default() if callable(s.default) else s.default
            values[s.name], sources[s.name] = default, "default"
    _validate(values)
    return Settings(values=values, sources=sources)


def _check(condition: bool, name: str, fix: str) -> None:
    if not condition:
        raise ConfigError(f"{_BY_NAME[name].env}: {fix}")


_VALIDATORS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("database_url", lambda v: v.split(":", 1)[0].split("+", 1)[0] in {"sqlite", "postgresql", "postgres"},
     "must be a sqlite:///PATH or postgresql://USER@HOST/DB URL"),
    ("x_base_url", lambda v: urlsplit(v).scheme in {"http", "https"} and bool(urlsplit(v).hostname),
     "must be an http(s) URL such as https://x.com or http://127.0.0.1:8765 (the sandbox)"),
    ("alert_webhook_url", lambda v: v == "" or urlsplit(v).scheme in {"http", "https"},
     "must be an http(s) URL or empty"),
    ("log_format", lambda v: v in {"text", "json"}, "must be text or json"),
    ("post_timeout_s", lambda v: v > 0, "must be a positive number of seconds"),
    ("nav_timeout_s", lambda v: v > 0, "must be a positive number of seconds"),
    ("lease_s", lambda v: v > 0, "must be a positive number of seconds"),
    ("sensor_interval_s", lambda v: v >= 5, "must be at least 5 seconds"),
    ("db_pool_size", lambda v: v >= 1, "must be at least 1"),
    ("db_max_overflow", lambda v: v >= 0, "must be 0 or more"),
    ("run_budget", lambda v: v >= 1, "must be at least 1"),
    ("thread_ratio", lambda v: 0.0 <= v <= 1.0, "must be between 0 and 1"),
)


def _validate(values: dict[str, Any]) -> None:
    for name, ok, fix in _VALIDATORS:
        _check(ok(values[name]), name, fix)
    if values["database_url"].startswith("postgres://"):
        values["database_url"] = "postgresql://" + values["database_url"][len("postgres://"):]
    values["x_base_url"] = values["x_base_url"].rstrip("/")
