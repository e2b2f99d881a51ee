"""The app database: one pooled SQLAlchemy engine per process, shared by every asset, check and sensor."""

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from pipeline.db import get_engine
from pipeline.migrate import require_schema
from pipeline.settings import load_settings_lenient


class Database(dg.ConfigurableResource):
    """`url` is normally `dg.EnvVar("PIPELINE_DATABASE_URL")` (a secret: the UI shows the variable, not the
    value); empty means the settings default (a SQLite file under .pipeline/). The engine is created on
    first use through `pipeline.db.get_engine` (cached per process and URL) and disposed at teardown."""

    url: str = Field(default="", description="SQLAlchemy URL; empty means PIPELINE_DATABASE_URL or its default")
    pool_size: int | None = Field(default=None, description="Connections kept per process (PIPELINE_DB_POOL_SIZE)")
    max_overflow: int | None = Field(default=None, description="Extra connections under load (PIPELINE_DB_MAX_OVERFLOW)")

    _engine: Engine | None = PrivateAttr(default=None)
    _checked: bool = PrivateAttr(default=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            # Leniently: the alerting sensors need the database while another setting is invalid.
            settings = load_settings_lenient(**({"database_url": self.url} if self.url else {}))[0]
            self._engine = get_engine(
                settings.database_url,
                pool_size=self.pool_size or settings.db_pool_size,
                max_overflow=self.max_overflow if self.max_overflow is not None else settings.db_max_overflow,
            )
        return self._engine

    def ready_engine(self) -> Engine:
        """The engine, after checking once that the schema is at the head revision (assets call this;
        sensors skip it to stay cheap). Fails with the fix (`pipeline db upgrade`) instead of 'no such table'."""
        engine = self.engine
        if not self._checked:
            require_schema(engine)
            self._checked = True
        return engine

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()  # close pooled connections; the cached engine stays usable
            self._engine = None
