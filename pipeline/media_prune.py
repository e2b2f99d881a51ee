"""Pruning the content-addressed media store, so `PIPELINE_STATE_DIR/media/` does not grow forever.

A stored file may go once nothing can post it again: every item naming it has finished (posted, failed or
cancelled) longer ago than `media_retention_days`, measured on the database clock. A file named by any item
that is not finished (pending approval, queued, claimed, posting, unknown, needs review) is always kept,
whatever its age: reconciliation and a human's `pipeline resolve --requeue` may still need it. A file no
item names (left by a crash between copy and commit) goes once it is older than the retention too.

The prune holds the store's lock (the one `pipeline enqueue` holds from copying its files to committing its
items, pipeline/media.py `storing`), so it never deletes a file an enqueue is about to reference.
Nothing here imports Dagster.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline import schema as s
from pipeline.db import db_now
from pipeline.media import media_dir

FINISHED = (s.POSTED, s.FAILED, s.CANCELLED)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PruneReport:
    """What a prune found and did: files deleted (or, on a dry run, that would be), kept, and bytes freed."""

    retention_days: float
    dry_run: bool
    cutoff: str = ""
    deleted: list[dict[str, Any]] = field(default_factory=list)
    kept_referenced: int = 0
    kept_recent: int = 0
    freed_bytes: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"retention_days": self.retention_days, "dry_run": self.dry_run, "cutoff": self.cutoff,
                "deleted": len(self.deleted), "freed_bytes": self.freed_bytes, "kept_referenced": self.kept_referenced,
                "kept_recent": self.kept_recent, "files": self.deleted}


def _references(engine: Engine, cutoff: datetime) -> tuple[set[str], set[str]]:
    """(hashes some item still needs, hashes named only by items finished before `cutoff`)."""
    items = s.content_items
    finished_at = sa.func.coalesce(items.c.posted_at, items.c.updated_at)
    needed: set[str] = set()
    old: set[str] = set()
    with engine.connect() as conn:
        rows = conn.execute(sa.select(items.c.state, finished_at.label("finished_at"), items.c.media)
                            .where(items.c.media.is_not(None)))
        for state, at, media in rows:
            hashes = {str(ref["sha256"]) for part in media or [] for ref in part or []}
            if state in FINISHED and at is not None and at < cutoff:
                old |= hashes
            else:
                needed |= hashes
    return needed, old - needed


def prune(engine: Engine, state_dir: str | Path, retention_days: float, dry_run: bool = False) -> PruneReport:
    """Delete (or list, on a dry run) the store's files that nothing can post again; see the module doc."""
    report = PruneReport(retention_days=retention_days, dry_run=dry_run)
    folder = media_dir(state_dir)
    if not folder.is_dir():
        return report
    lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with engine.connect() as conn:
            cutoff = db_now(conn) - timedelta(days=retention_days)
        report.cutoff = cutoff.isoformat(timespec="seconds")
        needed, only_old = _references(engine, cutoff)
        oldest_mtime = time.time() - retention_days * 86400
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not _SHA256.match(entry.name):
                continue  # not a stored file (a copy in progress is named otherwise)
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) and not stat.S_ISLNK(info.st_mode):
                continue
            if entry.name in needed:
                report.kept_referenced += 1
                continue
            why = "finished items only" if entry.name in only_old else "no item"
            if why == "no item" and info.st_mtime >= oldest_mtime:
                report.kept_recent += 1
                continue
            if not dry_run:
                os.unlink(entry.path)
            report.deleted.append({"sha256": entry.name, "bytes": info.st_size, "referenced_by": why})
            report.freed_bytes += info.st_size
    finally:
        os.close(lock)
    return report
