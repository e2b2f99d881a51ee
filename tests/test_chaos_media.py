"""The chaos harness with media, on a real sandbox and real Chromium: both sides enqueue and post the plan's
media, and the checker flags a live post whose media differ from what was enqueued (another file, a missing
one, another alt text), judged by the sandbox's ground truth (hashes and alt texts X received)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench import naive
from bench.chaos_check import check, failures_of
from bench.chaos_plan import ChaosConfig, PlanItem, expected, write_plan_media
from bench.chaos_side import PipelineRunner
from pipeline import queue
from pipeline.browser import BrowserSession, write_secret_file
from pipeline.media import MediaRef, probe, verify
from pipeline.xweb import XWebClient
from sandbox.client import SandboxAdmin
from tests.fixtures_world import World, make_world

IMAGES = [{"kind": "image", "seed": 11, "alt": "chaos #1 image 0"}, {"kind": "image", "seed": 12, "alt": None}]
GIF = [{"kind": "gif", "seed": 21, "alt": "chaos #2 gif 0"}]


def small_plan(account: str = "alice") -> list[PlanItem]:
    """A thread with two images on its second part, a single with a GIF, a text-only single with line breaks."""
    return [
        PlanItem(1, account, ["media thread 1/2: queue lease", "media thread 2/2: breaker\n\n- first\n- second"], None,
                 [[], IMAGES]),
        PlanItem(2, account, ["media single with a gif \U0001F680"], None, [GIF]),
        PlanItem(3, account, ["text only\nwith a break"], None, []),
    ]


def items_of(engine: sa.Engine, keys: dict[int, int]) -> list[dict[str, Any]]:
    """The side's database as the checker reads it (what SideRunner.snapshot gives, on any dialect)."""
    out = []
    for item_id, key in keys.items():
        it = queue.get_item(engine, item_id)
        out.append({"id": key, "account": it.account, "parts": it.parts, "state": it.state,
                    "tweet_ids": it.tweet_ids, "reason": None})
    return out


def test_the_pipeline_side_enqueues_the_plan_media_and_posts_them_exactly(
        sandbox: SandboxAdmin, sqlite_url: str, tmp_path: Path, browser_session: BrowserSession) -> None:
    world: World = make_world(sandbox, sqlite_url, tmp_path / "state", browser_session)
    plan = small_plan()
    runner = PipelineRunner(ChaosConfig(posts=len(plan), accounts=1), plan, tmp_path / "work", log=lambda _: None)
    runner.engine, runner.state_dir = world.engine, world.state_dir
    runner.write_media()
    runner.enqueue()
    want = expected(plan, runner.media_files)
    for item_id, key in runner.item_keys.items():
        item = queue.get_item(world.engine, item_id)
        planned = next(p for p in want if p["id"] == key)
        got = [[{"sha256": r.sha256, "alt": r.alt} for r in item.part_media(i)] for i in range(len(item.parts))]
        assert got == planned.get("media", [[] for _ in item.parts])
        assert all(verify(world.state_dir, r) is None for part in item.media for r in part)  # in the store
    for _ in range(4):
        world.post()
        if all(queue.get_item(world.engine, i).state == "posted" for i in runner.item_keys):
            break
    verdict = check(want, items_of(world.engine, runner.item_keys), world.truth())
    assert (verdict.lost, verdict.duplicates, verdict.missing_tweet_ids) == (0, 0, 0)
    assert verdict.media_wrong == 0 and verdict.texts_altered == 0  # media posts do not read as altered texts
    assert verdict.media_posts == 2


@pytest.fixture
def client(sandbox: SandboxAdmin, browser_session: BrowserSession, tmp_path: Path) -> XWebClient:
    session = write_secret_file(tmp_path / "alice.json", sandbox.create_account("alice"))
    browser_session.reset_account("alice")
    page = browser_session.page("alice", session)
    return XWebClient(page, sandbox.url, "alice", nav_timeout_s=10, post_timeout_s=5, media_timeout_s=15)


