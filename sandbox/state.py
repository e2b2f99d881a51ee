"""The sandbox's state: accounts, sessions, tweets (the ground truth), rules, clock, faults.

Everything lives in one SQLite database: `:memory:` by default, or a file (`state_file`) that survives restarts.
All access goes through `Store` methods under one lock (uvicorn serves from an event loop, tests and the server
thread may call in concurrently). Times are the sandbox's clock: real time plus `clock_offset_s`.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sandbox import posting
from sandbox.engagement import engagement
from sandbox.faults import FaultBox, public_config
from sandbox.media import Uploads, media_by_tweet
from sandbox.storage import SCHEMA, Transaction
from sandbox.x_rules import MAX_WEIGHTED_LENGTH, PostResult, iso, x_created_at

DEFAULT_RULES: dict[str, float] = {
    "duplicate_window_hours": 12.0, "posts_per_3h": 300, "posts_per_day": 2400,
    "max_weighted_length": MAX_WEIGHTED_LENGTH,  # raise it (X Premium: 25,000) for long posts with note_tweet
    "read_latency_s": 0.3,  # how long the page's GraphQL reads take (x.com's take a few hundred ms)
}  # fmt: skip
FLOAT_RULES = ("duplicate_window_hours", "read_latency_s")
TWITTER_EPOCH_MS = 1288834974657  # X's snowflake epoch
HANDLE_RE = re.compile(r"^[A-Za-z0-9_]{1,50}$")
RESERVED = {
    "home", "compose", "i", "explore", "notifications", "messages", "settings", "login", "logout", "search",
    "intent", "__sandbox", "favicon.ico", "robots.txt", "tos", "privacy", "signup",
}  # fmt: skip


def clean_handle(handle: Any) -> str:
    if not isinstance(handle, str):
        raise ValueError("handle must be a string")
    h = handle.strip().lstrip("@")
    if not HANDLE_RE.match(h) or h.lower() in RESERVED:
        raise ValueError(
            f"invalid handle {handle!r}: use 1-50 letters, digits or underscores (not a reserved path)"
        )
    return h


class Store:
    def __init__(self, path: str | Path | None = None, seed: int = 0) -> None:
        self.path = str(path) if path else ":memory:"
        self.seed = seed
        self._lock = threading.RLock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.faults = FaultBox(seed)
        self.stopping = threading.Event()  # set at server shutdown: releases stalled responses
        self.rules: dict[str, float] = dict(DEFAULT_RULES)
        self.clock_offset_s = 0.0
        self._last_id = 0
        meta = {r["key"]: r["value"] for r in self._db.execute("SELECT key, value FROM meta")}
        if "rules" in meta:
            self.rules.update(json.loads(meta["rules"]))
        self.clock_offset_s = float(meta.get("clock_offset_s", 0.0))
        self._last_id = int(meta.get("last_id", 0))
        row = self._db.execute("SELECT MAX(id_num) FROM tweets").fetchone()
        self._last_id = max(self._last_id, row[0] or 0)
        self.uploads = Uploads(self)

    # -- plumbing -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> Transaction:
        return Transaction(self._db)

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value if isinstance(value, str) else json.dumps(value)),
        )

    def now(self) -> float:
        return time.time() + self.clock_offset_s

    def _next_id(self, now: float) -> int:
        snow = (int(now * 1000) - TWITTER_EPOCH_MS) << 22
        self._last_id = max(snow, self._last_id + 1)
        return self._last_id

    # -- admin ----------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Clear tweets, accounts, sessions, faults, rate blocks; rules to defaults; clock to 0. Ids keep rising."""
        with self._lock, self._tx():
            for table in ("tweets", "accounts", "sessions", "rate_blocks", "tweet_flags", "pins", "tweet_media"):
                self._db.execute(f"DELETE FROM {table}")
            self.rules = dict(DEFAULT_RULES)
            self.clock_offset_s = 0.0
            self._set_meta("rules", self.rules)
            self._set_meta("clock_offset_s", 0.0)
            self._set_meta("last_id", str(self._last_id))
            self.faults.seed = self.seed
            self.faults.clear()

    def set_rules(self, updates: dict[str, Any]) -> dict[str, float]:
        clean: dict[str, float] = {}
        for key, value in updates.items():
            if key not in DEFAULT_RULES:
                raise ValueError(f"unknown rule {key!r}; known: {', '.join(DEFAULT_RULES)}")
            if value is None:
                value = 0
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{key} must be a number >= 0, got {value!r}")
            clean[key] = float(value) if key in FLOAT_RULES else int(value)
        with self._lock, self._tx():
            self.rules.update(clean)
            self._set_meta("rules", self.rules)
            return dict(self.rules)

    def set_clock(self, offset_s: Any) -> float:
        if isinstance(offset_s, bool) or not isinstance(offset_s, int | float) or not math.isfinite(offset_s):
            raise ValueError(f"offset_s must be a number of seconds, got {offset_s!r}")
        with self._lock, self._tx():
            self.clock_offset_s = float(offset_s)
            self._set_meta("clock_offset_s", self.clock_offset_s)
            return self.clock_offset_s

    def set_faults(self, config: dict[str, dict[str, Any]], seed: int | None = None) -> None:
        with self._lock:
            self.faults.configure(config, seed)

    def info(self) -> dict[str, Any]:
        with self._lock:
            counts = {
                t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("tweets", "accounts", "sessions")
            }
            return {
                "now": iso(self.now()),
                "clock_offset_s": self.clock_offset_s,
                "rules": dict(self.rules),
                "faults": public_config(self.faults.config),
                "faults_fired": dict(self.faults.fired),
                "fault_seed": self.faults.seed,
                "seed": self.seed,
                "state_file": None if self.path == ":memory:" else self.path,
                **counts,
            }

    # -- accounts and sessions ------------------------------------------------------------------------------------

    def issue_session(self, handle: str) -> tuple[str, str]:
        """Create the account if needed and a fresh valid session for it: (auth_token, ct0)."""
        handle = clean_handle(handle)
        auth_token, ct0 = secrets.token_hex(20), secrets.token_hex(32)
        with self._lock, self._tx():
            now = self.now()
            self._db.execute(
                "INSERT OR IGNORE INTO accounts (handle, created_at) VALUES (?, ?)", (handle, now)
            )
            self._db.execute(
                "INSERT INTO sessions (auth_token, ct0, handle, valid, created_at) VALUES (?, ?, ?, 1, ?)",
                (auth_token, ct0, handle, now),
            )
        return auth_token, ct0

    def session_handle(self, auth_token: str | None, ct0: str | None = None) -> str | None:
        """The handle of a valid session (None if missing, unknown or expired)."""
        if not auth_token:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT handle, ct0 FROM sessions WHERE auth_token = ? AND valid = 1", (auth_token,)
            ).fetchone()
        if row is None or (ct0 is not None and row["ct0"] != ct0):
            return None
        return row["handle"]

    def expire_sessions(self, handle: str) -> int:
        with self._lock, self._tx():
            return self._db.execute(
                "UPDATE sessions SET valid = 0 WHERE handle = ?", (handle.lstrip("@"),)
            ).rowcount

    def handles(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT handle FROM accounts ORDER BY handle")]

    def account_exists(self, handle: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM accounts WHERE handle = ?", (handle,)).fetchone() is not None
            )

    # -- page faults ----------------------------------------------------------------------------------------------

    def page_faults(self, handle: str | None) -> tuple[float, str]:
        """(delay seconds, button data-testid suffix) for one page load."""
        with self._lock:
            slow = self.faults.roll("slow_page", handle)
            drift = self.faults.roll("ui_drift", handle)
        return (float(slow["seconds"]) if slow else 0.0), (drift["suffix"] if drift else "")

    def read_delay(self, handle: str | None) -> float:
        """Seconds to hold one of the page's GraphQL reads: the rule `read_latency_s`, plus the `slow_page` fault
        (the data is slow too)."""
        with self._lock:
            slow = self.faults.roll("slow_page", handle)
            return float(self.rules["read_latency_s"]) + (float(slow["seconds"]) if slow else 0.0)

    # -- posting --------------------------------------------------------------------------------------------------

    def post(self, handle: str, text: Any, reply_to: Any, media: Any = None) -> PostResult:
        """CreateTweet for an authenticated account: rate blocks, faults, rules, then store (sandbox/posting.py)."""
        with self._lock:
            return posting.post(self, handle, text, reply_to, media)

    # -- reading --------------------------------------------------------------------------------------------------

    _SELECT = (
        "SELECT t.*, p.account AS parent_account, f.visible_at, f.wrapped, f.deleted_at FROM tweets t "
        "LEFT JOIN tweets p ON p.id = t.in_reply_to LEFT JOIN tweet_flags f ON f.id = t.id "
    )

    def _reply_counts(self, ids: list[str] | None = None) -> dict[str, int]:
        if ids is None:
            rows = self._db.execute(
                "SELECT in_reply_to, COUNT(*) FROM tweets WHERE in_reply_to IS NOT NULL GROUP BY in_reply_to"
            )
        else:
            if not ids:
                return {}
            marks = ",".join("?" * len(ids))
            rows = self._db.execute(
                f"SELECT in_reply_to, COUNT(*) FROM tweets WHERE in_reply_to IN ({marks}) GROUP BY in_reply_to",
                ids,
            )
        return {r[0]: r[1] for r in rows}

    def _to_dict(
        self, row: sqlite3.Row, now: float, replies: dict[str, int], media: dict[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        eng = engagement(row["id"], self.seed, now - row["created_at"], replies.get(row["id"], 0))
        return {
            "id": row["id"],
            "account": row["account"],
            "text": row["text"],
            "in_reply_to": row["in_reply_to"],
            "in_reply_to_account": row["parent_account"],
            "conversation_id": row["conversation_id"],
            "created_at": iso(row["created_at"]),
            "created_at_x": x_created_at(row["created_at"]),
            "deleted": row["deleted_at"] is not None,
            "wrapped": bool(row["wrapped"]),
            "media": media.get(row["id"], []),
            **eng,
        }

    def _dicts(self, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
        replies = self._reply_counts([r["id"] for r in rows])
        media = media_by_tweet(self._db, [r["id"] for r in rows])
        now = self.now()
        return [self._to_dict(r, now, replies, media) for r in rows]

    def tweets(self, account: str | None = None) -> list[dict[str, Any]]:
        """Ground truth: every stored tweet (deleted ones too, flagged), oldest first, engagement as of now."""
        with self._lock:
            if account:
                rows = self._db.execute(
                    self._SELECT + "WHERE t.account = ? ORDER BY t.id_num", (account.lstrip("@"),)
                ).fetchall()
            else:
                rows = self._db.execute(self._SELECT + "ORDER BY t.id_num").fetchall()
            return self._dicts(rows)

    def timeline(
        self, handle: str, limit: int = 200, below: int | None = None, with_replies: bool = True
    ) -> list[dict[str, Any]]:
        """What a timeline shows of an account, newest first: not deleted, past any `timeline_lag`; the Posts
        tab (`with_replies=False`) leaves out replies to other accounts."""
        with self._lock:
            sql = self._SELECT + (
                "WHERE t.account = ? AND t.id_num < ? AND f.deleted_at IS NULL AND COALESCE(f.visible_at, 0) <= ? "
            )
            if not with_replies:
                sql += "AND (t.in_reply_to IS NULL OR p.account = t.account) "
            rows = self._db.execute(
                sql + "ORDER BY t.id_num DESC LIMIT ?",
                (handle, below if below is not None else 2**63 - 1, self.now(), limit),
            ).fetchall()
            return self._dicts(rows)

    def tweet(self, tweet_id: str, visible_only: bool = False) -> dict[str, Any] | None:
        """One stored post (None if unknown; with `visible_only`, None too if deleted)."""
        with self._lock:
            row = self._db.execute(self._SELECT + "WHERE t.id = ?", (tweet_id,)).fetchone()
            if row is None or (visible_only and row["deleted_at"] is not None):
                return None
            return self._dicts([row])[0]

    def replies_to(self, tweet_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """Visible direct replies to a post, oldest first (any account)."""
        with self._lock:
            rows = self._db.execute(
                self._SELECT + "WHERE t.in_reply_to = ? AND f.deleted_at IS NULL ORDER BY t.id_num LIMIT ?",
                (tweet_id, limit),
            ).fetchall()
            return self._dicts(rows)

    def pinned(self, handle: str) -> dict[str, Any] | None:
        """The account's pinned post as timelines show it (not deleted, past any lag): the one set with `pin`,
        else (as many accounts do) its first post."""
        with self._lock:
            row = self._db.execute("SELECT tweet_id FROM pins WHERE handle = ?", (handle,)).fetchone()
            if row is not None and row["tweet_id"] is None:
                return None
            where = "t.id = ?" if row is not None else "t.account = ? AND t.in_reply_to IS NULL"
            found = self._db.execute(
                self._SELECT + f"WHERE {where} AND f.deleted_at IS NULL AND COALESCE(f.visible_at, 0) <= ? "
                "ORDER BY t.id_num LIMIT 1",
                (row["tweet_id"] if row is not None else handle, self.now()),
            ).fetchone()
            return None if found is None else self._dicts([found])[0]

    def pin(self, handle: str, tweet_id: str | None) -> None:
        """Pin one of the account's posts (None: pin nothing)."""
        with self._lock:
            if tweet_id is not None:
                tweet = self.tweet(tweet_id, visible_only=True)
                if tweet is None or tweet["account"] != handle:
                    raise ValueError(f"post {tweet_id!r} is not a live post of @{handle}")
            with self._tx():
                self._db.execute(
                    "INSERT INTO pins (handle, tweet_id) VALUES (?, ?) "
                    "ON CONFLICT (handle) DO UPDATE SET tweet_id = excluded.tweet_id",
                    (handle, tweet_id),
                )

    def delete(self, tweet_id: str) -> None:
        """Delete a post as its author would: gone from pages and timelines, kept (flagged) in the ground truth."""
        with self._lock:
            if self.tweet(tweet_id, visible_only=True) is None:
                raise ValueError(f"no live post with id {tweet_id!r}")
            with self._tx():
                self._db.execute(
                    "INSERT INTO tweet_flags (id, deleted_at) VALUES (?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at",
                    (tweet_id, self.now()),
                )
