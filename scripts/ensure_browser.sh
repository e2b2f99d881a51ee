#!/usr/bin/env bash
# Make sure a Chromium exists for Playwright, in the order the pipeline looks for one:
# PIPELINE_BROWSER_EXECUTABLE, a system Chromium, then Playwright's own download.
set -euo pipefail
if [[ -n "${PIPELINE_BROWSER_EXECUTABLE:-}" ]]; then
  [[ -x "$PIPELINE_BROWSER_EXECUTABLE" ]] && exit 0
  echo "PIPELINE_BROWSER_EXECUTABLE=$PIPELINE_BROWSER_EXECUTABLE is not executable" >&2; exit 1
fi
for c in /usr/bin/chromium /usr/bin/chromium-browser; do [[ -x "$c" ]] && exit 0; done
if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
  echo "installing Debian's chromium (no Chromium found)..." >&2
  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) && exit 0
fi
echo "trying playwright install chromium..." >&2
if .venv/bin/playwright install chromium; then exit 0; fi
echo "No Chromium: install one (sudo apt-get install -y chromium) or set PIPELINE_BROWSER_EXECUTABLE" >&2
exit 1
