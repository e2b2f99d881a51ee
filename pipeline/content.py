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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twitter_text import parse_tweet

from pipeline.handles import HandleError, canonical_handle

if TYPE_CHECKING:
    from pipeline.media import MediaRef

MAX_WEIGHTED_LENGTH = 280
MIN_THREAD_PARTS, MAX_THREAD_PARTS = 2, 25
MAX_TOPIC_LENGTH, MAX_FORMAT_LENGTH = 64, 32  # the columns' sizes
# Invisible format characters (Unicode Cf: bidi overrides, zero-width spaces, BOM...) are refused in posts:
# they make a text read differently than it is stored. Kept: the zero-width joiner and the tag characters
# that build emoji (family, flag of England).
_ALLOWED_FORMAT = {"\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)}
# In a post a zero-width space is text as well: X accepts it (twitter-text's conformance suite).
_ALLOWED_IN_POSTS = _ALLOWED_FORMAT | {"\u200b"}
# What X itself refuses (twitter-text v3): control characters (tab and line feed are text) and its invalid
# characters. X accepts bidi marks and zero-width spaces; we refuse the former by policy (validate_part).
_X_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_X_INVALID = re.compile(r"[\ufffe\ufeff\uffff]")
_SPACE = re.compile(r"\s+")
_MAYBE_URL = re.compile(r"\.\w")  # a URL needs a dot before its TLD


class ContentError(ValueError):
    """Content that X would reject or that we must not post; the message names the field and the limit."""


def as_written(text: str) -> str:
    """The text that goes live: what the user wrote, NFC-normalised (X normalises to NFC), nothing folded."""
    return unicodedata.normalize("NFC", text)


def normalise(text: str) -> str:
    """The folded form used only inside fingerprints and similarity: NFC, trimmed, whitespace runs folded."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def weighted_length(text: str) -> int:
    """X's weighted length. Plain ASCII that cannot hold a URL (no dot before a word character) weighs one
    per character; that shortcut skips the reference parser, the slow step of a 50,000-line enqueue."""
    text = unicodedata.normalize("NFC", text)
    if text.isascii() and "\r" not in text and not _MAYBE_URL.search(text):
        return len(text)
    return parse_tweet(text).weightedLength


def x_refuses(text: str) -> str | None:
    """Why X would refuse this part (twitter-text v3 validity), or None: agrees with its conformance suite."""
    for pattern, kind in ((_X_CONTROL, "the control character"), (_X_INVALID, "the character")):
        found = pattern.search(text)
        if found:
            return f"{kind} U+{ord(found.group()):04X}, which X refuses"
    if not as_written(text).strip():
        return "nothing but spaces"
    length = weighted_length(as_written(text))
    if length > MAX_WEIGHTED_LENGTH:
        return f"{length} weighted characters; the limit is {MAX_WEIGHTED_LENGTH}"
    return None


def validate_part(text: str, label: str = "text") -> str:
    """Return the part as it will be posted (NFC, otherwise untouched) or raise ContentError naming the problem.

    X's own rules first, then ours: invisible formatting characters (bidi overrides...) X would take are
    refused too, because they make a post read differently than it is stored."""
    if not isinstance(text, str):
        raise ContentError(f"{label} must be a string")
    problem = x_refuses(text)
    if problem == "nothing but spaces":
        raise ContentError(f"{label} is empty")
    if problem is not None:
        raise ContentError(f"{label} is {problem}" if problem[0].isdigit() else f"{label} contains {problem}; remove it")
    bad = first_hidden_character(text, in_post=True)
    if bad is not None:
        raise ContentError(f"{label} contains {bad}; remove it")
    return as_written(text)


def first_hidden_character(text: str, in_post: bool = False) -> str | None:
    """The first control or invisible formatting character in `text`, described for an error message.

    A post may hold line breaks, tabs and zero-width spaces (X accepts them); labels may not."""
    allowed = _ALLOWED_IN_POSTS if in_post else _ALLOWED_FORMAT
    for position, ch in enumerate(text, start=1):
        category = unicodedata.category(ch)
        if in_post and ch in "\n\t":
            continue
        if category in {"Cc", "Zl", "Zp"} or (category == "Cf" and ch not in allowed):
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


def fingerprint(parts: list[str], media_hashes: Sequence[Sequence[str]] = ()) -> str:
    """Fingerprint of a whole item (unique per account among live items). Media hashes per part count: the
    same text with another image is another post. Without media it is the text-only fingerprint, unchanged,
    so rows enqueued before media stay valid."""
    joined = "\n\u241e\n".join(normalise(p).casefold() for p in parts)
    if any(media_hashes):
        joined += "\n\u241e media\n" + "\n".join(",".join(part) for part in media_hashes)
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
    media: tuple[tuple[MediaRef, ...], ...] = ()  # per part; () for none

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.parts, [[ref.sha256 for ref in part] for part in self.media])

    @property
    def media_per_part(self) -> list[list[MediaRef]]:
        """One list per part (empty lists when the draft has no media): the `content_items.media` shape."""
        return [list(part) for part in self.media] if self.media else [[] for _ in self.parts]


_TWEET_ID = re.compile(r"^[0-9]{1,25}$")


def make_draft(
    account: str,
    parts: list[str],
    reply_to: str | None = None,
    topic: str | None = None,
    format: str | None = None,
    media: Sequence[Sequence[MediaRef]] | None = None,
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
    per_part: tuple[tuple[MediaRef, ...], ...] = ()
    if media and any(media):
        if len(media) != len(clean):
            raise ContentError(f"media is given for {len(media)} parts but the post has {len(clean)}")
        from pipeline.media import MediaError, check_post

        for i, refs in enumerate(media, start=1):
            try:
                check_post(refs, "the post" if len(clean) == 1 else f"part {i}")
            except MediaError as exc:
                raise ContentError(str(exc)) from None
        per_part = tuple(tuple(refs) for refs in media)
    return Draft(account=handle, parts=clean, kind=kind, reply_to=reply_to, topic=topic, format=format,
                 media=per_part)
