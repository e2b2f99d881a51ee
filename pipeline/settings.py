"""One settings object, read from `PIPELINE_*` environment variables and validated at start.

Every setting is declared once in `SETTINGS` (name, type, default, meaning, secret?) and has one rule in
`RULES` (range or form), so that `pipeline config`, the README's configuration table (`pipeline config
--markdown`) and validation all read the same list. A bad value stops every command with exit 2, naming
the variable, what is wrong and the fix; a secret's value is never echoed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.redact import mask_secret, redact

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
    """sqlite:///.pipeline/pipeline.db"""  # the documented default (README table); resolved to an absolute path
    return f"sqlite:///{Path('.pipeline/pipeline.db').resolve()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", str, _default_db_url, "SQLAlchemy URL of the app database: sqlite:///PATH, postgresql://... (psycopg2) or postgresql+psycopg://... (psycopg 3)", secret=True),
    Setting("db_pool_size", int, 5, "Connections kept open per process (PostgreSQL)"),
    Setting("db_max_overflow", int, 10, "Extra connections allowed under load per process (PostgreSQL)"),
    Setting("x_base_url", str, SANDBOX_DEFAULT_URL, "Base URL of X: the local sandbox by default, https://x.com in production"),
    Setting("browser_executable", str, "", "Chromium binary; empty means a system Chromium (its headless shell for headless work), then Playwright's own"),
    Setting("headless", bool, True, "Run the browser without a window"),
    Setting("state_dir", str, ".pipeline/state", "Browser sessions (mode 0600) and the confirmation journal"),
    Setting("alert_webhook_url", str, "", "Slack-compatible webhook for alerts; empty means logs and the alerts table only", secret=True),
    Setting("alert_cooldown_s", int, 3600, "An alert with the same key is not re-sent within this many seconds"),
    Setting("nav_timeout_s", float, 30.0, "Page navigation timeout"),
    Setting("post_timeout_s", float, 20.0, "Wait for the CreateTweet response; past it the outcome is unknown, never failed"),
    Setting("reconcile_timeout_s", float, 30.0, "Timeout for reading the account's timeline during reconciliation"),
    Setting("reconcile_settle_s", float, 20.0, "An unknown post must be absent on two timeline checks this far apart before it is re-queued"),
    Setting("reconcile_visibility_s", float, 90.0, "An unknown post counts as absent only once its newest attempt is this old: X can show a stored post on the timeline late"),
    Setting("lease_s", int, 300, "How long a claimed item belongs to one worker"),
    Setting("run_budget", int, 50, "Most posts one post_job run makes per account"),
    Setting("max_attempts", int, 8, "Failed tries in a row of one part (a confirmed part resets the count) before an item goes to needs_review"),
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
    Setting("require_approval", bool, False, "Planned items wait as pending_approval until `pipeline approve`"),
    Setting("dispatch_horizon_s", float, 60.0, "A posting run starts this many seconds before an account's next due item and waits for its minute"),
    Setting("dispatch_linger_s", float, 300.0, "A dispatched posting run keeps its browser and polls its account's queue this many seconds after its last due item, so later posts skip a run start; 0 ends it when nothing is due within the horizon"),
    Setting("dispatch_accounts_per_run", int, 8, "Accounts due together share a dispatched posting run, at most this many per run, each on its own thread and browser; 1 gives every account a run (process) of its own"),
    Setting("dispatch_run_max_s", float, 1800.0, "A dispatched posting run ends after this many seconds however busy, so code updates reach it and its memory stays bounded; the sensor starts the next one"),
    Setting("daemon_max_heartbeat_age_s", int, 90, "Health calls a Dagster daemon down when its heartbeat (every 30 s) is older than this"),
    Setting("canary_timeout_s", float, 10.0, "The canary waits this long for each selector before reporting it missing"),
    Setting("sensor_interval_s", int, 60, "How often the alerting sensors run (plan health, empty queue, stuck work, run failure)"),
    Setting("empty_queue_alert_after_s", int, 600, "The empty-queue sensor alerts when a queue stays below target this long despite plan runs"),
    Setting("media_timeout_s", float, 180.0, "Wait for X to upload and process a post's media; past it nothing was sent and the post is retried"),
    Setting("media_retention_days", float, 30.0, "`pipeline media prune` deletes stored media only items finished (posted, failed, cancelled) longer ago than this still name; never media of queued or in-flight items"),
)


_BY_NAME = {s.name: s for s in SETTINGS}

# SQLAlchemy URL prefixes (dialect+driver) this project ships drivers for.
SUPPORTED_DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg2",
                              "postgresql+psycopg")
