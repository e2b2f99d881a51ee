"""Fault injection for the sandbox: names, validation, and seeded, reproducible draws.

A fault set is `{name: {"p": probability, ...params}}` (the body of `POST /__sandbox/faults` and the shape of a
`--faults FILE`), with an optional top-level `"seed"`. Every fault draws from its own `random.Random` seeded by
`"<seed>:<name>"`, so the sequence of one fault does not depend on how often another was drawn (page loads do
not shift post faults). Optional params on every fault: `accounts` (a list of handles it applies to; default
all) and `times` (fire at most this many times; default unlimited).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

# name -> default params (besides p, accounts, times)
FAULTS: dict[str, dict[str, Any]] = {
    # the tweet is stored, then the response is held `seconds` (default: until the client goes or the server stops)
    "post_commit_stall": {"seconds": math.inf},
    # HTTP 503 before anything is stored
    "post_error_5xx": {},
    # HTTP 429 / code 88 before storing; the account stays limited for `reset_s` seconds
    "rate_limit": {"reset_s": 60.0},
    # the account's sessions are invalidated before storing: 401 / code 32, pages redirect to login
    "session_expired": {},
    # latency on page loads: HTML pages and the page's GraphQL reads (UserTweets, TweetDetail)
    "slow_page": {"seconds": 2.0},
    # the post buttons are rendered with another data-testid (`tweetButtonInline` -> `tweetButtonInline_v2`)
    "ui_drift": {"suffix": "_v2"},
    # code 226 ("looks like it might be automated") in the GraphQL body, before storing
    "automation_block": {},
    # the tweet is stored, then the edge answers an HTML 502 or 504 page (no JSON)
    "post_5xx_after_store": {},
    # HTTP 200 with an empty `tweet_results` ({}): nothing stored
    "silent_drop": {},
    # stored; the result is a TweetWithVisibilityResults wrapper (id at result.tweet.rest_id), on timelines too
    "wrapped_result": {},
    # HTTP 200 {"errors":[{"code":-1,"message":"LoadShed: Unspecified"}]}; stored first with `after_store_p`
    "load_shed": {"after_store_p": 0.5},
    # HTTP 200 {"errors":[{"code":29,"message":"Timeout: Unspecified"}]}; stored first with `after_store_p`
    "timeout_29": {"after_store_p": 0.5},
    # HTTP 403 with an empty body and no error code, before storing
    "bare_403": {},
    # stored and answered normally, but the post shows on timelines only `seconds` later
    "timeline_lag": {"seconds": 30.0},
    # media (sandbox/media.py): HTTP 503 on an upload's APPEND; the composer drops the attachment
    "upload_error": {},
    # the upload's processing ends "failed" (STATUS for video/GIF, FINALIZE for an image)
    "processing_failed": {},
    # the upload's processing never ends (STATUS stays "in_progress" at 99 %)
    "processing_stuck": {},
}
# The order in which pre-store post faults take effect when several fire on the same request.
POST_FAULTS = (
    "session_expired", "bare_403", "automation_block", "rate_limit", "post_error_5xx", "silent_drop", "load_shed",
    "timeout_29", "wrapped_result", "timeline_lag", "post_5xx_after_store", "post_commit_stall",
)  # fmt: skip
MAX_SECONDS = 10.0**9  # about 31 years: anything longer is a typo, and huge floats break the clock arithmetic
PAGE_FAULTS = ("slow_page", "ui_drift")


class FaultConfigError(ValueError):
    """A fault set that cannot be applied; the message names the fault and the field."""


def _number(name: str, key: str, value: Any, allow_forever: bool = False) -> float:
    if allow_forever and (value is None or value == "forever"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = ' (or "forever")' if allow_forever else ""
        raise FaultConfigError(f"{name}.{key} must be a number{hint}, got {value!r}")
    if not math.isfinite(value) or value < 0 or value > MAX_SECONDS:
        raise FaultConfigError(
            f"{name}.{key} must be a finite number from 0 to {MAX_SECONDS:.0e}, got {value!r}"
        )
    return float(value)


def parse_faults(obj: Any) -> tuple[dict[str, dict[str, Any]], int | None]:
    """Validate a fault set; returns (normalised config, seed or None)."""
    if not isinstance(obj, dict):
        raise FaultConfigError('faults must be a JSON object like {"post_error_5xx": {"p": 0.5}}')
    seed = obj.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise FaultConfigError(f"seed must be an integer, got {seed!r}")
    out: dict[str, dict[str, Any]] = {}
    for name, raw in obj.items():
        if name == "seed":
            continue
        if name not in FAULTS:
            raise FaultConfigError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
        if raw is None or raw is False:
            continue
        if raw is True:
            raw = {}
        if not isinstance(raw, dict):
            raise FaultConfigError(f'{name} must be an object like {{"p": 0.5}}, got {raw!r}')
        cfg: dict[str, Any] = dict(FAULTS[name])
        p = _number(name, "p", raw.get("p", 1.0))
        if p > 1:
            raise FaultConfigError(f"{name}.p must be between 0 and 1, got {p}")
        cfg["p"] = p
        for key, value in raw.items():
            if key == "p":
                continue
            if key == "accounts":
                if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
                    raise FaultConfigError(f"{name}.accounts must be a list of handles")
                cfg["accounts"] = [h.lstrip("@") for h in value]
            elif key == "times":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise FaultConfigError(f"{name}.times must be a non-negative integer")
                cfg["times"] = value
            elif key == "suffix" and name == "ui_drift":
                if not isinstance(value, str) or not value:
                    raise FaultConfigError("ui_drift.suffix must be a non-empty string")
                cfg["suffix"] = value
            elif key in FAULTS[name]:
                cfg[key] = _number(name, key, value, allow_forever=(name == "post_commit_stall"))
                if key == "after_store_p" and cfg[key] > 1:
                    raise FaultConfigError(f"{name}.after_store_p must be between 0 and 1, got {value!r}")
            else:
                allowed = ", ".join(["p", "accounts", "times", *FAULTS[name]])
                raise FaultConfigError(f"{name} has no parameter {key!r}; allowed: {allowed}")
        out[name] = cfg
    return out, seed


def load_faults_file(path: str | Path) -> tuple[dict[str, dict[str, Any]], int | None]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise FaultConfigError(f"faults file {p} does not exist") from None
    except json.JSONDecodeError as exc:
        raise FaultConfigError(f"faults file {p} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return parse_faults(data)


def public_config(config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The config as JSON (infinity shown as "forever")."""
    return {
        name: {k: ("forever" if isinstance(v, float) and math.isinf(v) else v) for k, v in cfg.items()}
        for name, cfg in config.items()
    }


