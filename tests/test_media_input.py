"""Media input, storage and check: every bad file refused by its real content with nothing written, good
images, GIFs and videos stored by SHA-256 with their alt text, fingerprints, the blocking check, health and
the drafts library. Test media are made here with Pillow and ffmpeg (no binary files in the repository)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import PIL.Image
import pytest
import sqlalchemy as sa

from assets.checks import queued_media_intact
from pipeline import integrity, media, queue
from pipeline.cli import main
from pipeline.content import fingerprint, make_draft
from pipeline.daemons import DaemonProbe
from pipeline.generators import DraftsLibrary, load_drafts
from pipeline.health import check_health
from pipeline.planning import plan
from pipeline.settings import load_settings
from resources import Database

# --------------------------------------------------------------------------- test media, made at test time


def picture(path: Path, fmt: str, color: str = "red", size: tuple[int, int] = (64, 48)) -> Path:
    PIL.Image.new("RGB", size, color).save(path, format=fmt)
    return path


def gif(path: Path, frames: int = 3) -> Path:
    images = [PIL.Image.new("P", (24, 24), i * 40) for i in range(frames)]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=100)
    return path


def video(path: Path, seconds: float = 2, extra: tuple[str, ...] = ()) -> Path:
    """A tiny real video from ffmpeg's test source (1 frame a second keeps a 141 s video fast to make)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=duration={seconds}:size=32x32:rate=1", "-pix_fmt", "yuv420p", *extra, str(path)],
                   check=True, timeout=120)
    return path


def padded(path: Path, source: Path, total_bytes: int) -> Path:
    """A real file made larger than a limit (trailing bytes after the image; the size check comes first)."""
    data = source.read_bytes()
    path.write_bytes(data + b"\0" * (total_bytes - len(data)))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- a world: SQLite file, one account


