#!/usr/bin/env bash
# Make sure ffprobe exists: media input reads a video's real container, streams and duration with it
# (pipeline/media.py). Debian's ffmpeg package brings it, installed the way ensure_browser.sh installs Chromium.
set -euo pipefail
command -v ffprobe >/dev/null && exit 0
if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
  echo "installing Debian's ffmpeg (no ffprobe found)..." >&2
  (apt-get install -y -qq ffmpeg >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null)) \
    && command -v ffprobe >/dev/null && exit 0
fi
echo "No ffprobe: install Debian's ffmpeg (sudo apt-get install -y ffmpeg); videos cannot be checked without it" >&2
exit 1
