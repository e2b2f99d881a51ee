"""The chaos harness's Jepsen-style checker and its gate: judged from the harness's own plan and the sandbox's
ground truth, never from what the side under test wrote about itself."""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TERMINAL_WITH_REASON = ("failed", "cancelled", "needs_review")
GIVEN_UP = ("failed", "needs_review")
UNCLEAR = ("unknown", "needs_review")
NOT_QUIET = ("queued", "claimed", "posting", "unknown", "pending")
CONTENT_REJECTED = "rejected"  # pipeline.failures.ErrorClass.REJECTED: X refused the text itself
ABSENT = "absent_from_database"  # a planned item the side's database does not have at all
# Below these a run "does not prove anything" and --check fails it (issue 12).
MIN_FAULTED_SHARE = 0.30
MIN_KILLS = 3
GATED = ("duplicates", "lost", "false_failures", "missing_tweet_ids", "unexpected", "unknown_left",
         "broken_threads", "texts_altered", "media_wrong")


def norm(text: str) -> str:
    """How the platform compares texts: the sandbox's own rule, so the checker and X's stand-in never disagree."""
    from sandbox.x_rules import normalise

    return normalise(text)


def media_of(entries: Iterable[dict[str, Any]] | None) -> list[tuple[str, str | None]]:
    """A post's media as the checker compares them: (SHA-256, alt text) in attach order; no alt and an empty alt
    are the same (X shows neither), alt texts compared as X keeps them (NFC)."""
    return [(str(m["sha256"]), exact(m["alt"]) if m.get("alt") else None) for m in entries or []]


def exact(text: str) -> str:
    """What the user wrote as X keeps it (NFC, outer spaces trimmed): line breaks and inner spacing count."""
    return unicodedata.normalize("NFC", text).strip()


@dataclass
class Verdict:
    posts: int = 0
    duplicates: int = 0
    lost: int = 0
    false_failures: int = 0
    missing_tweet_ids: int = 0
    unexpected: int = 0
    unknown_left: int = 0
    broken_threads: int = 0
    texts_altered: int = 0
    media_wrong: int = 0
    media_posts: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def _chain_ok(keys: list[tuple[str, str]], recorded: list[str], right_ids: bool,
              copies: dict[tuple[str, str], list[str]], by_id: dict[str, dict[str, Any]]) -> bool:
    """Every part after the first replies to the part before it, on the platform. With the recorded ids right,
    those exact posts must chain; otherwise some copy of each part must reply to some copy of the one before."""
    if right_ids and len(recorded) == len(keys):
        return all(str(by_id[recorded[i]].get("in_reply_to")) == recorded[i - 1] for i in range(1, len(keys)))
    return all(any(str(by_id[t].get("in_reply_to")) in copies[keys[i - 1]] for t in copies[keys[i]])
               for i in range(1, len(keys)))


