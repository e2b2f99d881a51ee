"""Test media made at test time: PNG/JPEG/GIF with Pillow, MP4 with ffmpeg (Debian's; `apt-get install ffmpeg`)."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

from PIL import Image

from pipeline.media import MediaRef, media_path

KINDS = {".png": ("image", "image/png"), ".jpg": ("image", "image/jpeg"), ".gif": ("gif", "image/gif"),
         ".mp4": ("video", "video/mp4")}  # fmt: skip


def image(path: Path, seed: int, side: int = 64, fmt: str = "PNG") -> Path:
    """A noise image (noise does not compress: a PNG of side s is about 3*s*s bytes)."""
    rng = random.Random(seed)
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(path, fmt)
    return path


def gif(path: Path, seed: int, frames: int = 4) -> Path:
    rng = random.Random(seed)
    images = [Image.frombytes("RGB", (48, 48), rng.randbytes(48 * 48 * 3)) for _ in range(frames)]
    images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def video(path: Path, seconds: float = 1.0, max_bytes: int | None = None, noise: bool = False) -> Path:
    """An H.264 MP4 (noise and `max_bytes`: a file of about that size, for the benchmark)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is missing: install it with `apt-get install -y ffmpeg`")
    source = "nullsrc=s=640x360:r=25,geq=random(1)*255:128:128" if noise else "testsrc=size=320x240:rate=10"
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", str(seconds), "-pix_fmt", "yuv420p",
           "-c:v", "libx264", *(["-qp", "0"] if noise else []), "-movflags", "+faststart", str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    if max_bytes is not None and path.stat().st_size < max_bytes:
        raise RuntimeError(f"{path} came out {path.stat().st_size} bytes, below {max_bytes}: raise `seconds`")
    return path


def stored(state_dir: Path, path: Path, alt: str | None = None) -> tuple[Path, MediaRef]:
    """Copy a file into the content-addressed store, as enqueue does, and return (stored path, reference)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    target = media_path(state_dir, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    kind, mime = KINDS[path.suffix]
    return target, MediaRef(sha256=digest, kind=kind, mime=mime, bytes=len(data), alt=alt)
