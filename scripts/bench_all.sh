#!/usr/bin/env bash
# `make bench`: every benchmark, each beside its baseline in the same run; JSON and Markdown land in
# bench/results/. The chaos run is the 1,000-post goal run (about 45 minutes: faults for the first 15, then the
# queue drains; the realistic sandbox posts about one item a second when calm, far fewer under faults).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY bench/sandbox.py
$PY bench/queue.py
$PY bench/posting.py
$PY bench/posting_media.py
$PY bench/checks.py
$PY bench/learning.py --postgres
$PY bench/chaos.py --posts 1000 --time-budget 0 --fault-limit 900 --quiet-limit 1800 --check --json bench/results/chaos-1000.json
echo "results: bench/results/*.md"