_DRIVERS_HINT = ("use sqlite:///PATH, postgresql://USER@HOST/DB (psycopg2) or postgresql+psycopg://USER@HOST/DB "
                 "(psycopg 3)")


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def _no_controls(value: str) -> bool:
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def _database_url(value: str) -> str | None:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if not scheme:
        return f"is not a database URL; {_DRIVERS_HINT}"
    if scheme.lower() not in SUPPORTED_DATABASE_DRIVERS:
        return f"driver {scheme!r} is not supported (supported: {', '.join(SUPPORTED_DATABASE_DRIVERS)}); {_DRIVERS_HINT}"
    return None


def _quiet_hours(value: str) -> str | None:
    from pipeline.planning import SlotRules, parse_quiet_hours

    if not value.strip():
        return None
    try:
        SlotRules(quiet_hours=parse_quiet_hours(value))
    except ValueError as exc:
        return f"{exc}; use START-END hours 0-23 such as 23-7 (several: 23-7,12-13), or leave it empty"
    return None


def _metrics_ages(value: str) -> str | None:
    from pipeline.metrics import parse_ages

    try:
        parse_ages(value)
    except ValueError:
        return "must be a comma list of ages like 1h,24h,7d (minutes m, hours h, days d)"
    return None


def _rule(ok: Callable[[Any], bool], fix: str) -> Callable[[Any], str | None]:
    return lambda value: None if ok(value) else fix


_POSITIVE = _rule(lambda v: v > 0, "must be more than 0 (seconds)")
_AT_LEAST_1 = _rule(lambda v: v >= 1, "must be 1 or more")
_NOT_NEGATIVE = _rule(lambda v: v >= 0, "must be 0 or more")

# One rule per setting: None when the value is fine, else what is wrong and the fix. A setting without a
# rule here gets the default for its type (numbers 0 or more, text without control characters).
RULES: dict[str, Callable[[Any], str | None]] = {
    "database_url": _database_url,
    "db_pool_size": _AT_LEAST_1,
    "db_max_overflow": _NOT_NEGATIVE,
    "x_base_url": _rule(_http_url, "must be an http(s) URL such as https://x.com or http://127.0.0.1:8765 (the sandbox)"),
    "browser_executable": _rule(lambda v: v == "" or Path(v).is_file(),
                                "must be the path of an existing Chromium binary, or empty"),
    "state_dir": _rule(lambda v: v.strip() != "" and _no_controls(v), "must be a folder path (no control characters)"),
    "alert_webhook_url": _rule(lambda v: v == "" or _http_url(v), "must be an http(s) URL or empty"),
    "alert_cooldown_s": _NOT_NEGATIVE,
    "nav_timeout_s": _POSITIVE,
    "post_timeout_s": _POSITIVE,
    "media_timeout_s": _POSITIVE,
    "reconcile_timeout_s": _POSITIVE,
    "reconcile_settle_s": _rule(lambda v: v > 0, "must be more than 0 seconds: an unknown post is re-queued only "
                                "after two timeline checks this far apart"),
    "reconcile_visibility_s": _rule(lambda v: v >= 0, "must be 0 or more seconds: how late a stored post may show on "
                                    "the timeline before it counts as absent"),
    "lease_s": _POSITIVE,
    "run_budget": _AT_LEAST_1,
    "max_attempts": _rule(lambda v: v >= 1, "must be 1 or more (0 would send every item to review on its first failure)"),
    "log_format": _rule(lambda v: v in {"text", "json"}, "must be text or json"),
    "drafts_dir": _rule(lambda v: v == "" or Path(v).is_dir(), "must be an existing folder of drafts, or empty"),
    "llm_base_url": _rule(lambda v: v == "" or _http_url(v), "must be an http(s) URL or empty"),
    "llm_model": _rule(lambda v: v.strip() != "" and _no_controls(v), "must be a model name"),
    "llm_api_key": _rule(_no_controls, "must not contain control characters"),
    "llm_daily_token_budget": _NOT_NEGATIVE,
    "plan_window_min": _AT_LEAST_1,
    "plan_min_items": _NOT_NEGATIVE,
    "posts_per_hour": _AT_LEAST_1,
    "posts_per_day": _AT_LEAST_1,
    "min_spacing_min": _NOT_NEGATIVE,
    "quiet_hours": _quiet_hours,
    "thread_ratio": _rule(lambda v: 0.0 <= v <= 1.0, "must be between 0 and 1"),
    "plan_max_age_min": _AT_LEAST_1,
    "metrics_ages": _metrics_ages,
    "metrics_per_run": _AT_LEAST_1,
    "dispatch_horizon_s": _NOT_NEGATIVE,  # 0: a run posts only what is due now
    "dispatch_linger_s": _NOT_NEGATIVE,  # 0: no lingering (the run ends once nothing is due within the horizon)
    "dispatch_accounts_per_run": _rule(lambda v: 1 <= v <= 32, "must be 1 to 32: each account in a run has a browser of its own"),
    "dispatch_run_max_s": _rule(lambda v: 10 <= v <= 3000, "must be 10 to 3000 seconds: a run needs time to start "
                                "and post, and run monitoring fails a post_job run past its dagster/max_runtime (3600 s)"),
    "daemon_max_heartbeat_age_s": _rule(lambda v: v >= 30, "must be 30 or more seconds (daemons beat every 30 s)"),
    "canary_timeout_s": _POSITIVE,
    "sensor_interval_s": _rule(lambda v: v >= 5, "must be at least 5 seconds"),
}


