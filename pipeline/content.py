"""What may be posted: X's weighted length (twitter-text v3), thread size, and the content fingerprint.

The fingerprint is the identity of a post for duplicate protection and for reconciliation against the
timeline: the NFC-normalised, whitespace-folded, case-folded text of every part. Same account + same
fingerprint = the same post, whatever the item id.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from twitter_text import parse_tweet

from pipeline.handles import HandleError, canonical_handle

MAX_WEIGHTED_LENGTH = 280
MIN_THREAD_PARTS, MAX_THREAD_PARTS = 2, 25
MAX_TOPIC_LENGTH, MAX_FORMAT_LENGTH = 64, 32  # the columns' sizes
# Invisible format characters (Unicode Cf: bidi overrides, zero-width spaces, BOM...) are refused in posts:
# they make a text read differently than it is stored. Kept: the zero-width joiner and the tag characters
# that build emoji (family, flag of England).
_ALLOWED_FORMAT = {"\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)}
_SPACE = re.compile(r"\s+")
_MAYBE_URL = re.compile(r"\.\w")  # a URL needs a dot before its TLD


class ContentError(ValueError):
    """Content that X would reject or that we must not post; the message names the field and the limit."""


def normalise(text: str) -> str:
    """The form X compares (and we fingerprint): NFC, trimmed, runs of whitespace folded."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def weighted_length(text: str) -> int:
    """X's weighted length. Plain ASCII that cannot hold a URL (no dot before a word character) weighs one
    per character; that shortcut skips the reference parser, the slow step of a 50,000-line enqueue."""
    text = unicodedata.normalize("NFC", text)
    if text.isascii() and "\r" not in text and not _MAYBE_URL.search(text):
        return len(text)
    return parse_tweet(text).weightedLength


def validate_part(text: str, label: str = "text") -> str:
    """Return the normalised part or raise ContentError naming the problem."""
    if not isinstance(text, str):
        raise ContentError(f"{label} must be a string")
    bad = first_hidden_character(text, allow_newlines=True)
    if bad is not None:
        raise ContentError(f"{label} contains {bad}; remove it")
    cleaned = normalise(text)
    if not cleaned:
        raise ContentError(f"{label} is empty")
    length = weighted_length(cleaned)
    if length > MAX_WEIGHTED_LENGTH:
        raise ContentError(f"{label} is {length} weighted characters; the limit is {MAX_WEIGHTED_LENGTH}")
    return cleaned


def first_hidden_character(text: str, allow_newlines: bool = False) -> str | None:
    """The first control or invisible formatting character in `text`, described for an error message."""
    for position, ch in enumerate(text, start=1):
        category = unicodedata.category(ch)
        if allow_newlines and ch in "\n\t":
            continue
        if category in {"Cc", "Zl", "Zp"} or (category == "Cf" and ch not in _ALLOWED_FORMAT):
            kind = "the control character" if category != "Cf" else "the invisible formatting character"
            name = unicodedata.name(ch, "unnamed")
            return f"{kind} U+{ord(ch):04X} ({name}) at character {position}"
    return None


def check_label(value: object, field: str, max_length: int) -> str | None:
    """A short operator label (topic, format): text, at most `max_length`, no control or invisible characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContentError(f"{field} must be text, not {type(value).__name__}")
    bad = first_hidden_character(value)
    if bad is not None:
        raise ContentError(f"{field} contains {bad}; remove it")
    if not value.strip() or len(value) > max_length:
        raise ContentError(f"{field} must be 1 to {max_length} characters")
    return value.strip()


def validate_parts(parts: list[str]) -> list[str]:
    """Validate a single (one part) or a thread (2-25 parts)."""
    if not isinstance(parts, list) or not parts:
        raise ContentError("parts must be a non-empty list of strings")
    if len(parts) > 1 and not (MIN_THREAD_PARTS <= len(parts) <= MAX_THREAD_PARTS):
        raise ContentError(f"a thread has {len(parts)} parts; it must have {MIN_THREAD_PARTS} to {MAX_THREAD_PARTS}")
    if len(parts) == 1:
        return [validate_part(parts[0], "text")]
    clean = [validate_part(p, f"part {i}") for i, p in enumerate(parts, start=1)]
    first_seen: dict[str, int] = {}
    for i, part in enumerate(clean, start=1):
        earlier = first_seen.setdefault(text_fingerprint(part), i)
        if earlier != i:
            raise ContentError(f"part {i} repeats part {earlier}; X refuses a repeated text, so part {i} would fail")
    return clean


def text_fingerprint(text: str) -> str:
    """Fingerprint of one part, as it will appear on the timeline."""
    return hashlib.sha256(normalise(text).casefold().encode()).hexdigest()[:32]


def fingerprint(parts: list[str]) -> str:
    """Fingerprint of a whole item (unique per account among live items)."""
    joined = "\n\u241e\n".join(normalise(p).casefold() for p in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Draft:
    """A validated item ready to enqueue."""

    account: str
    parts: list[str]
    kind: str  # single | thread | reply
    reply_to: str | None = None
    topic: str | None = None
    format: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.parts)


_TWEET_ID = re.compile(r"^[0-9]{1,25}$")


def make_draft(
    account: str,
    parts: list[str],
    reply_to: str | None = None,
    topic: str | None = None,
    format: str | None = None,
) -> Draft:
    try:
        handle = canonical_handle(account)
    except HandleError as exc:
        raise ContentError(str(exc)) from None
    clean = validate_parts(parts)
    topic = check_label(topic, "topic", MAX_TOPIC_LENGTH)
    format = check_label(format, "format", MAX_FORMAT_LENGTH)
    if reply_to is not None:
        reply_to = str(reply_to)
        if not _TWEET_ID.match(reply_to):
            raise ContentError(f"reply_to {reply_to!r} is not a tweet id (digits only)")
    kind = "reply" if reply_to else ("thread" if len(clean) > 1 else "single")
    return Draft(account=handle, parts=clean, kind=kind, reply_to=reply_to, topic=topic, format=format)
