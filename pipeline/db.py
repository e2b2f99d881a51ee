"""One pooled SQLAlchemy engine per process and URL, shared by the CLI, assets, sensors and tests.

The predecessor opened a connection per operation and leaked them. Here every caller goes through
`get_engine`: bounded pool, pre-ping, `application_name` so connections are countable in
`pg_stat_activity`, disposed at teardown. On SQLite the file is opened in WAL mode and every write
transaction is `BEGIN IMMEDIATE`, so there is exactly one writer at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

APPLICATION_NAME = "x-posting-pipeline"

_engines: dict[tuple[str, int, int, str], Engine] = {}
_engines_lock = threading.Lock()


class DatabaseError(RuntimeError):
    """The database is unreachable or its schema is missing; the message says what to do."""


class SchemaError(DatabaseError):
    """The database answers but its schema is missing or behind: the operator's fix (exit 2), not an outage."""


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 under SQLAlchemy 2.1; here it stays psycopg2 (the driver Dagster's
    storage uses too). `postgresql+psycopg://` selects psycopg 3; both are installed."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def get_engine(url: str, pool_size: int = 5, max_overflow: int = 10, application_name: str = APPLICATION_NAME) -> Engine:
    """The process's engine for `url`, created on first use."""
    url = normalise_url(url)
    key = (url, pool_size, max_overflow, application_name)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _create_engine(url, pool_size, max_overflow, application_name)
            _engines[key] = engine
        return engine


def _create_engine(url: str, pool_size: int, max_overflow: int, application_name: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_pre_ping=True)
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=30,
        pool_recycle=1800,
        connect_args={"application_name": application_name, "connect_timeout": 10},
    )


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # Writes (`transaction()`) take the write lock at BEGIN, not at their first write, so concurrent
        # read-then-write transactions queue up instead of failing on a lock upgrade. Reads begin deferred:
        # in WAL mode they read a snapshot and never block a writer, or each other.
        write = conn.get_execution_options().get("pipeline_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def dispose_engines() -> None:
    """Close every pooled connection of this process (resource teardown, tests, before fork)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def is_sqlite(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


def db_now(conn: Connection) -> datetime:
    """The database clock: due-ness and leases are decided by it, never by the app's clock."""
    from datetime import UTC

    if is_sqlite(conn):
        raw = conn.exec_driver_sql("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").scalar_one()
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    return conn.exec_driver_sql("SELECT now()").scalar_one().astimezone(UTC)


def now_sql(conn: Connection) -> sa.ColumnElement:
    """SQL expression for the database's now(), comparable with UtcDateTime columns."""
    if is_sqlite(conn):
        # UtcDateTime on SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (+00:00 stripped); compare as text.
        return sa.func.strftime("%Y-%m-%d %H:%M:%f000", "now")
    return sa.func.now()


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A short write transaction (the way every write in the core begins); back to the pool at once."""
    try:
        with engine.connect() as conn:
            conn.execution_options(pipeline_write=True)
            with conn.begin():
                yield conn
    except sa.exc.OperationalError as exc:
        raise DatabaseError(describe_operational_error(exc)) from exc


def describe_operational_error(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    return f"database unreachable or failing ({text}); check PIPELINE_DATABASE_URL and that the server is up"


def worker_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{threading.get_ident()}"
