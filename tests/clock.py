"""A database clock frozen at a chosen instant, so boundary tests (due exactly at now, 1 µs later) are exact.

PostgreSQL: a `now()` in a schema placed before pg_catalog on the search_path. SQLite: the two-argument
`strftime(fmt, 'now')` the core uses, answered from the frozen instant. The core's SQL runs unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from pipeline.db import _create_engine, normalise_url


def frozen_engine(url: str, instant: datetime) -> sa.Engine:
    url = normalise_url(url)
    instant = instant.astimezone(UTC)
    if url.startswith("sqlite"):
        engine = _create_engine(url, 1, 0, "frozen-clock")

        def strftime(fmt: str, when: str) -> str:
            assert when == "now", when
            fraction = f"{instant.second:02d}.{instant.microsecond // 1000:03d}"  # SQLite's %f: SS.SSS
            return instant.strftime(fmt.replace("%f", fraction))

        @sa.event.listens_for(engine, "connect")
        def _freeze(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.create_function("strftime", 2, strftime, deterministic=True)

        return engine
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS frozen_clock")
        conn.exec_driver_sql(
            "CREATE OR REPLACE FUNCTION frozen_clock.now() RETURNS timestamptz LANGUAGE sql STABLE "
            f"AS $$ SELECT '{instant.isoformat()}'::timestamptz $$"
        )
    admin.dispose()
    return sa.create_engine(url, poolclass=sa.pool.NullPool,
                            connect_args={"options": "-c search_path=frozen_clock,pg_catalog,public"})
