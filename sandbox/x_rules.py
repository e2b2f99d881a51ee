"""What X answers and how it judges a post: error bodies by code, the duplicate rule's comparison, the weighted
length, and the shape of a CreateTweet answer inside the sandbox (`PostResult`)."""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twitter_text import parse_tweet

MAX_WEIGHTED_LENGTH = 280
_SPACE = re.compile(r"\s+")

# X's error messages (GraphQL body shape) by code.
MESSAGES = {
    32: "Could not authenticate you.",
    88: "Rate limit exceeded.",
    130: "Over capacity",
    170: "Missing required parameter: tweet_text.",
    186: "Authorization: Tweet needs to be a bit shorter. (186)",
    187: "Authorization: Status is a duplicate. (187)",
    226: (
        "Authorization: This request looks like it might be automated. To protect our users from spam and other "
        "malicious activity, we can't complete this action right now. Please try again later. (226)"
    ),
    353: "This request requires a matching csrf cookie and header.",
    385: "Authorization: You attempted to reply to a Tweet that is deleted or not visible to you. (385)",
}
_KINDS = {186: "Permissions", 187: "Permissions", 226: "Permissions", 385: "Permissions", 170: "Validation"}


def error_body(code: int, message: str | None = None) -> dict[str, Any]:
    msg = message or MESSAGES.get(code, "Something went wrong.")
    err: dict[str, Any] = {"message": msg, "code": code}
    if code in _KINDS:
        ext = {
            "name": "AuthorizationError" if _KINDS[code] == "Permissions" else "BadRequest",
            "source": "Client",
            "code": code,
            "kind": _KINDS[code],
            "tracing": {"trace_id": secrets.token_hex(8)},
        }
        err = {"message": msg, "locations": [{"line": 18, "column": 3}], "path": ["create_tweet"],
               "extensions": ext, **ext}  # fmt: skip
        return {"errors": [err], "data": {}}
    return {"errors": [err]}


def normalise(text: str) -> str:
    """How the duplicate rule compares texts: NFC, whitespace folded, trimmed (case-sensitive)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def weighted_length(text: str) -> int:
    return parse_tweet(text).weightedLength if text else 0


@dataclass
class PostResult:
    """What CreateTweet answers. `stall_s` holds the response after storing (math.inf: until disconnect/stop);
    `raw` (with `content_type`) replaces the JSON body, e.g. an edge's HTML 502 page or an empty 403."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float | None = None
    tweet: dict[str, Any] | None = None
    raw: str | None = None
    content_type: str = "application/json"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def x_created_at(ts: float) -> str:
    """X's legacy created_at format: 'Wed Oct 10 20:19:24 +0000 2018'."""
    return datetime.fromtimestamp(ts, UTC).strftime("%a %b %d %H:%M:%S +0000 %Y")
