"""Enqueue a 50,000-line file into a queue already holding 1M rows, on SQLite and PostgreSQL.

    .venv/bin/python bench/enqueue.py [--history 1000000] [--lines 50000] [--baseline-lines 2000]

Measures the whole `pipeline enqueue --file` path (read, validate, duplicate check, insert), the longest
write transaction it holds, and what a post's confirmation suffers meanwhile: a probe thread makes a
confirmation-sized write every 10 ms and records how long each waited. Baseline, same run: the previous
enqueue (one transaction, a duplicate query and an insert per row) on a smaller file (`--baseline-lines`;
at 50,000 lines it took minutes). Goal (issue 16): under 10 s on both databases; no lock held over 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from unittest import mock

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # bench/queue.py-style imports of the project

import sqlalchemy as sa  # noqa: E402

from bench.common import markdown_table, write_result  # noqa: E402
from pipeline import db as dbmod  # noqa: E402
from pipeline import queue  # noqa: E402
from pipeline import schema as s  # noqa: E402
from pipeline.cli import main as cli_main  # noqa: E402
from pipeline.migrate import upgrade  # noqa: E402
from tests import pg  # noqa: E402

ACCOUNTS = 10
GOAL_S, GOAL_LOCK_MS = 10.0, 100.0


def fill(engine: sa.Engine, rows: int) -> None:
    """`rows` posted items over 10 accounts (the history a long-running queue holds)."""
    with engine.begin() as conn:
        for n in range(ACCOUNTS):
            conn.execute(s.accounts.insert().values(handle=f"acct{n}", storage_state_path="/dev/null",
                                                    created_at=dbmod.db_now(conn)))
        if dbmod.is_sqlite(conn):
            conn.exec_driver_sql(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) "
                "INSERT INTO content_items (account, kind, parts, part_count, fingerprint, state, scheduled_at, "
                "source, created_at, updated_at, posted_at) SELECT 'acct' || (n % 10), 'single', "
                "json_array('history post ' || n), 1, lower(hex(randomblob(16))), 'posted', "
                "'2026-01-01 00:00:00.000000', 'operator', '2026-01-01 00:00:00.000000', "
                "'2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000' FROM g", (rows,))
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql(
                "INSERT INTO content_items (account, kind, parts, part_count, fingerprint, state, scheduled_at, "
                "source, created_at, updated_at, posted_at) SELECT 'acct' || (g %% 10), 'single', "
                "json_build_array('history post ' || g), 1, md5(g::text), 'posted', now(), 'operator', now(), "
                "now(), now() FROM generate_series(1, %(rows)s) g", {"rows": rows})
            conn.exec_driver_sql("ANALYZE content_items")


def write_file(path: Path, lines: int, tag: str) -> None:
    with path.open("w") as fh:
        for n in range(lines):
            fh.write(json.dumps({"account": f"acct{n % ACCOUNTS}", "text": f"{tag} post number {n} #bench"}) + "\n")


class LockMeter:
    """Times every write transaction the enqueue opens (patched over pipeline.queue.transaction)."""

    def __init__(self) -> None:
        self.durations: list[float] = []

    @contextlib.contextmanager
    def transaction(self, engine: sa.Engine) -> Iterator[sa.Connection]:
        start = time.perf_counter()
        with dbmod.transaction(engine) as conn:
            yield conn
        self.durations.append(time.perf_counter() - start)


class ConfirmationProbe(threading.Thread):
    """A confirmation-sized write every 10 ms; the longest wait is what a real confirmation would suffer."""

    def __init__(self, engine: sa.Engine, item_id: int) -> None:
        super().__init__(daemon=True)
        self.engine, self.item_id = engine, item_id
        self.waits: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                with dbmod.transaction(self.engine) as conn:
                    conn.execute(s.content_items.update().where(s.content_items.c.id == self.item_id)
                                 .values(updated_at=dbmod.now_sql(conn)))
            except dbmod.DatabaseError:  # SQLite's busy timeout (30 s) ran out: the confirmation failed
                self.failures += 1
            self.waits.append(time.perf_counter() - start)
            self.stop.wait(0.01)


def old_enqueue(engine: sa.Engine, entries: list, source: str = "operator", labels: object = None) -> list[int]:
    """The previous implementation, for the baseline: one transaction, a query and an insert per row."""
    items, ids = s.content_items, []
    with queue.transaction(engine) as conn:
        now = dbmod.db_now(conn)
        for draft, at in entries:
            live = conn.execute(sa.select(items.c.id).where(
                items.c.account == draft.account, items.c.fingerprint == draft.fingerprint,
                items.c.state.not_in(s.DEAD_STATES))).first()
            assert live is None
            ids.append(conn.execute(items.insert().values(
                account=draft.account, kind=draft.kind, parts=draft.parts, part_count=len(draft.parts),
                fingerprint=draft.fingerprint, state=s.QUEUED, scheduled_at=(at or now).astimezone(UTC),
                source=source, created_at=now, updated_at=now)).inserted_primary_key[0])
    return ids


def run_enqueue(url: str, state_dir: Path, path: Path, baseline: bool) -> dict[str, float]:
    engine = dbmod.get_engine(url)
    with engine.connect() as conn:
        probe_id = conn.execute(sa.select(sa.func.min(s.content_items.c.id))).scalar_one()
    meter, probe = LockMeter(), ConfirmationProbe(engine, probe_id)
    env = {"PIPELINE_DATABASE_URL": url, "PIPELINE_STATE_DIR": str(state_dir), "PATH": os.environ.get("PATH", "")}
    patches = [mock.patch.object(queue, "transaction", meter.transaction), mock.patch.dict(os.environ, env, clear=True)]
    if baseline:
        patches.append(mock.patch.object(queue, "enqueue", old_enqueue))
    probe.start()
    with contextlib.ExitStack() as stack, contextlib.redirect_stdout(io.StringIO()):
        for p in patches:
            stack.enter_context(p)
        start = time.perf_counter()
        code = cli_main(["enqueue", "--file", str(path)])
        elapsed = time.perf_counter() - start
    probe.stop.set()
    probe.join()
    assert code == 0, f"enqueue exited {code}"
    return {"seconds": round(elapsed, 2), "write_transactions": len(meter.durations),
            "longest_write_lock_ms": round(max(meter.durations) * 1000, 1),
            "longest_confirmation_wait_ms": round(max(probe.waits) * 1000, 1),
            "confirmations_timed_out": probe.failures}


def bench_database(name: str, url: str, work: Path, history: int, lines: int, baseline_lines: int) -> list[dict]:
    engine = dbmod.get_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    fill(engine, history)
    print(f"{name}: {history} history rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows = []
    for label, n, baseline in (("pipeline", lines, False), ("baseline (previous enqueue)", baseline_lines, True)):
        path = work / f"{name}-{label[:4]}.jsonl"
        write_file(path, n, f"{name}-{label[:4]}")
        result = run_enqueue(url, work / "state", path, baseline)
        met = result["seconds"] < GOAL_S and result["longest_write_lock_ms"] < GOAL_LOCK_MS
        rows.append({"database": name, "enqueue": label, "lines": n, "history_rows": history, **result,
                     "goal_met": met if not baseline else "n/a"})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--baseline-lines", type=int, default=2_000)
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-enqueue-") as tmp:
        work = Path(tmp)
        rows += bench_database("sqlite", f"sqlite:///{work / 'bench.db'}", work, args.history, args.lines,
                               args.baseline_lines)
        dbmod.dispose_engines()
        admin = pg.admin_url()
        url = pg.create_database(admin, "pipeline_bench_enqueue")
        try:
            rows += bench_database("postgresql", url, work, args.history, args.lines, args.baseline_lines)
        finally:
            dbmod.dispose_engines()
            pg.drop_database(admin, url)
    ours = [r for r in rows if r["enqueue"] == "pipeline"]
    payload = {"benchmark": "enqueue", "goal": f"{args.lines} lines in < {GOAL_S:.0f} s into {args.history} rows, "
               f"no write lock > {GOAL_LOCK_MS:.0f} ms, on SQLite and PostgreSQL",
               "goal_met": all(r["goal_met"] is True for r in ours),
               "baseline": "the previous enqueue: one transaction with a duplicate query and an insert per row",
               "results": rows}
    write_result("enqueue", payload, markdown_table(rows, list(rows[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
