"""Media attached to a post: a reference to a file in the content-addressed store (the enqueue side owns this).

Minimal stand-in with the agreed names until the enqueue side lands; its version replaces this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MediaRef:
    sha256: str
    kind: str  # "image" | "gif" | "video"
    mime: str
    bytes: int
    alt: str | None


def media_path(state_dir: str | Path, sha256: str) -> Path:
    """Where the store keeps a file: PIPELINE_STATE_DIR/media/<sha256>."""
    return Path(state_dir) / "media" / sha256
