"""The chaos harness: its checker on constructed histories (it must see what it claims to see), its gate, its
fault schedule, and its process kills and operator on real processes and a real sandbox. The real run (200
items under every fault kind, judged by the sandbox's ground truth) is `make chaos`, which `make test` runs after
this suite."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from bench.chaos_check import check as check_against_plan
from bench.chaos_check import failures_of
from bench.chaos_plan import ChaosConfig, expected, make_plan, scaled, write_plan_media


def check(items: list[dict[str, Any]], truth: list[dict[str, Any]], plan: list[dict[str, Any]] | None = None) -> Any:
    """The checker with the plan the items were made from (the harness's own record)."""
    plan = plan if plan is not None else [{"id": i["id"], "account": i["account"], "parts": i["parts"]} for i in items]
    return check_against_plan(plan, items, truth)


def tweet(tid: int, account: str, text: str, in_reply_to: int | None = None) -> dict[str, Any]:
    return {"id": str(tid), "account": account, "text": text,
            "in_reply_to": None if in_reply_to is None else str(in_reply_to)}


def item(iid: int, parts: list[str], state: str = "posted", ids: list[int] | None = None,
         account: str = "a", reason: str | None = None) -> dict[str, Any]:
    return {"id": iid, "account": account, "parts": parts, "state": state,
            "tweet_ids": [str(i) for i in (ids or [])], "reason": reason}


def clean_history() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    items = [item(1, ["one"], ids=[10]), item(2, ["two, part 1", "two, part 2"], ids=[11, 12]),
             item(3, ["three"], state="failed", reason="X rejected part 1: too long")]
    items[2]["error_class"] = "rejected"
    truth = [tweet(10, "a", "one"), tweet(11, "a", "two, part 1"), tweet(12, "a", "two, part 2", in_reply_to=11)]
    return items, truth


GATED = ("duplicates", "lost", "false_failures", "missing_tweet_ids", "unexpected", "unknown_left", "broken_threads")


def counts(items: list[dict[str, Any]], truth: list[dict[str, Any]]) -> dict[str, int]:
    v = check(items, truth)
    return {k: getattr(v, k) for k in GATED}


ZERO = dict.fromkeys(GATED, 0)


def test_a_clean_history_has_no_anomalies() -> None:
    assert counts(*clean_history()) == ZERO


def test_planted_duplicate_is_found_even_with_other_whitespace() -> None:
    items, truth = clean_history()
    truth.append(tweet(13, "a", "  one  "))  # the platform folds whitespace: the same post again
    v = check(items, truth)
    assert v.duplicates == 1 and v.details["duplicate_copies"] == 1 and v.details["duplicated_texts"][0]["tweet_ids"] == ["10", "13"]
    assert v.unexpected == 0  # a duplicate is explained by its item; it is not "unexpected"


def test_same_text_on_two_accounts_is_not_a_duplicate() -> None:
    items, truth = clean_history()
    items.append(item(4, ["one"], account="b", ids=[20]))
    truth.append(tweet(20, "b", "one"))
    assert counts(items, truth) == ZERO


def test_planted_loss_is_found_by_id_set_even_when_counts_balance() -> None:
    # Item 2 posted twice, item 4 never: the tweet count matches the expected count, the id sets do not.
    items, truth = clean_history()
    items = [*items[:2], item(4, ["four"], state="queued")]
    truth.append(tweet(13, "a", "two, part 1"))
    v = check(items, truth)
    assert v.details["tweets_on_platform"] == v.details["tweets_expected"] == 4  # counts alone look fine
    assert v.duplicates == 1 and v.lost == 1 and v.details["lost_ids"] == [4]


def test_acknowledged_but_absent_is_lost_and_its_id_is_wrong() -> None:
    items, truth = clean_history()
    items.append(item(4, ["four"], ids=[99]))  # recorded posted, the platform has no such post
    c = counts(items, truth)
    assert c["lost"] == 1 and c["missing_tweet_ids"] == 1


def test_terminal_with_a_reason_is_not_lost_but_without_one_it_is() -> None:
    items, truth = clean_history()
    items.append(item(4, ["four"], state="cancelled", reason="operator cancel"))
    items.append(item(5, ["five"], state="failed", reason=None))
    v = check(items, truth)
    assert v.lost == 1 and v.details["lost_ids"] == [5]


def test_planted_false_failure_is_found() -> None:
    items, truth = clean_history()
    truth.append(tweet(13, "a", "three"))  # "failed", yet X has it
    c = counts(items, truth)
    assert c["false_failures"] == 1 and c["lost"] == 0 and c["unexpected"] == 0


def test_missing_and_wrong_tweet_ids_are_found() -> None:
    items, truth = clean_history()
    items[0]["tweet_ids"] = []  # posted without its id
    items[1]["tweet_ids"] = ["12", "11"]  # ids swapped between parts
    items.append(item(4, ["four"], state="queued"))  # on X, the database does not know: no id either
    truth.append(tweet(14, "a", "four"))
    v = check(items, truth)
    assert v.missing_tweet_ids == 3 and v.details["missing_tweet_ids_ids"] == [1, 2, 4]
    assert v.lost == 0  # item 4 is on the platform: not lost, but its id is missing


def test_unexpected_posts_and_unclear_items_are_counted() -> None:
    items, truth = clean_history()
    truth.append(tweet(30, "a", "nobody asked for this"))
    items.append(item(4, ["four"], state="unknown"))
    items.append(item(5, ["five"], state="needs_review", reason="timeline unreadable"))
    truth.append(tweet(31, "a", "four"))
    c = counts(items, truth)
    assert c["unexpected"] == 1 and c["unknown_left"] == 2 and c["lost"] == 0
    assert c["false_failures"] == 1  # needs_review without a content rejection counts against us


def test_giving_up_without_a_content_rejection_is_a_false_failure() -> None:
    items, truth = clean_history()
    items.append(item(4, ["four"], state="failed", reason="8 transient failures"))
    items.append(item(5, ["five"], state="failed", reason="X rejected it", account="a"))
    items[-1]["error_class"] = "rejected"
    v = check(items, truth)
    assert v.false_failures == 1 and v.details["false_failures_ids"] == [4]


def test_expected_items_come_from_the_plan_not_the_database() -> None:
    items, truth = clean_history()
    plan = [{"id": i["id"], "account": i["account"], "parts": i["parts"]} for i in items]
    plan.append({"id": 4, "account": "a", "parts": ["four"]})  # planned, but the database never got it
    v = check(items, truth, plan)
    assert v.lost == 1 and v.details["absent_from_database_ids"] == [4] and v.posts == 4
    items.append(item(9, ["stray"], state="posted", ids=[40]))  # a row nobody planned does not explain a post
    truth.append(tweet(40, "a", "stray"))
    v = check(items, truth, plan)
    assert v.unexpected == 1 and v.details["items_in_database_not_planned"] == [9]


def test_broken_thread_chain_is_gated_with_or_without_recorded_ids() -> None:
    items, truth = clean_history()
    truth[2]["in_reply_to"] = None  # part 2 posted, but not as a reply to part 1
    v = check(items, truth)
    assert v.broken_threads == 1 and v.details["broken_threads_ids"] == [2]
    items[1]["tweet_ids"] = []  # ids lost: the chain is judged from the platform alone
    assert check(items, truth).broken_threads == 1
    truth[2]["in_reply_to"] = "11"
    assert check(items, truth).broken_threads == 0
    assert failures_of({**ZERO, "broken_threads": 1, "max_connections": 1}, PROVING)[0] == "broken_threads=1"


def test_a_text_altered_on_the_way_fails_the_gate() -> None:
    items, truth = clean_history()
    items.append(item(4, ["four\n\nlines"], ids=[14]))
    truth.append(tweet(14, "a", "four lines"))  # the same post to the platform's eye, but the breaks are gone
    v = check(items, truth)
    assert v.details["texts_altered_ids"] == [4] and v.duplicates == 0 and v.lost == 0
    assert "texts_altered=1" in failures_of({**ZERO, "texts_altered": 1, "max_connections": 1}, PROVING)


PROVING = {"connection_bound": 45, "quiet": True, "post_ops_faulted_share_while_faults_on": 0.4,
           "faults_by_kind": {"cut_after_post_long": 1, "sigkill": 3}}


def test_check_failures_name_every_problem() -> None:
    metrics = {**ZERO, "duplicates": 1, "false_failures": 2, "max_connections": 50}
    assert failures_of(metrics, {**PROVING, "quiet": False}) == [
        "duplicates=1", "false_failures=2", "max_connections=50 > bound 45", "queue not quiet before the limit"]


def test_a_run_with_too_few_faults_fails_as_not_proving_anything() -> None:
    metrics = {**ZERO, "max_connections": 1}
    assert failures_of(metrics, PROVING) == []
    gentle = {**PROVING, "post_ops_faulted_share_while_faults_on": 0.29, "faults_by_kind": {"sigkill": 2}}
    assert failures_of(metrics, gentle) == [
        "not proving anything: only 29% of CreateTweet requests faulted while faults were on (< 30%)",
        "not proving anything: no long database cut (past the confirm retries)",
        "not proving anything: only 2 workers killed (< 3)"]


def test_plan_is_seeded_and_texts_are_unique_per_account() -> None:
    cfg = ChaosConfig(posts=50, seed=3, accounts=3)
    plan = make_plan(cfg)
    assert plan == make_plan(ChaosConfig(posts=50, seed=3, accounts=3))
    keys = [(p.account, part) for p in plan for part in p.parts]
    assert len(keys) == len(set(keys))
    assert any(p.offset_s is None for p in plan) and any(len(p.parts) > 1 for p in plan)
    stall = cfg.sandbox_faults["post_commit_stall"]["p"]
    assert scaled(cfg, 0).sandbox_faults["post_commit_stall"]["p"] == 0
    assert scaled(cfg, 2).sandbox_faults["post_commit_stall"]["p"] == min(1.0, 2 * stall)
    texts = "".join(part for p in plan for part in p.parts)
    for mark in ("\n", "https://", "@chaos_friend", "\U0001F680"):
        assert mark in texts, mark


def test_plan_mixes_media_into_at_least_a_fifth_of_the_items_without_changing_texts(tmp_path: Path) -> None:
    from bench.chaos_plan import write_media

    plan = make_plan(ChaosConfig(posts=200, seed=7))
    with_media = [p for p in plan if any(p.media)]
    assert len(with_media) >= 0.2 * len(plan)
    assert {m["kind"] for p in with_media for part in p.media for m in part} == {"image", "gif", "video"}
    assert [p.parts for p in plan] == [p.parts for p in make_plan(ChaosConfig(posts=200, seed=7, media_share=0))]
    item = next(p for p in with_media if p.media[0] or p.media[-1])
    first, again = write_media(item, tmp_path / "a"), write_media(item, tmp_path / "b")
    assert [[(f.read_bytes(), alt) for f, alt in part] for part in first] == [
        [(f.read_bytes(), alt) for f, alt in part] for part in again]
    assert sum(len(part) for part in first) == sum(len(part) for part in item.media) >= 1


def test_a_gated_figure_missing_from_the_metrics_is_read_from_the_details() -> None:
    """Results written before texts_altered was a metric kept it only in the details: it still fails the gate."""
    assert failures_of({**ZERO, "max_connections": 1}, {**PROVING, "texts_altered": 2}) == ["texts_altered=2"]
    assert failures_of({**ZERO, "media_wrong": 1, "max_connections": 1}, PROVING) == ["media_wrong=1"]


def test_media_are_judged_per_live_copy_against_the_plan() -> None:
    items, truth = clean_history()
    plan = [{"id": i["id"], "account": i["account"], "parts": i["parts"]} for i in items]
    plan[0]["media"] = [[{"sha256": "a" * 64, "alt": "caf\u00e9"}]]
    truth[0]["media"] = [{"sha256": "a" * 64, "alt": "cafe\u0301"}]  # the same alt text, decomposed
    v = check_against_plan(plan, items, truth)
    assert (v.media_wrong, v.media_posts, v.texts_altered) == (0, 1, 0)
    truth[0]["media"] = [{"sha256": "b" * 64, "alt": "caf\u00e9"}]
    assert check_against_plan(plan, items, truth).details["media_wrong_ids"] == [1]
    truth[0]["media"] = []
    assert check_against_plan(plan, items, truth).media_wrong == 1  # missing media
    truth[1]["media"] = [{"sha256": "c" * 64, "alt": None}]  # media where none were planned
    assert check_against_plan(plan, items, truth).details["media_wrong_ids"] == [1, 2]


def test_expected_media_are_the_hashes_of_the_files_written_and_never_skipped(tmp_path: Path) -> None:
    plan = [p for p in make_plan(ChaosConfig(posts=40, seed=7)) if any(p.media)][:2]
    with pytest.raises(KeyError):  # media planned but no files: refused, not judged as "no media"
        expected(plan)
    files = write_plan_media(plan, tmp_path)
    for entry, item in zip(expected(plan, files), plan, strict=True):
        assert entry["media"] == [[{"sha256": hashlib.sha256(f.read_bytes()).hexdigest(), "alt": alt}
                                   for f, alt in part] for part in files[item.key]]
        assert [len(part) for part in entry["media"]] == [len(part) for part in item.media]
