"""Files we write (sessions, journal): only under PIPELINE_STATE_DIR, never through a link, folders 0700.

A planted symlink (`sessions/alice.json.tmp -> ~/.bashrc`) must not turn our write into an overwrite of its
target, and a name from the operator (`../../x`) must not leave the state folder. So every write opens a
fresh temporary file with O_CREAT|O_EXCL|O_NOFOLLOW (mode 0600) and renames it over the target (a rename
replaces a link, it never writes through it); folders are created 0700 and tightened when found looser.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("pipeline.statefiles")


class StateFileError(ValueError):
    """A path we were asked to write is outside the state folder or is a link; the message names it."""


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) as 0700 folders; refuse a link; tighten a looser existing folder."""
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        raise StateFileError(f"{path} is a symbolic link; the state folder must be a real folder")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise StateFileError(f"{path} is not a folder")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def path_under(root: Path, *names: str) -> Path:
    """`root/names...`, refusing any name that would leave `root` (separators, `..`, absolute)."""
    root = Path(os.path.abspath(root))
    for name in names:
        if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
            raise StateFileError(f"{name!r} is not a plain file name inside {root}")
    target = root.joinpath(*names)
    if os.path.commonpath([root, os.path.abspath(target)]) != str(root):
        raise StateFileError(f"{target} is outside {root}")
    return target


@contextmanager
def private_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A file handle whose bytes replace `path` atomically (mode 0600) when the block ends without error,
    never following a link at any step; on an error nothing is left behind. Streams: a 512 MB video need
    not fit in memory."""
    target = Path(os.path.abspath(path))
    private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically with mode 0600, never following a link at any step."""
    with private_writer(path) as fh:
        fh.write(data)
    return Path(os.path.abspath(path))


def write_secret_file(path: str | Path, data: dict[str, Any]) -> Path:
    """A browser session (Playwright storage_state) as JSON, 0600, written as `write_private` does."""
    return write_private(path, json.dumps(data).encode())


def open_private(path: str | Path, flags: int) -> int:
    """os.open for our own files (journal, its lock): created 0600, refused when the name is a link."""
    target = Path(os.path.abspath(path))
    private_dir(target.parent)
    try:
        return os.open(target, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if target.is_symlink():
            raise StateFileError(f"{target} is a symbolic link; remove it (we never write through links)") from None
        raise exc


def warn_if_shared(path: str | Path) -> str | None:
    """A warning when a session file we are given can be read by the group or others (it holds cookies)."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        warning = (f"warning: {path} is readable by others (mode {mode:o}); it holds a logged-in session: "
                   f"`chmod 600 {path}` or delete it now that it is copied")
        log.warning(warning)
        return warning
    return None
