"""Schema migrations (Alembic) and the check every command runs before it touches the database."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from pipeline.db import DatabaseError, SchemaError, describe_operational_error

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head() or ""


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Apply pending migrations up to `revision` (tests stop earlier to check a data migration)."""
    cfg = _config()
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            raw = conn.connection.driver_connection
            if sqlite:  # SQLite's way to rebuild a table others point at: FKs off, then checked before commit
                raw.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
                    if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise DatabaseError("a migration left rows pointing at missing rows; nothing was changed")
            finally:
                if sqlite:
                    raw.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
    except sa.exc.OperationalError as exc:
        raise DatabaseError(describe_operational_error(exc)) from exc
    return head_revision() if revision == "head" else revision


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as exc:
        raise DatabaseError(describe_operational_error(exc)) from exc


def require_schema(engine: Engine) -> None:
    """Fail with the fix when the schema is missing or behind, instead of a raw 'no such table'."""
    current = current_revision(engine)
    if current is None:
        raise SchemaError("the database at PIPELINE_DATABASE_URL has no schema; create it with `pipeline db upgrade`")
    if current != head_revision():
        raise SchemaError(
            f"the database schema is at revision {current}, this version needs {head_revision()}; run `pipeline db upgrade`"
        )
