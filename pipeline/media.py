"""Media (images, GIFs, videos): checked against X's limits by their real content, kept by content hash.

A file is judged by what it is, never by its name: Pillow reads an image's or GIF's format and decodes it,
ffprobe (Debian's ffmpeg) reads a video's container, streams and duration. A name that promises another
format than the bytes hold ("disguised") is refused, as is a file over its kind's limit.

Checked files are copied into a content-addressed store, `PIPELINE_STATE_DIR/media/<sha256 hex>` (files
0600 in a 0700 folder, written without following links), so what is posted is exactly what was checked even
if the original changes or vanishes. `verify` proves a stored file is still there and unchanged.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
import subprocess
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.statefiles import path_under, private_dir, private_writer

MB = 1024 * 1024
MAX_IMAGES, MAX_GIFS, MAX_VIDEOS = 4, 1, 1
LIMIT_BYTES = {"image": 5 * MB, "gif": 15 * MB, "video": 512 * MB}
MAX_VIDEO_SECONDS = 140.0
MAX_ALT_CHARS = 1000
PER_POST = {"image": MAX_IMAGES, "gif": MAX_GIFS, "video": MAX_VIDEOS}
# What a file's name promises: Pillow's format name, or the video container.
_BY_EXTENSION = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".gif": "GIF",
                 ".mp4": "MP4", ".m4v": "MP4", ".mov": "MOV"}
_PICTURE_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
FFPROBE_TIMEOUT_S = 60
ACCEPTED = "JPEG, PNG or WEBP images, a GIF, or an MP4/MOV video"


class MediaError(ValueError):
    """A media file or alt text X would refuse or we cannot trust; the message names the file and the limit."""


class MediaToolError(RuntimeError):
    """ffprobe is missing or broken: a setup problem, not bad input (the message says how to install it)."""


@dataclass(frozen=True)
class MediaRef:
    """One checked file: its SHA-256 (its name in the store), kind (image | gif | video), MIME type, size."""

    sha256: str
    kind: str
    mime: str
    bytes: int
    alt: str | None

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "kind": self.kind, "mime": self.mime, "bytes": self.bytes, "alt": self.alt}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaRef:
        return cls(sha256=str(data["sha256"]), kind=str(data["kind"]), mime=str(data["mime"]),
                   bytes=int(data["bytes"]), alt=data.get("alt"))


class StagedMedia(NamedTuple):
    """A checked file not yet in the store: its reference and the operator's file it is copied from."""

    ref: MediaRef
    source: Path


# --------------------------------------------------------------------------- checking


def check_alt(alt: object, label: str = "alt text") -> str | None:
    """Alt text as it will be posted (NFC), or None; at most 1,000 characters, no control characters."""
    from pipeline.content import first_hidden_character

    if alt is None:
        return None
    if not isinstance(alt, str):
        raise MediaError(f"{label} must be text, not {type(alt).__name__}")
    alt = unicodedata.normalize("NFC", alt)
    if not alt.strip():
        raise MediaError(f"{label} is empty; leave it out for no alt text")
    bad = first_hidden_character(alt, in_post=True)
    if bad is not None:
        raise MediaError(f"{label} contains {bad}; remove it")
    if len(alt) > MAX_ALT_CHARS:
        raise MediaError(f"{label} is {len(alt)} characters; the limit is {MAX_ALT_CHARS:,}")
    return alt