def refs(files: list[tuple[Path, str | None]]) -> list[tuple[Path, MediaRef]]:
    return [(path, MediaRef(**{**probe(path).as_json(), "alt": alt})) for path, alt in files]


def test_a_live_post_with_other_media_than_enqueued_is_flagged_and_fails_the_gate(
        client: XWebClient, sandbox: SandboxAdmin, tmp_path: Path) -> None:
    sandbox.set_rules(duplicate_window_hours=0)
    plan = [*small_plan(), PlanItem(4, "alice", ["an image with a lost alt text"], None, [IMAGES[:1]]),
            PlanItem(5, "alice", ["the right image"], None, [IMAGES[:1]])]
    files = write_plan_media(plan, tmp_path / "media")
    other = write_plan_media([PlanItem(9, "alice", ["x"], None, [[{"kind": "image", "seed": 99, "alt": None}]])],
                             tmp_path / "other")[9][0]
    posted: dict[int, list[str]] = {}
    first = client.post(plan[0].parts[0])
    # 1: the second part went live with its first image swapped for another file
    swapped = [(other[0][0], files[1][1][0][1]), files[1][1][1]]
    posted[1] = [first, client.post(plan[0].parts[1], in_reply_to=first, media=refs(swapped))]
    posted[2] = [client.post(plan[1].parts[0])]  # 2: the GIF is missing
    posted[3] = [client.post(plan[2].parts[0])]  # 3: text only, as planned
    posted[4] = [client.post(plan[3].parts[0], media=refs([(files[4][0][0][0], None)]))]  # 4: alt text lost
    posted[5] = [client.post(plan[4].parts[0], media=refs(files[5][0]))]  # 5: exactly as planned
    items = [{"id": p.key, "account": "alice", "parts": p.parts, "state": "posted", "tweet_ids": posted[p.key],
              "reason": None} for p in plan]
    verdict = check(expected(plan, files), items, sandbox.tweets())
    assert verdict.details["media_wrong_ids"] == [1, 2, 4]
    assert verdict.media_wrong == 3 and verdict.media_posts == 3 and verdict.texts_altered == 0
    assert (verdict.lost, verdict.duplicates, verdict.missing_tweet_ids, verdict.unexpected) == (0, 0, 0, 0)
    metrics = {"media_wrong": verdict.media_wrong, "max_connections": 1}
    proving = {"connection_bound": 45, "quiet": True, "post_ops_faulted_share_while_faults_on": 0.4,
               "faults_by_kind": {"cut_after_post_long": 1, "sigkill": 3}}
    assert failures_of(metrics, proving) == ["media_wrong=3"]
    # a second, correct copy does not hide the wrong one: every live copy is judged
    client.post(plan[1].parts[0] + " ", media=refs(files[2][0]))
    assert check(expected(plan, files), items, sandbox.tweets()).details["media_wrong_ids"] == [1, 2, 4]


def test_the_baseline_side_posts_the_same_media(
        client: XWebClient, sandbox: SandboxAdmin, pg_url: str, tmp_path: Path) -> None:
    plan = small_plan()
    files = write_plan_media(plan, tmp_path / "media")
    engine = naive.engine_for(pg_url)
    naive.create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM naive_items")
    naive.enqueue(engine, [(p.key, p.account, p.parts, None) for p in plan], files)
    breaker = naive.SharedBreaker(engine)
    breaker.success()
    while (item := naive.claim(engine, "alice")) is not None:
        assert naive.post_item(engine, breaker, client, item, tries=1)
    verdict = check(expected(plan, files), naive.snapshot(engine), sandbox.tweets())
    assert verdict.details["states"] == {"posted": 3}
    assert verdict.media_wrong == 0 and verdict.media_posts == 2 and verdict.texts_altered == 0
