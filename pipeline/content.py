"""What may be posted: X's validity rules (twitter-text v3), thread size, and the content fingerprint.

What the user wrote is what goes live: a part is stored and posted exactly as written, NFC-normalised
and nothing else (line breaks kept). Whitespace is folded only inside fingerprints, the identity of a
post for duplicate protection: the NFC-normalised, whitespace-folded, case-folded text of every part.
Same account + same fingerprint = the same post, whatever the item id.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from twitter_text import parse_tweet

MAX_WEIGHTED_LENGTH = 280
MIN_THREAD_PARTS, MAX_THREAD_PARTS = 2, 25
# Control characters we refuse (tab and line feed are text). A zero-width space is text too: X accepts it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# twitter-text v3's invalid characters: a tweet holding one is refused by X.
_INVALID = re.compile(r"[\ufffe\ufeff\uffff]")
_SPACE = re.compile(r"\s+")


class ContentError(ValueError):
    """Content that X would reject or that we must not post; the message names the field and the limit."""


def as_written(text: str) -> str:
    """The text that goes live: what the user wrote, NFC-normalised (X normalises to NFC), nothing folded."""
    return unicodedata.normalize("NFC", text)


def normalise(text: str) -> str:
    """The folded form used only inside fingerprints and similarity: NFC, trimmed, whitespace runs folded."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def weighted_length(text: str) -> int:
    return parse_tweet(unicodedata.normalize("NFC", text)).weightedLength


def validate_part(text: str, label: str = "text") -> str:
    """Return the part as it will be posted (NFC, otherwise untouched) or raise ContentError naming the problem."""
    if not isinstance(text, str):
        raise ContentError(f"{label} must be a string")
    for pattern, kind in ((_CONTROL, "the control character"), (_INVALID, "the character")):
        found = pattern.search(text)
        if found:
            raise ContentError(f"{label} contains {kind} U+{ord(found.group()):04X}, which X refuses; remove it")
    cleaned = as_written(text)
    if not cleaned.strip():
        raise ContentError(f"{label} is empty")
    length = weighted_length(cleaned)
    if length > MAX_WEIGHTED_LENGTH:
        raise ContentError(f"{label} is {length} weighted characters; the limit is {MAX_WEIGHTED_LENGTH}")
    return cleaned


def validate_parts(parts: list[str]) -> list[str]:
    """Validate a single (one part) or a thread (2-25 parts)."""
    if not isinstance(parts, list) or not parts:
        raise ContentError("parts must be a non-empty list of strings")
    if len(parts) > 1 and not (MIN_THREAD_PARTS <= len(parts) <= MAX_THREAD_PARTS):
        raise ContentError(f"a thread has {len(parts)} parts; it must have {MIN_THREAD_PARTS} to {MAX_THREAD_PARTS}")
    if len(parts) == 1:
        return [validate_part(parts[0], "text")]
    return [validate_part(p, f"part {i}") for i, p in enumerate(parts, start=1)]


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
    if not account or not isinstance(account, str):
        raise ContentError("account is required")
    clean = validate_parts(parts)
    if reply_to is not None:
        reply_to = str(reply_to)
        if not _TWEET_ID.match(reply_to):
            raise ContentError(f"reply_to {reply_to!r} is not a tweet id (digits only)")
    kind = "reply" if reply_to else ("thread" if len(clean) > 1 else "single")
    return Draft(account=account.lstrip("@"), parts=clean, kind=kind, reply_to=reply_to, topic=topic, format=format)
