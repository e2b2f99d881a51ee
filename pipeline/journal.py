"""A durable local journal for tweet ids the database could not take.

The predecessor's worst failure: X accepted the post, the database write failed, the item looked unposted
and was posted again (five times). Here, when the confirmation cannot be written even after retries,
the tweet id is appended to this file (fsync'd JSON lines, mode 0600) before the run exits non-zero, and
every posting run replays the journal into the database before it posts anything.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from pipeline import queue
from pipeline.statefiles import open_private, write_private


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = open_private(self.path.with_suffix(".lock"), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def append(self, entry: dict[str, Any]) -> None:
        """Durably record one confirmation (returns only once it is on disk)."""
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        with self._locked():
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line from a crash mid-write: its post is reconciled instead
        return entries

    def replay(self, engine: Engine) -> int:
        """Write every journalled confirmation into the database; raises if the database is still down,
        so that nothing is posted while a posted-but-unrecorded tweet exists."""
        with self._locked():
            entries = self.pending()
            done = 0
            for entry in entries:
                queue.confirm_part(engine, entry["item_id"], entry["part_index"], entry["tweet_id"],
                                   entry.get("attempt_id"), via="journal")
                done += 1
            if entries:
                write_private(self.path, b"")
            return done
