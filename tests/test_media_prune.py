"""Pruning the media store on real SQLite and PostgreSQL: only files that items finished longer ago than the
retention name (or that no item names and are as old) go; media of queued, in-flight or recently finished items
and of items a human must still judge stay, and a dry run deletes nothing."""

from __future__ import annotations

import io
import json
import os
import time
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path
from unittest import mock

import sqlalchemy as sa

from pipeline import queue
from pipeline import schema as s
from pipeline.cli import main
from pipeline.content import make_draft
from pipeline.db import db_now
from pipeline.media import MediaRef, media_path
from pipeline.media_prune import prune
from tests import media_files as mf


def _item(engine: sa.Engine, text: str, refs: list[MediaRef], state: str, days_ago: float = 0.0) -> int:
    """One item naming `refs`, put in `state`, finished (posted_at / updated_at) `days_ago` on the database clock."""
    [item_id] = queue.enqueue(engine, [(make_draft("alice", [text], media=[refs]), None)])
    with engine.begin() as conn:
        at = db_now(conn) - timedelta(days=days_ago)
        conn.execute(s.content_items.update().where(s.content_items.c.id == item_id).values(
            state=state, updated_at=at, posted_at=at if state == s.POSTED else None))
    return item_id


def _store(state_dir: Path, tmp_path: Path, seed: int) -> MediaRef:
    return mf.stored(state_dir, mf.image(tmp_path / f"{seed}.png", seed=seed, side=16))[1]


def test_prune_deletes_only_what_nothing_can_post_again(engine: sa.Engine, tmp_path: Path) -> None:
    queue.add_account(engine, "alice", "/nonexistent/alice.json")
    state = tmp_path / "state"
    refs = {name: _store(state, tmp_path, seed) for seed, name in enumerate(
        ("queued", "old_posted", "shared", "recent_posted", "old_failed", "old_review", "old_orphan", "new_orphan",
         "in_flight"))}
    _item(engine, "queued", [refs["queued"]], s.QUEUED, days_ago=90)  # scheduled long ago, still to post
    _item(engine, "old posted", [refs["old_posted"]], s.POSTED, days_ago=40)
    _item(engine, "old posted, shared", [refs["shared"]], s.POSTED, days_ago=40)
    _item(engine, "pending, shared", [refs["shared"]], s.PENDING_APPROVAL, days_ago=40)
    _item(engine, "recent posted", [refs["recent_posted"]], s.POSTED, days_ago=5)
    _item(engine, "old failed", [refs["old_failed"]], s.FAILED, days_ago=31)
    _item(engine, "old review", [refs["old_review"]], s.NEEDS_REVIEW, days_ago=60)  # a human may requeue it
    _item(engine, "in flight", [refs["in_flight"]], s.UNKNOWN, days_ago=60)
    old = time.time() - 31 * 86400
    os.utime(media_path(state, refs["old_orphan"].sha256), (old, old))  # named by no item (a crash's leftover)
    gone = {refs[n].sha256 for n in ("old_posted", "old_failed", "old_orphan")}

    dry = prune(engine, state, retention_days=30, dry_run=True)
    assert {f["sha256"] for f in dry.deleted} == gone
    assert all(media_path(state, r.sha256).exists() for r in refs.values())  # a dry run deletes nothing
    report = prune(engine, state, retention_days=30)
    assert {f["sha256"]: f["referenced_by"] for f in report.deleted} == {
        refs["old_posted"].sha256: "finished items only", refs["old_failed"].sha256: "finished items only",
        refs["old_orphan"].sha256: "no item"}
    assert report.freed_bytes == sum(r.bytes for n, r in refs.items() if r.sha256 in gone)
    assert (report.kept_referenced, report.kept_recent) == (5, 1)
    assert {n for n, r in refs.items() if not media_path(state, r.sha256).exists()} == {
        "old_posted", "old_failed", "old_orphan"}
    assert prune(engine, state, retention_days=30).deleted == []  # nothing more to do
    assert [f["sha256"] for f in prune(engine, state, retention_days=4).deleted] == [refs["recent_posted"].sha256]


def test_pipeline_media_prune_cli_dry_run_and_json(tmp_path: Path, engine: sa.Engine) -> None:
    from pipeline.migrate import upgrade

    upgrade(engine)
    queue.add_account(engine, "alice", "/nonexistent/alice.json")
    state = tmp_path / "cli_state"
    ref = _store(state, tmp_path, 1)
    _item(engine, "posted long ago", [ref], s.POSTED, days_ago=10)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")},
           "PIPELINE_DATABASE_URL": str(engine.url.render_as_string(hide_password=False)),
           "PIPELINE_STATE_DIR": str(state), "PIPELINE_MEDIA_RETENTION_DAYS": "7"}

    def run(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out):
            return main(["media", "prune", *args]), out.getvalue()

    code, text = run("--dry-run")
    assert code == 0 and f"would delete {ref.sha256}" in text and "retention 7 days" in text
    assert media_path(state, ref.sha256).exists()
    code, text = run("--json")
    report = json.loads(text)
    assert code == 0 and report["deleted"] == 1 and report["freed_bytes"] == ref.bytes and not report["dry_run"]
    assert not media_path(state, ref.sha256).exists()
