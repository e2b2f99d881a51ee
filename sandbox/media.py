"""Media in the sandbox, taken the way x.com's upload endpoint takes it, and kept with the posts that use it.

  POST /i/media/upload.json?command=INIT&total_bytes=N&media_type=image/png&media_category=tweet_image
       -> {"media_id", "media_id_string", "expires_after_secs"}
  POST /i/media/upload.json?command=APPEND&media_id=ID&segment_index=K   (body: the chunk's raw bytes; x.com
       sends a multipart form field `media`, the bytes are the same)  -> 204
  POST /i/media/upload.json?command=FINALIZE&media_id=ID
       -> {"media_id_string", "size", "processing_info"?: {"state": "pending", "check_after_secs": 1}}
  GET  /i/media/upload.json?command=STATUS&media_id=ID
       -> {"media_id_string", "processing_info": {"state": "in_progress"|"succeeded"|"failed", "progress_percent",
           "check_after_secs"?, "error"?: {"code", "name", "message"}}}
  POST /i/api/1.1/media/metadata/create.json {"media_id", "alt_text": {"text"}}  -> 200 (alt text, <= 1,000)

Video and GIF are processed after FINALIZE (STATUS until "succeeded"); images are ready at FINALIZE. CreateTweet
takes the ids in `variables.media.media_entities`; a post stores each medium's SHA-256, type and alt text
(`tweet_media`), which is the ground truth `/__sandbox/tweets` shows. Faults (faults.py): `upload_error` (HTTP 503
on APPEND), `processing_failed` (processing ends "failed"; an image's FINALIZE fails), `processing_stuck`
(processing never ends). Uploads live in memory; an image's bytes are kept so pages can show it (`/pbs/media/`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.x_rules import PostResult

if TYPE_CHECKING:
    from sandbox.state import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS tweet_media (
    tweet_id TEXT NOT NULL, position INTEGER NOT NULL, media_id TEXT NOT NULL, kind TEXT NOT NULL,
    mime TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, alt TEXT, media_key TEXT NOT NULL,
    PRIMARY KEY (tweet_id, position)
);
"""
# media_type -> (kind as the timeline JSON names it, file extension)
MEDIA_TYPES = {
    "image/jpeg": ("photo", "jpg"), "image/png": ("photo", "png"), "image/webp": ("photo", "webp"),
    "image/gif": ("animated_gif", "gif"), "video/mp4": ("video", "mp4"), "video/quicktime": ("video", "mov"),
}  # fmt: skip
MAX_BYTES = {"photo": 5 * 2**20, "animated_gif": 15 * 2**20, "video": 512 * 2**20}
MAX_ALT = 1000
PROCESSING_S = 0.5  # how long the sandbox "transcodes" a video or GIF after FINALIZE
INVALID_MEDIA = {"errors": [{"code": 324, "message": "Some of the provided media ids are invalid."}]}


class UploadRefused(ValueError):
    """An upload command the endpoint refuses: HTTP status and X's error body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"errors": [{"code": code, "message": message}]}


@dataclass
class Upload:
    media_id: str
    handle: str
    mime: str
    total_bytes: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    state: str = "uploading"  # uploading -> pending -> succeeded | failed (| stuck: never leaves in_progress)
    finalized_at: float = 0.0
    sha256: str = ""
    alt: str | None = None
    content: bytes | None = None  # kept for images only, to render them

    @property
    def kind(self) -> str:
        return MEDIA_TYPES[self.mime][0]

    def ready(self, now: float) -> bool:
        """Finalized and processed: a post may use it."""
        self.processing(now)
        return self.state == "succeeded"

    def processing(self, now: float) -> dict[str, Any] | None:
        """STATUS's processing_info (None for an image that was ready at FINALIZE)."""
        if self.state == "succeeded" and self.kind == "photo":
            return None
        if self.state == "failed":
            return {"state": "failed", "progress_percent": 0,
                    "error": {"code": 1, "name": "InvalidMedia", "message": "Unsupported media."}}  # fmt: skip
        if self.state == "pending" and now - self.finalized_at >= PROCESSING_S:
            self.state = "succeeded"
        if self.state == "succeeded":
            return {"state": "succeeded", "progress_percent": 100}
        done = 99 if self.state == "stuck" else min(99, int(100 * (now - self.finalized_at) / PROCESSING_S))
        return {"state": "in_progress", "progress_percent": done, "check_after_secs": 1}


