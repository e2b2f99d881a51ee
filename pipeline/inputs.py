"""Operator input, checked before anything is written: files, enqueue lines, times and time zones.

A file is read only when it is a regular file under a size limit (never `/dev/zero` or a pipe), as UTF-8
with or without a BOM. An enqueue file is validated whole first: every line's unknown keys, wrong types and
bad values are reported by line number, and nothing is enqueued unless every line is good. Media files a
line names are checked here too (pipeline/media.py), by their real content, before anything is written.
"""

from __future__ import annotations

import json
import os
import stat
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.content import ContentError, Draft, first_hidden_character, make_draft
from pipeline.media import MediaError, StagedMedia, check_file

ENQUEUE_FILE_MAX_BYTES = 64 * 1024 * 1024  # 50,000 full threads fit; a runaway file does not
PAST_GRACE = timedelta(minutes=5)  # an --at this little in the past is "now" (clock skew, slow typing)
MAX_ERRORS_SHOWN = 20
ENQUEUE_KEYS: dict[str, str] = {
    "account": "the X handle (registered)",
    "text": "a single post (or give parts)",
    "parts": "a thread: a list of 2 to 25 texts, or of {\"text\": ..., \"media\": [...]} objects",
    "media": "files for a single post: a list of {\"path\": FILE, \"alt\": TEXT} (path relative to this file)",
    "at": "ISO-8601 time with a zone, e.g. 2026-12-01T09:30:00Z (default: now)",
    "reply_to": "the tweet id to reply to (digits)",
    "topic": "a label for learning",
    "format": "a label for learning",
}


class InputError(ValueError):
    """Bad operator input; the message names the file, line, field and the fix (exit 2)."""


def read_text_file(path: str | Path, max_bytes: int, label: str) -> str:
    """The text of a regular file of at most `max_bytes`, decoded as UTF-8 (a BOM is accepted)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{label} {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{label} {path}: cannot be opened ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{label} {path}: is not a regular file (a device, pipe or folder); give a file")
        raise InputError(f"{label} {path}: is {info.st_size} bytes; the limit is {max_bytes}; split it")
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{label} {path}: is larger than the limit of {max_bytes} bytes; split it")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{label} {path} line {line}: is not UTF-8 (byte {exc.start}); save the file as UTF-8") from None


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def check_timezone(name: object, field: str = "--timezone") -> str:
    """An IANA time zone from the tz database (Europe/Berlin, UTC)."""
    if not isinstance(name, str):
        raise InputError(f"{field} must be a time zone name such as Europe/Berlin")
    bad = first_hidden_character(name)
    if bad is not None:
        raise InputError(f"{field} contains {bad}; use a time zone name such as Europe/Berlin")
    if name not in _zones():
        raise InputError(f"{field} {name!r} is not in the tz database; use a name such as Europe/Berlin or UTC")
    return name


def parse_at(value: object, field: str = "--at", now: datetime | None = None) -> datetime | None:
    """An aware time, not more than a few minutes in the past; None (post now) when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{field} must be an ISO-8601 text such as 2026-12-01T09:30:00Z")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{field} {value!r} is not an ISO-8601 time such as 2026-12-01T09:30:00Z") from None
    if at.tzinfo is None:
        raise InputError(f"{field} {value!r} has no time zone; add Z or an offset like +02:00")
    now = now or datetime.now(UTC)
    if at < now - PAST_GRACE:
        raise InputError(f"{field} {value!r} is in the past (now is {now:%Y-%m-%dT%H:%M}Z); "
                         "give a future time, or leave it out to post now")
    return at


@dataclass(frozen=True)
class EnqueueRequest:
    draft: Draft
    at: datetime | None
    line: int
    media_files: tuple[StagedMedia, ...] = ()  # checked files to copy into the store with the rows


class MediaChecker:
    """Checks media entries ({"path", "alt"}) once per file and alt: a 50,000-line file naming one image
    reads it once. Relative paths are taken from `base` (the enqueue file's or drafts file's folder)."""

    def __init__(self, base: Path, confined: bool = False) -> None:
        self.base = base
        self.confined = confined  # drafts name files beside them: no absolute paths, no `..` out of the folder
        self._seen: dict[tuple[str, str | None], StagedMedia] = {}

    def entries(self, value: Any, field: str) -> list[StagedMedia]:
        if not isinstance(value, list):
            raise InputError(f"key '{field}' must be a list of {{\"path\": FILE, \"alt\": TEXT}} objects")
        return [self.entry(entry, f"{field}[{i}]") for i, entry in enumerate(value)]

    def entry(self, entry: Any, field: str) -> StagedMedia:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or set(entry) - {"path", "alt"}:
            raise InputError(f"key '{field}' must be an object with 'path' (text) and optional 'alt'")
        path = self.base / entry["path"]
        if self.confined and not os.path.abspath(path).startswith(os.path.abspath(self.base) + os.sep):
            raise InputError(f"media file {entry['path']}: must be inside {self.base}, beside the drafts file")
        key = (str(path), entry.get("alt") if isinstance(entry.get("alt"), str) else repr(entry.get("alt")))
        if key not in self._seen:
            try:
                self._seen[key] = check_file(path, entry.get("alt"))
            except MediaError as exc:
                raise InputError(str(exc)) from None
        return self._seen[key]