class FaultBox:
    """The active fault set and one seeded random stream per fault. Not thread-safe: callers hold a lock."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.config: dict[str, dict[str, Any]] = {}
        self._rngs: dict[str, random.Random] = {}
        self.fired: dict[str, int] = {}

    def configure(self, config: dict[str, dict[str, Any]], seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self.config = config
        self._rngs = {name: random.Random(f"{self.seed}:{name}") for name in config}
        self.fired = {name: 0 for name in config}

    def clear(self) -> None:
        self.configure({})

    def draw(self, name: str) -> float:
        """A further draw from the fault's own stream (e.g. whether it struck before or after storing); a fault
        fired from outside (the chaos harness's schedule) gets its stream on first use."""
        if name not in self._rngs:
            self._rngs[name] = random.Random(f"{self.seed}:{name}")
        return self._rngs[name].random()

    def roll(self, name: str, account: str | None = None) -> dict[str, Any] | None:
        """Draw for one fault; its params if it fires, else None. Draws only where the fault applies."""
        cfg = self.config.get(name)
        if cfg is None:
            return None
        accounts = cfg.get("accounts")
        if accounts is not None and account not in accounts:
            return None
        times = cfg.get("times")
        if times is not None and self.fired.get(name, 0) >= times:
            return None
        if self._rngs[name].random() < cfg["p"]:
            self.fired[name] = self.fired.get(name, 0) + 1
            return cfg
        return None