class Uploads:
    """The uploads of every account (in memory), under the store's lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._uploads: dict[str, Upload] = {}
        with store._lock:
            store._db.executescript(SCHEMA)

    def _get(self, handle: str, media_id: str) -> Upload:
        upload = self._uploads.get(media_id)
        if upload is None or upload.handle != handle:
            raise UploadRefused(400, 324, "The media ID is invalid.")
        return upload

    def command(self, handle: str, params: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        """One upload.json call: (HTTP status, JSON body or None for 204)."""
        command = params.get("command", "")
        with self.store._lock:
            if command == "INIT":
                return 202, self._init(handle, params)
            upload = self._get(handle, params.get("media_id", ""))
            if command == "APPEND":
                return self._append(upload, params, body)
            if command == "FINALIZE":
                return self._finalize(upload)
            if command == "STATUS":
                info = upload.processing(time.time())
                return 200, {"media_id": int(upload.media_id), "media_id_string": upload.media_id,
                             **({"processing_info": info} if info else {})}  # fmt: skip
        raise UploadRefused(400, 38, f"command must be INIT, APPEND, FINALIZE or STATUS, got {command!r}")

    def _init(self, handle: str, params: dict[str, str]) -> dict[str, Any]:
        mime = params.get("media_type", "")
        if mime not in MEDIA_TYPES:
            raise UploadRefused(400, 324, f"Unsupported media_type {mime!r}.")
        try:
            total = int(params.get("total_bytes", ""))
        except ValueError:
            raise UploadRefused(400, 38, "total_bytes parameter is missing.") from None
        kind = MEDIA_TYPES[mime][0]
        if not 0 < total <= MAX_BYTES[kind]:
            raise UploadRefused(400, 324, f"File size exceeds {MAX_BYTES[kind]} bytes.")
        media_id = str(self.store._next_id(self.store.now()))
        self._uploads[media_id] = Upload(media_id, handle, mime, total)
        return {"media_id": int(media_id), "media_id_string": media_id, "expires_after_secs": 86400}

    def _append(self, upload: Upload, params: dict[str, str], body: bytes) -> tuple[int, None]:
        if upload.state != "uploading":
            raise UploadRefused(400, 324, "The media was already finalized.")
        if self.store.faults.roll("upload_error", upload.handle):
            raise UploadRefused(503, 131, "Internal error.")
        try:
            index = int(params.get("segment_index", ""))
        except ValueError:
            raise UploadRefused(400, 38, "segment_index parameter is missing.") from None
        upload.chunks[index] = body
        if sum(len(c) for c in upload.chunks.values()) > upload.total_bytes:
            raise UploadRefused(400, 324, "More bytes than total_bytes.")
        return 204, None

    def _finalize(self, upload: Upload) -> tuple[int, dict[str, Any]]:
        data = b"".join(upload.chunks[i] for i in sorted(upload.chunks))
        if upload.state != "uploading" or len(data) != upload.total_bytes:
            raise UploadRefused(400, 324, f"File size {len(data)} does not match total_bytes {upload.total_bytes}.")
        upload.chunks.clear()
        upload.sha256 = hashlib.sha256(data).hexdigest()
        upload.finalized_at = time.time()
        faults = self.store.faults
        if faults.roll("processing_failed", upload.handle):
            upload.state = "failed"
        elif faults.roll("processing_stuck", upload.handle):
            upload.state = "stuck"
        elif upload.kind == "photo":
            upload.state = "succeeded"
        else:
            upload.state = "pending"
        if upload.kind == "photo":
            upload.content = data
        info = upload.processing(upload.finalized_at)
        body = {"media_id": int(upload.media_id), "media_id_string": upload.media_id, "size": len(data),
                "expires_after_secs": 86400, **({"processing_info": info} if info else {})}  # fmt: skip
        return 201, body

    def set_alt(self, handle: str, media_id: Any, text: Any) -> None:
        """metadata/create: the alt text of one upload (the last one set wins)."""
        if not isinstance(text, str) or len(text) > MAX_ALT:
            raise UploadRefused(400, 324, f"alt_text.text must be a string of at most {MAX_ALT} characters.")
        with self.store._lock:
            self._get(handle, str(media_id)).alt = text or None

    def image(self, key: str) -> tuple[bytes, str] | None:
        with self.store._lock:
            for upload in self._uploads.values():
                if upload.content is not None and media_key(upload.media_id) == key:
                    return upload.content, upload.mime
        return None

    def attach(self, tweet_id: str, media_ids: list[str]) -> None:
        """For CreateTweet (store lock held, inside its transaction; ids from `check_media_ids`): store them."""
        for position, media_id in enumerate(media_ids):
            upload = self._uploads[media_id]
            self.store._db.execute(
                "INSERT INTO tweet_media (tweet_id, position, media_id, kind, mime, sha256, bytes, alt, media_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (tweet_id, position, media_id, upload.kind, upload.mime, upload.sha256, upload.total_bytes,
                 upload.alt, media_key(media_id)),
            )


def check_media_ids(uploads: Uploads, handle: str, media: Any) -> list[str] | PostResult:
    """`variables.media.media_entities` as a list of ids; X's limits: 4 images, or one GIF or video, not mixed."""
    entities = (media or {}).get("media_entities") if isinstance(media, dict) else None
    ids = [str(e.get("media_id", "")) for e in entities or [] if isinstance(e, dict)]
    if len(ids) != len(entities or []):
        return PostResult(200, INVALID_MEDIA)
    kinds = []
    for media_id in ids:
        upload = uploads._uploads.get(media_id)
        if upload is None or upload.handle != handle or not upload.ready(time.time()):
            return PostResult(200, INVALID_MEDIA)
        kinds.append(upload.kind)
    if len(ids) > 4 or (len(ids) > 1 and set(kinds) != {"photo"}):
        return PostResult(200, INVALID_MEDIA)
    return ids


def media_key(media_id: str) -> str:
    return hashlib.sha256(f"media:{media_id}".encode()).hexdigest()[:15]


def media_by_tweet(db: sqlite3.Connection, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each post's media, in the order attached (ground truth and timeline JSON)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in db.execute(f"SELECT * FROM tweet_media WHERE tweet_id IN ({marks}) ORDER BY position", ids):
        out.setdefault(row["tweet_id"], []).append({
            "media_id": row["media_id"], "kind": row["kind"], "mime": row["mime"], "sha256": row["sha256"],
            "bytes": row["bytes"], "alt": row["alt"], "key": row["media_key"],
        })
    return out