def _default_rule(setting: Setting) -> Callable[[Any], str | None]:
    if setting.kind in (int, float):
        return _NOT_NEGATIVE
    if setting.kind is str:
        return _rule(_no_controls, "must not contain control characters")
    return lambda value: None


def _shown(setting: Setting, raw: str) -> str:
    return "(secret, not shown)" if setting.secret else repr(raw)


def _parse(setting: Setting, raw: str) -> Any:
    kind = setting.kind.__name__
    fix = f"{setting.env}={_shown(setting, raw)} is not a valid {kind}; set it to a {kind} ({setting.help.lower()})"
    if setting.kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(fix + "; true or false")
    try:
        value = setting.kind(raw.strip() if setting.kind is not str else raw)
    except ValueError:
        raise ConfigError(fix) from None
    if setting.kind is float and not math.isfinite(value):
        raise ConfigError(f"{setting.env}={raw!r} is not a finite number; set it to a number ({setting.help.lower()})")
    return value


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
            shown = mask_secret(str(value)) if s.secret and value else redact(str(value))
            rows.append({"variable": s.env, "value": shown, "source": self.sources.get(s.name, "default"), "meaning": s.help})
        return rows


def default_text(setting: Setting) -> str:
    """The default as documented (a computed default documents itself in its docstring)."""
    if callable(setting.default):
        return (setting.default.__doc__ or "").strip()
    if isinstance(setting.default, bool):
        return str(setting.default).lower()
    return str(setting.default)


def markdown_table() -> str:
    """The README's configuration table, generated from SETTINGS (`pipeline config --markdown`)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = default_text(s)
        shown = f"`{default}`" if default else "(empty)"
        lines.append(f"| `{s.env}` | {shown} | {s.help}{'; secret' if s.secret else ''} |")
    return "\n".join(lines)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate every setting. Raises ConfigError naming the variable and the fix."""
    settings, problems = _read(os.environ if env is None else env, overrides)
    if problems:
        raise ConfigError(next(iter(problems.values())))
    return settings


# Where the state lives: never replaced by a default (another database or journal would be worse than none).
_LOCATIONS = ("database_url", "state_dir")


def load_settings_lenient(env: Mapping[str, str] | None = None, **overrides: Any) -> tuple[Settings, list[str]]:
    """Every setting, each invalid one replaced by its default, and what was invalid (the messages
    load_settings would raise). Only for what must keep running to tell the operator that a setting is wrong:
    loading the Dagster definitions (so sensors run), the alert sink, the database resource and `pipeline
    health`; everything that acts (posting, planning, the CLI) uses load_settings, which refuses. An invalid
    database URL or state folder still raises: a default there would be another database or journal."""
    settings, problems = _read(os.environ if env is None else env, overrides, lenient=True)
    for name in _LOCATIONS:
        if name in problems:
            raise ConfigError(problems[name])
    return settings, list(problems.values())


def _read(env: Mapping[str, str], overrides: Mapping[str, Any],
          lenient: bool = False) -> tuple[Settings, dict[str, str]]:
    """The one reader: each setting from an argument, the environment or its default, checked by its rule.
    Returns the settings and, per invalid setting, the message naming the variable and the fix; `lenient`
    puts the default in place of an invalid value (the default is kept even when it fails its own rule)."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: dict[str, str] = {}
    for s in SETTINGS:
        try:
            if s.name in overrides and overrides[s.name] is not None:
                values[s.name], sources[s.name] = overrides[s.name], "argument"
            elif env.get(s.env, "") != "":
                values[s.name], sources[s.name] = _parse(s, env[s.env]), "environment"
            else:
                values[s.name], sources[s.name] = _default(s), "default"
        except ConfigError as exc:
            problems[s.name] = str(exc)
        else:
            problem = RULES.get(s.name, _default_rule(s))(values[s.name])
            if problem:
                problems[s.name] = f"{s.env}{'' if s.secret else f'={values[s.name]!r}'}: {problem}"
        if s.name in problems and lenient and sources.get(s.name) != "default":
            values[s.name], sources[s.name] = _default(s), "default"
    if len(values) == len(SETTINGS):  # not so when a value did not parse and nothing took its place
        _normalise(values)
    return Settings(values=values, sources=sources), problems


def _default(setting: Setting) -> Any:
    return setting.default() if callable(setting.default) else setting.default


def _normalise(values: dict[str, Any]) -> None:
    if values["database_url"].startswith("postgres://"):
        values["database_url"] = "postgresql://" + values["database_url"][len("postgres://"):]
    values["x_base_url"] = values["x_base_url"].rstrip("/")