def _open_regular(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MediaError(f"media file {path}: no such file") from None
    except OSError as exc:
        raise MediaError(f"media file {path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise MediaError(f"media file {path}: is not a regular file (a device, pipe or folder); give a file")
    return fd


def probe(path: str | Path) -> MediaRef:
    """The file's real kind, MIME type, size and SHA-256 (alt None), or MediaError naming the file and limit."""
    path = Path(path)
    promised = _BY_EXTENSION.get(path.suffix.lower())
    if promised is None:
        raise MediaError(f"media file {path}: {path.suffix or 'a name without extension'} is not a type X "
                         f"takes; give {ACCEPTED} (.jpg .png .webp .gif .mp4 .mov)")
    kind = "video" if promised in ("MP4", "MOV") else ("gif" if promised == "GIF" else "image")
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size == 0:
            raise MediaError(f"media file {path}: is empty")
        _check_size(path, kind, size)
        mime = _probe_video(path, fd) if kind == "video" else _probe_picture(path, fh, promised)
        fh.seek(0)
        digest, read = _hash(fh)
    if read != size:
        raise MediaError(f"media file {path}: changed while it was being checked; enqueue it again")
    return MediaRef(sha256=digest, kind=kind, mime=mime, bytes=size, alt=None)


def _check_size(path: Path, kind: str, size: int) -> None:
    limit = LIMIT_BYTES[kind]
    if size > limit:
        name = {"image": "an image", "gif": "a GIF", "video": "a video"}[kind]
        raise MediaError(f"media file {path}: is {size / MB:.1f} MB; the limit for {name} is {limit // MB} MB "
                         f"({limit:,} bytes)")


def _probe_picture(path: Path, fh: Any, promised: str) -> str:
    import PIL.Image

    try:
        with PIL.Image.open(fh) as image:
            actual = image.format
            if actual != promised:
                raise MediaError(f"media file {path}: holds a {actual} image but is named {path.suffix}; "
                                 f"give the real file (only {ACCEPTED} are taken)")
            image.load()  # decodes the (first) frame: a truncated or damaged file fails here
    except MediaError:
        raise
    except PIL.Image.DecompressionBombError as exc:
        raise MediaError(f"media file {path}: has too many pixels ({exc})") from None
    except PIL.UnidentifiedImageError:
        raise MediaError(f"media file {path}: is not a {promised} image (its content is not an image Pillow "
                         f"can read); give the real file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"media file {path}: is a damaged {promised} image ({exc})") from None
    return _PICTURE_MIME[promised]


def _probe_video(path: Path, fd: int) -> str:
    """ffprobe reads the open file (through /proc/self/fd), so it judges the same bytes we hash."""
    command = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
               f"/proc/self/fd/{fd}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S,
                              pass_fds=(fd,), check=False)
    except FileNotFoundError:
        raise MediaToolError("ffprobe is not installed: run `make media-tools` (installs Debian's ffmpeg)") from None
    except subprocess.TimeoutExpired:
        raise MediaError(f"media file {path}: ffprobe could not read it within {FFPROBE_TIMEOUT_S} s") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["unreadable"])[-1].replace(f"/proc/self/fd/{fd}: ", "")
        raise MediaError(f"media file {path}: is not a video ffprobe can read ({why}); give an MP4 or MOV file")
    info = json.loads(done.stdout or "{}")
    container = info.get("format", {})
    if "mp4" not in container.get("format_name", "").split(",") and "mov" not in container.get("format_name", ""):
        raise MediaError(f"media file {path}: holds {container.get('format_name', 'no known format')} but is "
                         f"named {path.suffix}; give a real MP4 or MOV video")
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video"
               and not s.get("disposition", {}).get("attached_pic")]
    if not streams:
        raise MediaError(f"media file {path}: has no video stream; give a video")
    try:
        seconds = float(container.get("duration") or streams[0].get("duration"))
    except (TypeError, ValueError):
        raise MediaError(f"media file {path}: its duration cannot be read; give a complete video") from None
    if seconds > MAX_VIDEO_SECONDS:
        raise MediaError(f"media file {path}: is {seconds:.1f} s long; the limit for a video is "
                         f"{MAX_VIDEO_SECONDS:g} s")
    brand = str(container.get("tags", {}).get("major_brand", "")).strip()
    return "video/quicktime" if brand == "qt" else "video/mp4"


def _hash(fh: Any) -> tuple[str, int]:
    digest, read = hashlib.sha256(), 0
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
        read += len(chunk)
    return digest.hexdigest(), read


def check_file(path: str | Path, alt: object) -> StagedMedia:
    """Probe a file and check its alt text: what enqueue copies into the store once every input is good."""
    alt = check_alt(alt, f"alt text of {path}")
    return StagedMedia(replace(probe(path), alt=alt), Path(path))


def check_post(refs: Sequence[MediaRef], label: str) -> None:
    """X's rule per post: up to 4 images, or 1 GIF, or 1 video, never mixed."""
    kinds = sorted({r.kind for r in refs})
    if len(kinds) > 1:
        named = {"image": "images", "gif": "a GIF", "video": "a video"}
        raise MediaError(f"{label}: mixes {' and '.join(named[k] for k in kinds)}; a post carries up to {MAX_IMAGES} images, "
                         f"or {MAX_GIFS} GIF, or {MAX_VIDEOS} video, not mixed")
    if kinds and len(refs) > PER_POST[kinds[0]]:
        raise MediaError(f"{label}: has {len(refs)} {kinds[0]}s; the limit is {PER_POST[kinds[0]]} per post")


