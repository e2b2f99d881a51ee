"""Shared fixtures: real SQLite files and a real PostgreSQL database per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pipeline import db as dbmod
from pipeline.migrate import upgrade
from sandbox.dbproxy import FaultProxy
from tests import pg

pytest_plugins = ["tests.fixtures_browser", "tests.fixtures_world"]

ARTIFACTS = Path(__file__).parent / "artifacts"
# For the slow tests of X's behaviour (stalls, lagging timelines, paging, page changes: tens of seconds of
# waiting each): the database code they pass through runs on both databases in test_posting and test_queue,
# so these run once, on PostgreSQL, the production database.
once_on_postgres = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        return pg.admin_url()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    url = pg.create_database(pg_admin_url)
    upgrade(dbmod.get_engine(url))
    yield url
    dbmod.dispose_engines()
    pg.drop_database(pg_admin_url, url)


def _truncate(engine: sa.Engine) -> None:
    from pipeline.schema import metadata

    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[FaultProxy, str]]:
    """PostgreSQL behind a proxy the test can cut, and the URL through it."""
    url = sa.make_url(pg_url)
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs twice: on a real SQLite file and on the real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pipeline.db'}"
        upgrade(dbmod.get_engine(url))
        yield url
    else:
        url = request.getfixturevalue("pg_url")
        _truncate(dbmod.get_engine(url))
        yield url


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    return dbmod.get_engine(db_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'pipeline.db'}"
    upgrade(dbmod.get_engine(url))
    return url


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own PIPELINE_* settings or writes into the checkout's .pipeline/."""
    for key in list(os.environ):
        if key.startswith("PIPELINE_") and not key.startswith("PIPELINE_TEST_") and key != "PIPELINE_BROWSER_EXECUTABLE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def browser_session() -> Iterator[Any]:
    """ONE Chromium for the whole test session (Playwright's sync API allows one driver per thread)."""
    from pipeline.browser import BrowserSession, BrowserUnavailable

    session = BrowserSession(headless=True)
    try:
        session.browser()
    except BrowserUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield session
    session.close()


@pytest.fixture(scope="session", autouse=True)
def on_time_scenario(request: pytest.FixtureRequest) -> Iterator[Any]:
    """tests/test_ontime.py's five-minute scenario, started with the session so it runs beside the other tests
    (it waits, the machine is mostly free); None when that test is not selected."""
    if not any(item.nodeid.startswith("tests/test_ontime.py") for item in request.session.items):
        yield None
        return
    from tests.test_ontime import OnTimeScenario

    scenario = OnTimeScenario()
    yield scenario
    scenario.close()
