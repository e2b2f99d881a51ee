#!/usr/bin/env bash
# Make sure a Chromium exists for Playwright, in the order the pipeline looks for one:
# PIPELINE_BROWSER_EXECUTABLE, a system Chromium, then Playwright's own download.
# On Debian both packages are installed: chromium-headless-shell runs every headless page (posting, the
# sandbox tests: what Playwright itself runs headless, lighter to start: bench/browser_start.py), chromium
# the headed login.
set -euo pipefail
if [[ -n "${PIPELINE_BROWSER_EXECUTABLE:-}" ]]; then
  [[ -x "$PIPELINE_BROWSER_EXECUTABLE" ]] && exit 0
  echo "PIPELINE_BROWSER_EXECUTABLE=$PIPELINE_BROWSER_EXECUTABLE is not executable" >&2; exit 1
fi
have_chromium() { for c in /usr/bin/chromium /usr/bin/chromium-browser; do [[ -x "$c" ]] && return 0; done; return 1; }
apt_install() {  # quietly, refreshing the package lists once if the first try fails
  apt-get install -y -qq "$@" >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq "$@" >/dev/null)
}
if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
  if ! have_chromium; then
    echo "installing Debian's chromium (no Chromium found)..." >&2
    apt_install chromium || true
  fi
  if have_chromium && [[ ! -x /usr/bin/chromium-headless-shell ]]; then
    echo "installing Debian's chromium-headless-shell (headless pages)..." >&2
    apt_install chromium-headless-shell || echo "no chromium-headless-shell: headless pages use chromium" >&2
  fi
fi
have_chromium && exit 0
echo "trying playwright install chromium..." >&2
if .venv/bin/playwright install chromium; then exit 0; fi
echo "No Chromium: install one (sudo apt-get install -y chromium chromium-headless-shell) or set PIPELINE_BROWSER_EXECUTABLE" >&2
exit 1
