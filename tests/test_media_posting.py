"""Media go live exactly as given, on the one posting path: real Chromium, the sandbox's x.com upload flow.

Ground truth is the sandbox's record of each post's media (SHA-256 of the bytes X received, type, alt text).
Pipeline-level tests enqueue items with media already in the content-addressed store, as `pipeline enqueue` does.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline import queue
from pipeline.browser import BrowserSession, write_secret_file
from pipeline.failures import NothingSent
from pipeline.media import MediaRef
from pipeline.xweb import XWebClient
from sandbox.client import SandboxAdmin
from tests import media_files as mf
from tests.fixtures_world import World

Media = list[tuple[Path, MediaRef]]


@pytest.fixture
def client(sandbox: SandboxAdmin, browser_session: BrowserSession, tmp_path: Path) -> XWebClient:
    session = write_secret_file(tmp_path / "alice.json", sandbox.create_account("alice"))
    browser_session.reset_account("alice")
    page = browser_session.page("alice", session)
    return XWebClient(page, sandbox.url, "alice", nav_timeout_s=10, post_timeout_s=5, media_timeout_s=15)


def truth_media(sandbox: SandboxAdmin, tweet_id: str) -> list[tuple[str, str, str | None]]:
    (tweet,) = [t for t in sandbox.tweets() if t["id"] == tweet_id]
    return [(m["sha256"], m["kind"], m["alt"]) for m in tweet["media"]]


def expected(media: Media) -> list[tuple[str, str, str | None]]:
    kinds = {"image": "photo", "gif": "animated_gif", "video": "video"}
    return [(ref.sha256, kinds[ref.kind], ref.alt) for _, ref in media]


def four_images(tmp_path: Path) -> Media:
    alts = ["A red square", None, "Line one of a chart & its <axis>", "Ünïcode alt 😀"]
    return [mf.stored(tmp_path / "store", mf.image(tmp_path / f"i{n}.png", seed=n), alt) for n, alt in enumerate(alts)]


# ------------------------------------------------------------------------------------------------ the client


def test_four_images_a_gif_and_a_video_go_live_as_given_single_thread_part_and_reply(
    client: XWebClient, sandbox: SandboxAdmin, tmp_path: Path
) -> None:
    images = four_images(tmp_path)
    animation = [mf.stored(tmp_path / "store", mf.gif(tmp_path / "a.gif", seed=7), "A looping cat")]
    clip = [mf.stored(tmp_path / "store", mf.video(tmp_path / "v.mp4"), "A test card, one second")]
    single = client.post("Four images in one post", media=images)
    part_two = client.post("Thread part two, with a GIF", in_reply_to=single, media=animation)
    other = client.post("Someone's post to answer")
    reply = client.post("A reply with a video", in_reply_to=other, media=clip)
    assert truth_media(sandbox, single) == expected(images)
    assert truth_media(sandbox, part_two) == expected(animation)
    assert truth_media(sandbox, reply) == expected(clip)
    assert truth_media(sandbox, other) == []
    stored = {t["id"]: t for t in sandbox.tweets()}
    assert stored[single]["text"] == "Four images in one post"
    assert stored[part_two]["in_reply_to"] == single and stored[reply]["in_reply_to"] == other


def test_the_timeline_shows_the_media_and_the_page_renders_images_with_their_alt_text(
    client: XWebClient, sandbox: SandboxAdmin, tmp_path: Path
) -> None:
    images = four_images(tmp_path)[:2]
    tweet_id = client.post("Two images, one described", media=images)
    read = client.read_timeline(not_before=None)
    (post,) = [p for p in read.posts if p.tweet_id == tweet_id]
    assert post.text == "Two images, one described"  # the media link X appends is not part of the text
    assert post.media == (("photo", "A red square"), ("photo", ""))
    alts = client.page.eval_on_selector_all('[data-testid="tweetPhoto"] img', "els => els.map(e => e.alt)")
    assert alts[:2] == ["A red square", "Image"]
    loaded = client.page.eval_on_selector_all('[data-testid="tweetPhoto"] img', "els => els.map(e => e.naturalWidth)")
    assert loaded[:2] == [64, 64]


@pytest.mark.parametrize("fault", ["upload_error", "processing_failed", "processing_stuck"])
def test_an_upload_fault_sends_nothing_and_the_retry_posts_once_with_every_medium(
    client: XWebClient, sandbox: SandboxAdmin, tmp_path: Path, fault: str
) -> None:
    clip = [mf.stored(tmp_path / "store", mf.video(tmp_path / "v.mp4"), "Clip")]
    images = four_images(tmp_path)[:2]
    for media in (clip, images):
        sandbox.set_faults({fault: {"p": 1.0, "times": 1}})
        client.media_timeout_ms = 4000  # a stuck upload is given up on after this
        before = [t["id"] for t in sandbox.tweets()]
        with pytest.raises(NothingSent):
            client.post(f"Retried after {fault} ({len(media)})", media=media)
        assert [t["id"] for t in sandbox.tweets()] == before  # nothing went out, not even without its media
        assert sandbox.state()["faults_fired"][fault] == 1
        tweet_id = client.post(f"Retried after {fault} ({len(media)})", media=media)
        assert truth_media(sandbox, tweet_id) == expected(media)
        assert len(sandbox.tweets()) == len(before) + 1


# ------------------------------------------------------------------------------------------------ the pipeline


def settle(world: World, item_id: int, runs: int = 6) -> queue.Item:
    for _ in range(runs):
        world.post()
        item = queue.get_item(world.engine, item_id)
        if item.state in ("posted", "failed", "needs_review"):
            return item
        time.sleep(world.settings.reconcile_settle_s)
        world.make_due()
    return queue.get_item(world.engine, item_id)


@pytest.mark.parametrize("fault", ["upload_error", "processing_failed", "processing_stuck"])
def test_after_an_upload_fault_the_item_is_posted_once_with_all_its_media(
    world: World, tmp_path: Path, fault: str
) -> None:
    # a stuck upload is given up on after this
    world.settings = replace(world.settings, values={**world.settings.values, "media_timeout_s": 4.0})
    images = [mf.stored(world.state_dir, mf.image(tmp_path / f"p{n}.png", seed=10 + n), f"Photo {n}") for n in range(2)]
    item_id = world.enqueue("alice", f"Two photos, after {fault}", media=[[ref for _, ref in images]])
    world.sandbox.set_faults({fault: {"p": 1.0, "times": 1}})
    first = world.post()
    assert queue.get_item(world.engine, item_id).state == "queued" and world.truth() == []
    assert first.posted == 0
    final = settle(world, item_id)
    truth = world.truth()
    assert final.state == "posted" and [t["id"] for t in truth] == final.tweet_ids
    assert [(m["sha256"], m["alt"]) for m in truth[0]["media"]] == [(ref.sha256, ref.alt) for _, ref in images]


def test_a_stall_after_x_stored_a_post_with_media_is_reconciled_to_posted_never_posted_twice(
    world: World, tmp_path: Path
) -> None:
    world.sandbox.set_rules(duplicate_window_hours=0)  # X's duplicate rule is no guard: measure ours
    clip = mf.stored(world.state_dir, mf.video(tmp_path / "v.mp4"), "A one-second test card")
    photo = mf.stored(world.state_dir, mf.image(tmp_path / "p.png", seed=3), "The same words, another photo")
    text = "Same words, with media"
    # the same text went out by hand with another medium: reconciliation must not take it for ours
    page = world.browser.page("alice", world.state_dir / "sessions" / "alice.json")
    decoy = XWebClient(page, world.settings.x_base_url, "alice").post(text, media=[photo])
    item_id = world.enqueue("alice", text, media=[[clip[1]]])
    world.sandbox.set_faults({"post_commit_stall": {"p": 1.0, "seconds": 30, "times": 1}})
    final = settle(world, item_id)
    ours = [t for t in world.truth() if t["media"] and t["media"][0]["kind"] == "video"]
    assert len(ours) == 1, f"X holds {len(ours)} posts with the video"
    assert final.state == "posted" and final.tweet_ids == [ours[0]["id"]] != [decoy]
    assert len(world.truth()) == 2


# ------------------------------------------------------------------------------------------------ the sandbox


def _upload(store: Any, handle: str, mime: str, data: bytes) -> str:
    _, init = store.uploads.command(handle, {"command": "INIT", "total_bytes": str(len(data)), "media_type": mime}, b"")
    media_id = init["media_id_string"]
    store.uploads.command(handle, {"command": "APPEND", "media_id": media_id, "segment_index": "0"}, data)
    store.uploads.command(handle, {"command": "FINALIZE", "media_id": media_id}, b"")
    return media_id


def test_create_tweet_refuses_media_x_would_refuse_and_stores_nothing() -> None:
    from sandbox.media import PROCESSING_S, UploadRefused
    from sandbox.state import Store

    store = Store()
    for handle in ("alice", "bob"):
        store.issue_session(handle)
    photos = [_upload(store, "alice", "image/png", bytes([n]) * 10) for n in range(5)]
    clip = _upload(store, "alice", "video/mp4", b"video bytes")  # processing: not ready for PROCESSING_S
    bobs = _upload(store, "bob", "image/png", b"bob's photo")

    def post(ids: list[str]) -> Any:
        return store.post("alice", "With media", None, {"media_entities": [{"media_id": i} for i in ids]})

    for ids in (photos, [photos[0], clip], [clip], [bobs], ["123"]):  # 5 images, mixed, unprocessed, foreign, unknown
        result = post(ids)
        assert result.tweet is None and result.body["errors"][0]["code"] == 324, ids
    assert store.tweets() == []
    time.sleep(PROCESSING_S)
    assert store.uploads.command("alice", {"command": "STATUS", "media_id": clip}, b"")[1]["processing_info"][
        "state"] == "succeeded"
    assert post([clip]).tweet["media"][0]["kind"] == "video"
    with pytest.raises(UploadRefused):  # a GIF over 15 MB is refused at INIT
        store.uploads.command("alice", {"command": "INIT", "total_bytes": str(16 * 2**20), "media_type": "image/gif"},
                              b"")
    with pytest.raises(UploadRefused):  # FINALIZE with fewer bytes than INIT announced
        _, init = store.uploads.command("alice", {"command": "INIT", "total_bytes": "9", "media_type": "image/png"}, b"")
        store.uploads.command("alice", {"command": "FINALIZE", "media_id": init["media_id_string"]}, b"")