@dataclass
class World:
    root: Path
    env: dict[str, str]

    @property
    def store(self) -> Path:
        return self.root / "state" / "media"

    def run(self, *argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.dict(os.environ, self.env, clear=True), redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse's own usage errors
                code = int(exc.code or 0)
        return code, out.getvalue() + err.getvalue()

    def items(self) -> list[tuple]:
        conn = sqlite3.connect(self.root / "p.db")
        try:
            return conn.execute("SELECT id, parts, media, fingerprint FROM content_items ORDER BY id").fetchall()
        finally:
            conn.close()

    def stored(self) -> set[str]:
        return {p.name for p in self.store.iterdir()} if self.store.exists() else set()

    def enqueue(self, *argv: str) -> list:
        code, output = self.run("enqueue", "--account", "alice", *argv)
        assert code == 0, output
        row = self.items()[-1]
        return json.loads(row[2])


@pytest.fixture
def world(tmp_path: Path) -> World:
    env = {"PATH": os.environ.get("PATH", ""), "PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
           "PIPELINE_STATE_DIR": str(tmp_path / "state"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    w = World(tmp_path, env)
    (tmp_path / "alice.json").write_text(json.dumps({"cookies": [], "origins": []}))
    os.chmod(tmp_path / "alice.json", 0o600)
    for argv in (["db", "upgrade"], ["accounts", "add", "alice", "--storage-state", str(tmp_path / "alice.json")]):
        code, output = w.run(*argv)
        assert code == 0, output
    return w


# --------------------------------------------------------------------------- bad input: refused, nothing written


def _make(w: World, name: str, maker: Callable[[Path], object]) -> str:
    path = w.root / name
    maker(path)
    return str(path)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _bad_second_line(w: World) -> str:
    """A JSON-lines file whose first line is good (a real PNG) and whose second names a PNG called .jpg."""
    picture(w.root / "ok.png", "PNG")
    picture(w.root / "fake.jpg", "PNG")
    path = w.root / "in.jsonl"
    path.write_text(json.dumps({"account": "alice", "text": "fine", "media": [{"path": "ok.png"}]}) + "\n"
                    + json.dumps({"account": "alice", "text": "bad", "media": [{"path": "fake.jpg", "alt": "a"}]}))
    return str(path)


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        fh.truncate(size)


BAD: list[tuple[str, Callable[[World], list[str]], tuple[str, ...]]] = [
    ("missing", lambda w: ["--text", "t", "--media", str(w.root / "nothere.png")], ("nothere.png", "no such file")),
    ("folder", lambda w: ["--text", "t", "--media", str(w.root / "state.png")] if (w.root / "state.png").mkdir() is None
     else [], ("state.png", "not a regular file")),
    ("not-a-folder", lambda w: ["--text", "t", "--media", str(w.root / "alice.json" / "x.png")],
     ("alice.json/x.png", "cannot be read (Not a directory)")),
    ("fifo", lambda w: ["--text", "t", "--media", _make(w, "pipe.png", _fifo)], ("pipe.png", "not a regular file")),
    ("unknown-type", lambda w: ["--text", "t", "--media", _make(w, "a.bmp", lambda p: picture(p, "BMP"))],
     ("a.bmp", "not a type X takes")),
    ("jpeg-named-png", lambda w: ["--text", "t", "--media", _make(w, "fake.png", lambda p: picture(p, "JPEG"))],
     ("fake.png", "holds a JPEG image but is named .png")),
    ("text-named-jpg", lambda w: ["--text", "t", "--media", _make(w, "notes.jpg", lambda p: p.write_text("hello"))],
     ("notes.jpg", "is not a JPEG image")),
    ("video-named-gif", lambda w: ["--text", "t", "--media", _make(
        w, "clip.gif", lambda p: p.write_bytes(video(w.root / "real.mp4").read_bytes()))],
     ("clip.gif", "is not a GIF image")),
    ("png-named-mp4", lambda w: ["--text", "t", "--media", _make(w, "still.mp4", lambda p: picture(p, "PNG"))],
     ("still.mp4", "give a real MP4 or MOV video")),
    ("truncated-png", lambda w: ["--text", "t", "--media", _make(
        w, "cut.png", lambda p: p.write_bytes(picture(w.root / "whole.png", "PNG", size=(400, 300)).read_bytes()[:300]))],
     ("cut.png", "damaged")),
    ("image-over-5mb", lambda w: ["--text", "t", "--media", _make(
        w, "big.png", lambda p: padded(p, picture(w.root / "s.png", "PNG"), 5 * 1024 * 1024 + 1))],
     ("big.png", "the limit for an image is 5 MB")),
    ("gif-over-15mb", lambda w: ["--text", "t", "--media", _make(
        w, "big.gif", lambda p: padded(p, gif(w.root / "s.gif"), 15 * 1024 * 1024 + 1))],
     ("big.gif", "the limit for a GIF is 15 MB")),
    ("video-over-512mb", lambda w: ["--text", "t", "--media", _make(
        w, "big.mp4", lambda p: _sparse(p, 512 * 1024 * 1024 + 1))],
     ("big.mp4", "the limit for a video is 512 MB")),
    ("video-over-140s", lambda w: ["--text", "t", "--media", _make(w, "long.mp4", lambda p: video(p, 141))],
     ("long.mp4", "the limit for a video is 140 s")),
    ("five-images", lambda w: ["--text", "t", *[a for i in range(5) for a in (
        "--media", _make(w, f"i{i}.png", lambda p, i=i: picture(p, "PNG", color=(i * 40, 0, 0))))]],
     ("5 images", "the limit is 4 per post")),
    ("two-gifs", lambda w: ["--text", "t", "--media", _make(w, "a.gif", gif),
                            "--media", _make(w, "b.gif", lambda p: gif(p, 4))], ("2 gifs", "the limit is 1")),
    ("image-and-video", lambda w: ["--text", "t", "--media", _make(w, "i.png", lambda p: picture(p, "PNG")),
                                   "--media", _make(w, "v.mp4", video)], ("mixes images and a video",)),
    ("alt-too-long", lambda w: ["--text", "t", "--media", _make(w, "i.png", lambda p: picture(p, "PNG")),
                                "--alt", "x" * 1001], ("alt text of", "i.png", "1001 characters; the limit is 1,000")),
    ("alt-control-char", lambda w: ["--text", "t", "--media", _make(w, "i.png", lambda p: picture(p, "PNG")),
                                    "--alt", "bad\x07bell"], ("alt text of", "U+0007")),
    ("alt-before-media", lambda w: ["--text", "t", "--alt", "orphan"], ("--alt TEXT goes right after the --media",)),
    ("no-such-part", lambda w: ["--thread", "one", "two", "--media", "3:" + _make(
        w, "i.png", lambda p: picture(p, "PNG"))], ("there is no part 3",)),
    ("unregistered-account-after-good-media", lambda w: ["--account", "bob", "--text", "t", "--media", _make(
        w, "i.png", lambda p: picture(p, "PNG"))], ("'bob' is not registered",)),
    ("file-bad-line", lambda w: ["--file", _bad_second_line(w)],
     ("line 2", "fake.jpg", "holds a PNG image but is named .jpg", "nothing was enqueued")),
    ("file-media-with-parts", lambda w: ["--file", _make(w, "in.jsonl", lambda p: p.write_text(json.dumps(
        {"account": "alice", "parts": ["a", "b"], "media": [{"path": "x.png"}]}) + "\n"))],
     ("line 1", "'media' goes with 'text'")),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_media_is_refused_and_nothing_is_written(world: World, case) -> None:  # type: ignore[no-untyped-def]
    _, argv, names = case
    before = world.items()
    args = argv(world)
    if args and args[0] != "--file" and "--account" not in args:
        args = ["--account", "alice", *args]
    code, output = world.run("enqueue", *args)
    assert code == 2, output
    for name in names:
        assert name in output, (name, output)
    assert world.items() == before
    assert world.stored() == set()


def test_video_without_ffprobe_exits_1_with_the_fix_and_writes_nothing(world: World) -> None:
    clip = video(world.root / "v.mp4")
    empty = world.root / "no-tools"
    empty.mkdir()
    world.env["PATH"] = str(empty)
    code, output = world.run("enqueue", "--account", "alice", "--text", "t", "--media", str(clip))
    assert code == 1 and "ffprobe is not installed" in output and "make media-tools" in output
    assert world.items() == [] and world.stored() == set()


# --------------------------------------------------------------------------- good input: stored by hash with alt


def test_images_are_stored_by_hash_with_alt_and_survive_the_original(world: World) -> None:
    png, jpg, webp = (picture(world.root / f"a.{ext}", fmt, color) for ext, fmt, color in
                      (("png", "PNG", "red"), ("jpg", "JPEG", "green"), ("webp", "WEBP", "blue")))
    refs = world.enqueue("--text", "three pictures", "--media", str(png), "--alt", "a red square",
                         "--media", str(jpg), "--media", str(webp), "--alt", "línea\nazul")
    assert [(r["kind"], r["mime"], r["alt"]) for r in refs[0]] == [
        ("image", "image/png", "a red square"), ("image", "image/jpeg", None), ("image", "image/webp", "línea\nazul")]
    assert [r["sha256"] for r in refs[0]] == [sha(png), sha(jpg), sha(webp)]
    assert world.stored() == {sha(png), sha(jpg), sha(webp)}
    assert stat.S_IMODE(world.store.stat().st_mode) == 0o700
    for path in (png, jpg, webp):
        kept = world.store / sha(path)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_bytes() == path.read_bytes()
        assert refs[0][[png, jpg, webp].index(path)]["bytes"] == path.stat().st_size
    original = png.read_bytes()
    png.write_bytes(b"changed after enqueue")  # what is posted is what was checked
    assert (world.store / hashlib.sha256(original).hexdigest()).read_bytes() == original
    item = queue.list_items(sa.create_engine(world.env["PIPELINE_DATABASE_URL"]))[0]
    assert item.media[0][0] == media.MediaRef(sha256=hashlib.sha256(original).hexdigest(), kind="image",
                                              mime="image/png", bytes=len(original), alt="a red square")


def test_gif_and_videos_are_stored_with_their_kind(world: World) -> None:
    animated, mp4, mov = gif(world.root / "a.gif"), video(world.root / "v.mp4"), video(world.root / "v.mov")
    assert world.enqueue("--text", "a gif", "--media", str(animated), "--alt", "it moves")[0] == [
        {"sha256": sha(animated), "kind": "gif", "mime": "image/gif", "bytes": animated.stat().st_size,
         "alt": "it moves"}]
    assert world.enqueue("--text", "an mp4", "--media", str(mp4))[0][0]["mime"] == "video/mp4"
    assert world.enqueue("--text", "a mov", "--media", str(mov))[0][0]["mime"] == "video/quicktime"
    assert world.stored() == {sha(animated), sha(mp4), sha(mov)}


def test_thread_parts_carry_their_own_media(world: World) -> None:
    first, clip = picture(world.root / "1.png", "PNG"), video(world.root / "c.mp4")
    refs = world.enqueue("--thread", "one", "two", "three", "--media", f"1:{first}", "--media", f"3:{clip}",
                         "--alt", "the clip")
    assert [[r["sha256"] for r in part] for part in refs] == [[sha(first)], [], [sha(clip)]]
    assert refs[2][0]["alt"] == "the clip"


def test_json_lines_media_for_a_single_and_per_part(world: World) -> None:
    folder = world.root / "batch"
    folder.mkdir()
    pic, anim = picture(folder / "p.jpg", "JPEG"), gif(folder / "g.gif")
    (folder / "in.jsonl").write_text(
        json.dumps({"account": "alice", "text": "single", "media": [{"path": "p.jpg", "alt": "a photo"}]}) + "\n"
        + json.dumps({"account": "alice", "parts": ["plain", {"text": "with gif", "media": [{"path": "g.gif"}]}]})
        + "\n" + json.dumps({"account": "alice", "text": "no media"}) + "\n")
    code, output = world.run("enqueue", "--file", str(folder / "in.jsonl"))
    assert code == 0, output
    rows = world.items()
    assert [json.loads(r[2]) for r in rows] == [
        [[{"sha256": sha(pic), "kind": "image", "mime": "image/jpeg", "bytes": pic.stat().st_size, "alt": "a photo"}]],
        [[], [{"sha256": sha(anim), "kind": "gif", "mime": "image/gif", "bytes": anim.stat().st_size, "alt": None}]],
        [[]],
    ]
    assert rows[2][3] == fingerprint(["no media"])  # text-only fingerprints are unchanged
    assert world.stored() == {sha(pic), sha(anim)}


def test_fingerprints_differ_with_different_media(world: World) -> None:
    red, blue = picture(world.root / "r.png", "PNG", "red"), picture(world.root / "b.png", "PNG", "blue")
    world.enqueue("--text", "same words", "--media", str(red))
    world.enqueue("--text", "same words", "--media", str(blue))  # another image: another post
    world.enqueue("--text", "same words")  # no image: another post too
    code, output = world.run("enqueue", "--account", "alice", "--text", "same words", "--media", str(red),
                             "--alt", "alt text does not make it new")
    assert code == 2 and "already has this text as item 1" in output
    fps = [r[3] for r in world.items()]
    assert len(set(fps)) == 3 and fps[2] == fingerprint(["same words"])
    assert fingerprint(["a", "b"], [[], []]) == fingerprint(["a", "b"])
    assert fingerprint(["a", "b"], [["x" * 64], []]) != fingerprint(["a", "b"], [[], ["x" * 64]])


def test_store_refuses_a_file_changed_since_it_was_checked(tmp_path: Path) -> None:
    path = picture(tmp_path / "a.png", "PNG")
    staged = media.check_file(path, "alt")
    picture(path, "PNG", "blue")
    with pytest.raises(media.MediaError, match="changed since it was checked"):
        with media.storing(tmp_path / "state", [staged]):
            pass
    assert not (tmp_path / "state" / "media").exists() or not list((tmp_path / "state" / "media").iterdir())


# --------------------------------------------------------------------------- the check and health


def _queued_with_media(engine: sa.Engine, state_dir: Path, tmp_path: Path) -> tuple[int, media.MediaRef,
                                                                                     media.MediaRef]:
    queue.add_account(engine, "alice", "/x.json")
    one = media.store(state_dir, picture(tmp_path / "one.png", "PNG", "red"), "first")
    two = media.store(state_dir, picture(tmp_path / "two.jpg", "JPEG", "green"))
    [item_id] = queue.enqueue(engine, [(make_draft("alice", ["part a", "part b"], media=[[one], [two]]), None)])
    queue.enqueue(engine, [(make_draft("alice", ["text only"]), None)])
    return item_id, one, two


def test_check_flags_missing_and_altered_media(engine: sa.Engine, db_url: str, tmp_path: Path) -> None:
    state_dir = Path(os.environ["PIPELINE_STATE_DIR"])
    item_id, one, two = _queued_with_media(engine, state_dir, tmp_path)
    assert integrity.missing_media(engine, state_dir).ok
    assert queued_media_intact(database=Database(url=db_url)).passed
    assert queue.get_item(engine, item_id).media == [[one], [two]]

    media.media_path(state_dir, one.sha256).unlink()
    found = integrity.missing_media(engine, state_dir)
    assert (found.total, [(r["item_id"], r["part"]) for r in found.rows]) == (1, [(item_id, 1)])
    assert "missing from the store" in found.rows[0]["problem"]

    media.store(state_dir, tmp_path / "one.png", "first")  # restored
    altered = media.media_path(state_dir, two.sha256)
    data = bytearray(altered.read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes
    altered.write_bytes(bytes(data))
    found = integrity.missing_media(engine, state_dir)
    assert [(r["part"], r["sha256"]) for r in found.rows] == [(2, two.sha256)]
    assert "no longer matches its hash" in found.rows[0]["problem"]
    result = queued_media_intact(database=Database(url=db_url))
    assert not result.passed and result.metadata["items_missing_media"].value == 1

    with engine.begin() as conn:  # a posted item's media no longer matters
        conn.execute(sa.text("UPDATE content_items SET state = 'posted' WHERE id = :id"), {"id": item_id})
    assert integrity.missing_media(engine, state_dir).ok


def test_health_reports_missing_media(engine: sa.Engine, db_url: str, tmp_path: Path) -> None:
    settings = load_settings(env={"PIPELINE_DATABASE_URL": db_url, "PIPELINE_STATE_DIR": str(tmp_path / "state")})
    item_id, one, _ = _queued_with_media(engine, settings.state_path, tmp_path)
    report = check_health(settings, DaemonProbe.beating(), engine=engine)
    assert {f.name: f.status for f in report.findings}["media"] == "ok"
    media.media_path(settings.state_path, one.sha256).unlink()
    report = check_health(settings, DaemonProbe.beating(), engine=engine)
    finding = {f.name: f for f in report.findings}["media"]
    assert finding.status == "unhealthy" and report.exit_code == 2
    assert f"item {item_id}" in finding.reason and one.sha256[:12] in finding.reason


# --------------------------------------------------------------------------- the drafts library


def test_drafts_name_media_beside_them_and_the_planner_stores_it(engine: sa.Engine, tmp_path: Path) -> None:
    folder = tmp_path / "drafts"
    folder.mkdir()
    chart, anim = picture(folder / "chart.png", "PNG"), gif(folder / "loop.gif")
    picture(folder / "fake.png", "JPEG")
    picture(tmp_path / "outside.png", "PNG")
    (folder / "a.jsonl").write_text("\n".join(json.dumps(e) for e in (
        {"topic": "python", "format": "tip", "text": "With a chart.", "media": [{"path": "chart.png", "alt": "A chart"}],
         "key": "chart"},
        {"topic": "python", "format": "how-to", "parts": ["One.", {"text": "Two.", "media": [{"path": "loop.gif"}]}],
         "key": "loop"},
        {"topic": "python", "format": "tip", "text": "Disguised.", "media": [{"path": "fake.png"}]},
        {"topic": "python", "format": "tip", "text": "Escapes.", "media": [{"path": "../outside.png"}]},
    )) + "\n")
    (folder / "b.md").write_text("## python / story {#md}\nA story.\n![The same chart](chart.png)\n---\nThe end.\n")
    drafts, problems = load_drafts(folder)
    by_key = {d.key: d for d in drafts}
    assert [m.ref.alt for m in by_key["chart"].media[0]] == ["A chart"]
    assert [[m.ref.kind for m in part] for part in by_key["loop"].media] == [[], ["gif"]]
    assert by_key["md"].parts == ("A story.", "The end.")  # the image line is not text
    assert [[(m.ref.sha256, m.ref.alt) for m in part] for part in by_key["md"].media] == [
        [(sha(chart), "The same chart")], []]
    reasons = " | ".join(detail for _, detail in problems)
    assert "fake.png: holds a JPEG image" in reasons and "must be inside" in reasons and len(drafts) == 3

    queue.add_account(engine, "alice", "/x.json")
    settings = load_settings(env={"PIPELINE_STATE_DIR": str(tmp_path / "state")}, plan_min_items=3,
                             posts_per_hour=10, min_spacing_min=1, quiet_hours="")
    report = plan(engine, settings, DraftsLibrary(engine, folder, rng=random.Random(1)), rng=random.Random(1))
    assert report.enqueued == 3, report.dropped
    items = queue.list_items(engine)
    stored = {ref.sha256 for item in items for part in item.media for ref in part}
    assert stored == {sha(chart), sha(anim)}
    for digest in stored:
        assert media.verify(settings.state_path, next(
            ref for item in items for part in item.media for ref in part if ref.sha256 == digest)) is None
    assert not integrity.missing_media(engine, settings.state_path).total
