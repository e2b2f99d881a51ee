"""The sandbox store's SQLite tables and its transaction helper (kept apart from the store's behaviour)."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS tweets (
    id TEXT PRIMARY KEY, id_num INTEGER NOT NULL UNIQUE, account TEXT NOT NULL, text TEXT NOT NULL,
    norm TEXT NOT NULL, in_reply_to TEXT, conversation_id TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tweets_account_time ON tweets (account, created_at);
CREATE INDEX IF NOT EXISTS tweets_reply ON tweets (in_reply_to);
CREATE TABLE IF NOT EXISTS accounts (handle TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    auth_token TEXT PRIMARY KEY, ct0 TEXT NOT NULL, handle TEXT NOT NULL, valid INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_handle ON sessions (handle);
CREATE TABLE IF NOT EXISTS rate_blocks (handle TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tweet_flags (
    id TEXT PRIMARY KEY, visible_at REAL NOT NULL DEFAULT 0, wrapped INTEGER NOT NULL DEFAULT 0, deleted_at REAL
);
CREATE TABLE IF NOT EXISTS pins (handle TEXT PRIMARY KEY, tweet_id TEXT);
"""


class Transaction:
    """BEGIN/COMMIT around a block on an autocommit connection (nested use is a no-op)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if not self._outer:
            return
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
