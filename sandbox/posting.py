"""CreateTweet inside the sandbox: rate blocks, faults before storing, X's rules, the store, faults after storing.

Called by `Store.post` with the store's lock held. What was stored is the ground truth (`Store.tweets`), whatever
the response says: a fault after storing never undoes the row.
"""

from __future__ import annotations

import math
import unicodedata
from typing import TYPE_CHECKING, Any

from sandbox.faults import FAULTS
from sandbox.media import check_media_ids
from sandbox.tweet_json import create_tweet_body
from sandbox.x_rules import PostResult, error_body, normalise, weighted_length

if TYPE_CHECKING:
    from sandbox.state import Store

EDGE_PAGE = (
    "<!DOCTYPE html><html><head><title>{status} {reason}</title></head><body><center><h1>{status} {reason}</h1>"
    "</center><hr><center>envoy</center></body></html>"
)
REASONS = {502: "Bad Gateway", 504: "Gateway Timeout"}
LOAD_SHED = {"errors": [{"message": "LoadShed: Unspecified", "code": -1, "kind": "Operational",
                         "name": "OperationalError", "source": "Server"}]}  # fmt: skip
TIMEOUT_29 = {"errors": [{"message": "Timeout: Unspecified", "code": 29, "kind": "Operational",
                          "name": "TimeoutError", "source": "Server"}], "data": {}}  # fmt: skip


def _limited(store: Store, handle: str, now: float) -> PostResult | None:
    row = store._db.execute("SELECT until FROM rate_blocks WHERE handle = ?", (handle,)).fetchone()
    if row is not None and row["until"] > now:
        return _rate_limited(store, row["until"], 0)
    for window, rule in ((3 * 3600.0, "posts_per_3h"), (86400.0, "posts_per_day")):
        limit = int(store.rules[rule])
        if limit <= 0:
            continue
        rows = store._db.execute(
            "SELECT created_at FROM tweets WHERE account = ? AND created_at > ? ORDER BY created_at DESC LIMIT ?",
            (handle, now - window, limit),
        ).fetchall()
        if len(rows) >= limit:
            # the window frees a slot when the limit-th most recent post leaves it
            return _rate_limited(store, rows[-1]["created_at"] + window, limit)
    return None


def _rate_limited(store: Store, until_sandbox: float, limit: int) -> PostResult:
    reset_epoch = math.ceil(
        until_sandbox - store.clock_offset_s
    )  # real epoch seconds, what a client compares
    headers = {"x-rate-limit-reset": str(reset_epoch), "x-rate-limit-limit": str(limit),
               "x-rate-limit-remaining": "0"}  # fmt: skip
    return PostResult(429, error_body(88), headers)


def _split_fault(store: Store, name: str, handle: str) -> str | None:
    """For faults that strike before or after storing: None, "before" or "after"."""
    cfg = store.faults.roll(name, handle)
    if cfg is None:
        return None
    after_store_p = float(cfg.get("after_store_p", FAULTS[name]["after_store_p"]))  # params from outside may omit it
    return "after" if store.faults.draw(name) < after_store_p else "before"


def post(store: Store, handle: str, text: Any, reply_to: Any, media: Any = None) -> PostResult:
    now = store.now()
    limited = _limited(store, handle, now)
    if limited is not None:
        return limited
    faults = store.faults
    if faults.roll("session_expired", handle):
        store._db.execute("UPDATE sessions SET valid = 0 WHERE handle = ?", (handle,))
        return PostResult(401, error_body(32))
    if faults.roll("bare_403", handle):
        return PostResult(403, {}, raw="", content_type="text/plain")
    if faults.roll("automation_block", handle):
        return PostResult(200, error_body(226))
    rl = faults.roll("rate_limit", handle)
    if rl:
        until = now + float(rl["reset_s"])
        with store._tx():
            store._db.execute(
                "INSERT INTO rate_blocks (handle, until) VALUES (?, ?) "
                "ON CONFLICT (handle) DO UPDATE SET until = excluded.until",
                (handle, until),
            )
        return _rate_limited(store, until, 0)
    if faults.roll("post_error_5xx", handle):
        return PostResult(503, error_body(130))
    if faults.roll("silent_drop", handle):
        return PostResult(200, create_tweet_body(None))
    shed = _split_fault(store, "load_shed", handle)
    if shed == "before":
        return PostResult(200, LOAD_SHED)
    timeout = _split_fault(store, "timeout_29", handle)
    if timeout == "before":
        return PostResult(200, TIMEOUT_29)

    media_ids = check_media_ids(store.uploads, handle, media)
    if isinstance(media_ids, PostResult):
        return media_ids
    if not isinstance(text, str) or not (text.strip() or media_ids):
        return PostResult(200, error_body(170))
    text = unicodedata.normalize("NFC", text).strip()
    if weighted_length(text) > int(store.rules["max_weighted_length"]):
        return PostResult(200, error_body(186))
    conversation_id = None
    if reply_to is not None and reply_to != "":
        reply_to = str(reply_to)
        target = None
        if reply_to.isdigit():
            target = store._db.execute(
                "SELECT t.conversation_id FROM tweets t LEFT JOIN tweet_flags f ON f.id = t.id "
                "WHERE t.id = ? AND f.deleted_at IS NULL",
                (reply_to,),
            ).fetchone()
        if target is None:
            return PostResult(200, error_body(385))
        conversation_id = target["conversation_id"]
    else:
        reply_to = None
    norm = normalise(text)
    window_h = float(store.rules["duplicate_window_hours"])
    if window_h > 0:
        dup = store._db.execute(
            "SELECT 1 FROM tweets WHERE account = ? AND norm = ? AND created_at > ? LIMIT 1",
            (handle, norm, now - window_h * 3600.0),
        ).fetchone()
        if dup is not None:
            return PostResult(200, error_body(187))

    wrapped = faults.roll("wrapped_result", handle) is not None
    lag = faults.roll("timeline_lag", handle)
    id_num = store._next_id(now)
    tweet_id = str(id_num)
    with store._tx():
        store._db.execute(
            "INSERT INTO tweets (id, id_num, account, text, norm, in_reply_to, conversation_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tweet_id, id_num, handle, text, norm, reply_to, conversation_id or tweet_id, now),
        )
        if wrapped or lag:
            store._db.execute(
                "INSERT INTO tweet_flags (id, visible_at, wrapped) VALUES (?, ?, ?)",
                (tweet_id, now + float(lag["seconds"]) if lag else 0.0, int(wrapped)),
            )
        store.uploads.attach(tweet_id, media_ids)
        store._set_meta("last_id", str(id_num))
    tweet = store.tweet(tweet_id)
    assert tweet is not None
    after_5xx = faults.roll("post_5xx_after_store", handle)
    stall = faults.roll("post_commit_stall", handle)
    stall_s = float(stall["seconds"]) if stall else None
    if after_5xx:
        status = 502 if id_num % 2 else 504
        page = EDGE_PAGE.format(status=status, reason=REASONS[status])
        return PostResult(status, {}, stall_s=stall_s, tweet=tweet, raw=page, content_type="text/html")
    if shed == "after":
        return PostResult(200, LOAD_SHED, stall_s=stall_s, tweet=tweet)
    if timeout == "after":
        return PostResult(200, TIMEOUT_29, stall_s=stall_s, tweet=tweet)
    return PostResult(200, create_tweet_body(tweet, wrapped), stall_s=stall_s, tweet=tweet)