def split_parts(obj: dict[str, Any], checker: MediaChecker) -> tuple[list[str], list[list[StagedMedia]]]:
    """Texts and media per part from an entry's 'text' (+ 'media') or 'parts' (texts or {text, media})."""
    if "text" in obj:
        return [obj["text"]], [checker.entries(obj["media"], "media") if "media" in obj else []]
    if "media" in obj:
        raise InputError("key 'media' goes with 'text'; for a thread give each part as {\"text\": ..., \"media\": [...]}")
    texts: list[str] = []
    media: list[list[StagedMedia]] = []
    for i, part in enumerate(obj["parts"], start=1):
        if isinstance(part, dict):
            if not isinstance(part.get("text"), str) or set(part) - {"text", "media"}:
                raise InputError(f"part {i} must be a text or an object with 'text' and optional 'media'")
            texts.append(part["text"])
            media.append(checker.entries(part.get("media", []), f"parts[{i - 1}].media"))
        else:
            texts.append(part)
            media.append([])
    return texts, media


def _line_request(obj: Any, n: int, now: datetime, checker: MediaChecker) -> EnqueueRequest:
    if not isinstance(obj, dict):
        raise InputError(f"line {n}: must be a JSON object such as {{\"account\": \"alice\", \"text\": \"...\"}}")
    unknown = sorted(set(obj) - set(ENQUEUE_KEYS))
    if unknown:
        raise InputError(f"line {n}: unknown key {unknown[0]!r}; the keys are {', '.join(ENQUEUE_KEYS)}")
    if "account" not in obj:
        raise InputError(f"line {n}: key 'account' is missing")
    if ("text" in obj) == ("parts" in obj):
        raise InputError(f"line {n}: give exactly one of the keys 'text' or 'parts'")
    if "text" in obj and not isinstance(obj["text"], str):
        raise InputError(f"line {n}: key 'text' must be a string, not {type(obj['text']).__name__}")
    if "parts" in obj and not (isinstance(obj["parts"], list)
                               and all(isinstance(p, str | dict) for p in obj["parts"])):
        raise InputError(f"line {n}: key 'parts' must be a list of texts or {{\"text\", \"media\"}} objects")
    if "parts" in obj and len(obj["parts"]) < 2:
        raise InputError(f"line {n}: key 'parts' needs 2 to 25 parts; use 'text' for a single post")
    reply_to = obj.get("reply_to")
    if isinstance(reply_to, bool) or not (reply_to is None or isinstance(reply_to, str | int)):
        raise InputError(f"line {n}: key 'reply_to' must be a tweet id (digits)")
    try:
        at = parse_at(obj.get("at"), "key 'at'", now)
    except InputError as exc:
        raise InputError(f"line {n}: {exc}") from None
    try:
        parts, media = split_parts(obj, checker)
        draft = make_draft(obj["account"], parts, None if reply_to is None else str(reply_to),
                           obj.get("topic"), obj.get("format"), [[m.ref for m in part] for part in media])
    except (ContentError, InputError) as exc:
        raise InputError(f"line {n}: {exc}") from None
    return EnqueueRequest(draft, at, n, tuple(m for part in media for m in part))


def parse_enqueue_file(path: str | Path, now: datetime | None = None) -> list[EnqueueRequest]:
    """Every line of a JSON-lines file as a request, or InputError listing each bad line (all lines checked)."""
    text = read_text_file(path, ENQUEUE_FILE_MAX_BYTES, "--file")
    now = now or datetime.now(UTC)
    requests: list[EnqueueRequest] = []
    errors: list[str] = []
    checker = MediaChecker(Path(path).parent)
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"line {n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            requests.append(_line_request(obj, n, now, checker))
        except InputError as exc:
            errors.append(str(exc))
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise InputError(f"--file {path}: {len(errors)} bad line(s), nothing was enqueued:\n  "
                         + "\n  ".join(shown) + more)
    if not requests:
        raise InputError(f"--file {path} holds no items")
    return requests