def check(plan: list[dict[str, Any]], items: list[dict[str, Any]], truth: list[dict[str, Any]],
          sample: int = 20) -> Verdict:
    """Jepsen-style verdict from id sets.

    `plan`: what the harness asked for ({id, account, parts, media}), the only source of what is expected; `items`: the
    side's database ({id, state, tweet_ids (by part), reason, error_class}); `truth`: the sandbox's tweets
    ({id, account, text, in_reply_to, media}). Elements are (account, normalised text) keys; an item is present when
    every part's key is on the platform.
    - duplicates: keys present more than once; `duplicate_copies` counts the extras
    - lost: planned items not present and not given up with a reason (a planned item missing from the database,
      and one recorded `posted` that the platform lacks, are lost)
    - false_failures: items `failed` or `needs_review` without a content rejection, and `failed` items with any
      part on the platform
    - missing_tweet_ids: items present (or recorded posted) without one right recorded id per part
    - unexpected: platform tweets whose key no planned item explains
    - unknown_left: items in unknown / needs_review
    - broken_threads: present threads whose parts do not reply to the part before on the platform
    - texts_altered: present items with a part live only in another form than written (line breaks folded...)
    - media_wrong: items with a live copy of a part whose media (hashes, order, alt texts) differ from what was
      enqueued, missing media included; `plan` media per part is [{sha256, alt}] (no key: no media anywhere)
    - media_posts: live posts with media (how much of the run exercised media at all)
    """
    by_id = {str(t["id"]): t for t in truth}
    copies: dict[tuple[str, str], list[str]] = {}
    for t in truth:
        copies.setdefault((t["account"], norm(t["text"])), []).append(str(t["id"]))
    exact_texts = {(t["account"], exact(t["text"])) for t in truth}
    recorded_items = {i["id"]: i for i in items}
    explained: set[tuple[str, str]] = set()
    names = ("lost", "false_failures", "missing_tweet_ids", "unknown_left", "present", "recorded_posted",
             "broken_threads", "terminal", "not_quiet", "texts_altered", "absent_from_database", "media_wrong")
    ids: dict[str, set[Any]] = {name: set() for name in names}
    for planned in plan:
        key_id = planned["id"]
        item = recorded_items.get(key_id) or {"state": ABSENT, "tweet_ids": [], "reason": None}
        keys = [(planned["account"], norm(p)) for p in planned["parts"]]
        explained.update(keys)
        wanted = planned.get("media") or [[] for _ in keys]
        if any(media_of(by_id[t].get("media")) != media_of(wanted[i] if i < len(wanted) else [])
               for i, k in enumerate(keys) for t in copies.get(k, [])):
            ids["media_wrong"].add(key_id)
        present = all(k in copies for k in keys)
        any_present = any(k in copies for k in keys)
        state = item["state"]
        recorded = [str(t) for t in (item.get("tweet_ids") or [])]
        if state == ABSENT:
            ids["absent_from_database"].add(key_id)
        if present:
            ids["present"].add(key_id)
            if any((planned["account"], exact(p)) not in exact_texts for p in planned["parts"]):
                ids["texts_altered"].add(key_id)
        if state == "posted":
            ids["recorded_posted"].add(key_id)
        terminal = state in TERMINAL_WITH_REASON and bool(item.get("reason"))
        if terminal:
            ids["terminal"].add(key_id)
        if not present and not terminal:
            ids["lost"].add(key_id)
        rejected = item.get("error_class") == CONTENT_REJECTED
        if (state in GIVEN_UP and not rejected) or (state == "failed" and any_present):
            ids["false_failures"].add(key_id)
        wrong = any(t not in by_id or (by_id[t]["account"], norm(by_id[t]["text"])) != keys[i]
                    for i, t in enumerate(recorded[: len(keys)])) or len(recorded) > len(keys)
        if wrong or ((present or state == "posted") and len(recorded) < len(keys)):
            ids["missing_tweet_ids"].add(key_id)
        if state in UNCLEAR:
            ids["unknown_left"].add(key_id)
        if state in NOT_QUIET:
            ids["not_quiet"].add(key_id)
        if present and len(keys) > 1 and not _chain_ok(keys, recorded, not wrong, copies, by_id):
            ids["broken_threads"].add(key_id)
    planned_ids = {p["id"] for p in plan}
    duplicated = {k: v for k, v in copies.items() if len(v) > 1}
    unexpected = [tid for k, v in copies.items() if k not in explained for tid in v]

    def show(values: Iterable[Any]) -> list[Any]:
        return sorted(values, key=str)[:sample]

    details = {
        "items": len(plan),
        "tweets_on_platform": len(truth),
        "tweets_expected": sum(len(p["parts"]) for p in plan),
        "duplicate_copies": sum(len(v) - 1 for v in duplicated.values()),
        "duplicated_texts": [{"account": k[0], "text": k[1][:80], "tweet_ids": v}
                             for k, v in list(duplicated.items())[:sample]],
        "unexpected_tweet_ids": show(unexpected),
        "states": dict(Counter(recorded_items.get(p["id"], {"state": ABSENT})["state"] for p in plan)),
        "items_in_database_not_planned": show(set(recorded_items) - planned_ids),
        "present_but_not_recorded_posted": show(ids["present"] - ids["recorded_posted"]),
        "recorded_posted_but_absent": show(ids["recorded_posted"] - ids["present"]),
        "terminal_not_on_platform": len(ids["terminal"] - ids["present"]),
        "never_present": show(planned_ids - ids["present"]),
        "not_quiet": len(ids["not_quiet"]),
        # Live, but not exactly as written (line breaks folded, ...): gated since the pipeline keeps texts exactly.
        "texts_altered": len(ids["texts_altered"]),
        # Live with other media than enqueued (another file, a missing one, another alt text): gated.
        "media_wrong": len(ids["media_wrong"]),
        "items_with_media": sum(1 for p in plan if any(p.get("media") or [])),
        **{f"{name}_ids": show(ids[name]) for name in (
            "lost", "false_failures", "missing_tweet_ids", "unknown_left", "broken_threads", "texts_altered",
            "absent_from_database", "media_wrong")},
    }
    return Verdict(posts=len(plan), duplicates=len(duplicated), lost=len(ids["lost"]),
                   false_failures=len(ids["false_failures"]), missing_tweet_ids=len(ids["missing_tweet_ids"]),
                   unexpected=len(unexpected), unknown_left=len(ids["unknown_left"]),
                   broken_threads=len(ids["broken_threads"]), texts_altered=len(ids["texts_altered"]),
                   media_wrong=len(ids["media_wrong"]), media_posts=sum(1 for t in truth if t.get("media")),
                   details=details)


def failures_of(metrics: dict[str, Any], details: dict[str, Any]) -> list[str]:
    """What --check rejects on the pipeline side: any anomaly, and a run too gentle to prove anything."""
    # a gated figure a side's metrics lack (results from before it was a metric) is read from its details
    bad = [f"{k}={metrics.get(k, details.get(k))}" for k in GATED if metrics.get(k, details.get(k))]
    if metrics["max_connections"] > details.get("connection_bound", math.inf):
        bad.append(f"max_connections={metrics['max_connections']} > bound {details['connection_bound']}")
    if not details.get("quiet", True):
        bad.append("queue not quiet before the limit")
    bad += too_gentle(details)
    return bad


def too_gentle(details: dict[str, Any]) -> list[str]:
    """A run with too few faults passes trivially: name what it lacked."""
    faults = details.get("faults_by_kind", {})
    share = details.get("post_ops_faulted_share_while_faults_on", 0.0)
    kills = faults.get("sigkill", 0)
    weak = []
    if share < MIN_FAULTED_SHARE:
        weak.append(f"only {share:.0%} of CreateTweet requests faulted while faults were on "
                    f"(< {MIN_FAULTED_SHARE:.0%})")
    if not faults.get("cut_after_post_long"):
        weak.append("no long database cut (past the confirm retries)")
    if kills < MIN_KILLS:
        weak.append(f"only {kills} workers killed (< {MIN_KILLS})")
    return [f"not proving anything: {w}" for w in weak]
