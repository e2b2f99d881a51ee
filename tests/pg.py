"""A real PostgreSQL server for the tests: the local one, or a throwaway cluster started on demand.

Never skips: when no server can be had, the tests fail with the fix in the message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
THROWAWAY_PORT = 55432
FIX = (
    "PostgreSQL is required for the tests. Start the local server "
    "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), point "
    "PIPELINE_TEST_PG_ADMIN_URL at one, or install the server binaries (apt-get install -y postgresql) so the "
    "tests can start a throwaway cluster."
)


def _reachable(url: str) -> bool:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def _start_throwaway_cluster() -> str:
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bindirs:
        raise RuntimeError("no PostgreSQL server reachable and no server binaries installed. " + FIX)
    bindir = bindirs[-1]
    data = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    shutil.chown(data, "postgres")
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w",
                    "-o", f"-p {THROWAWAY_PORT} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    return f"postgresql+psycopg2://postgres@127.0.0.1:{THROWAWAY_PORT}/postgres"


def admin_url() -> str:
    url = os.environ.get("PIPELINE_TEST_PG_ADMIN_URL", DEFAULT_ADMIN_URL)
    if _reachable(url):
        return url
    throwaway = f"postgresql+psycopg2://postgres@127.0.0.1:{THROWAWAY_PORT}/postgres"
    if _reachable(throwaway):
        return throwaway
    try:
        url = _start_throwaway_cluster()
    except (subprocess.CalledProcessError, OSError, LookupError) as exc:
        raise RuntimeError(f"could not start a throwaway PostgreSQL cluster ({exc}). {FIX}") from exc
    for _ in range(50):
        if _reachable(url):
            return url
        time.sleep(0.2)
    raise RuntimeError("a throwaway PostgreSQL cluster started but does not answer. " + FIX)


def create_database(admin: str, prefix: str = "pipeline_test") -> str:
    """Create a fresh database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_database(admin: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()