# --------------------------------------------------------------------------- the store


def media_dir(state_dir: str | Path) -> Path:
    return Path(os.path.abspath(state_dir)) / "media"


def media_path(state_dir: str | Path, sha256: str) -> Path:
    """Where the file with this SHA-256 lives in the store (the name is checked: 64 lowercase hex digits)."""
    if not _SHA256.match(sha256):
        raise MediaError(f"{sha256!r} is not a SHA-256 hex digest")
    return path_under(media_dir(state_dir), sha256)


def verify(state_dir: str | Path, ref: MediaRef) -> str | None:
    """None when the stored file is present, a regular file (not a link) and matches its hash; else the problem."""
    path = media_path(state_dir, ref.sha256)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return f"media {ref.sha256[:12]} is missing from the store ({path})"
    if not stat.S_ISREG(info.st_mode):
        return f"media {ref.sha256[:12]} in the store is not a regular file ({path}); delete it and enqueue again"
    if info.st_size != ref.bytes:
        return f"media {ref.sha256[:12]} was altered: {info.st_size} bytes, {ref.bytes} when enqueued ({path})"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        return f"media {ref.sha256[:12]} cannot be read ({exc.strerror}) ({path})"
    with os.fdopen(fd, "rb") as fh:
        digest, _ = _hash(fh)
    if digest != ref.sha256:
        return f"media {ref.sha256[:12]} was altered: its content no longer matches its hash ({path})"
    return None


def store(state_dir: str | Path, path: str | Path, alt: str | None = None,
          expected: MediaRef | None = None) -> MediaRef:
    """Copy a file into the store under its SHA-256 and return its reference.

    Without `expected` the file is probed (and `alt` checked) first; with it (a reference from `check_file`)
    the copy must hash to the same value, so a file changed since it was checked is refused, not stored."""
    ref = expected if expected is not None else replace(probe(path), alt=check_alt(alt))
    target = media_path(state_dir, ref.sha256)
    if verify(state_dir, ref) is None:
        return ref  # the same bytes are already stored
    fd = _open_regular(Path(path))
    with os.fdopen(fd, "rb") as source, private_writer(target) as copy:
        digest = hashlib.sha256()
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            copy.write(chunk)
        if digest.hexdigest() != ref.sha256:
            raise MediaError(f"media file {path}: changed since it was checked; enqueue it again")
    return ref


@contextmanager
def storing(state_dir: str | Path, staged: Sequence[StagedMedia]) -> Iterator[list[MediaRef]]:
    """Copy checked files into the store for the block (the enqueue); should the block fail, the files this
    call added are removed again, so a refused enqueue leaves nothing behind.

    Enqueues with media hold a lock on the store's folder for the block, so one that fails never removes a
    file that a concurrent enqueue of the same file has just referenced. Without media nothing is locked."""
    if not staged:
        yield []
        return
    lock = os.open(private_dir(media_dir(state_dir)), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        created: list[Path] = []
        refs: list[MediaRef] = []
        try:
            for item in {s.ref.sha256: s for s in staged}.values():
                target = media_path(state_dir, item.ref.sha256)
                existed = os.path.lexists(target)
                refs.append(store(state_dir, item.source, expected=item.ref))
                if not existed:
                    created.append(target)
            yield refs
        except BaseException:
            for target in created:
                target.unlink(missing_ok=True)
            raise
    finally:
        os.close(lock)  # closing releases the lock


# --------------------------------------------------------------------------- the column


def column_value(media: Sequence[Sequence[MediaRef]]) -> list[list[dict[str, Any]]]:
    """`content_items.media`: one list of MediaRef JSON per part (empty lists for parts without media)."""
    return [[ref.as_json() for ref in part] for part in media]


def media_key(refs: Sequence[MediaRef]) -> str:
    """One post's media as a canonical string (`tweets.media_hashes`): the SHA-256s in attach order, comma-joined,
    '' for none. Order counts, as in the item's fingerprint: X shows the images in that order."""
    return ",".join(ref.sha256 for ref in refs)


def from_column(value: Any, part_count: int) -> list[list[MediaRef]]:
    """The item's media per part; NULL (rows from before media) reads as no media."""
    if not value:
        return [[] for _ in range(part_count)]
    return [[MediaRef.from_json(r) for r in part] for part in value]
