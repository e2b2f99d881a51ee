#!/usr/bin/env bash
# `make ui`: the local sandbox plus `dagster dev` (webserver + daemon), so schedules and sensors run.
# UI_PORT (default 3000) and SANDBOX_PORT (default 8765) choose the ports. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
UI_PORT="${UI_PORT:-3000}"
SANDBOX_PORT="${SANDBOX_PORT:-8765}"
export PIPELINE_X_BASE_URL="${PIPELINE_X_BASE_URL:-http://127.0.0.1:${SANDBOX_PORT}}"
mkdir -p .pipeline/state
.venv/bin/pipeline db upgrade >/dev/null
.venv/bin/pipeline sandbox serve --port "$SANDBOX_PORT" --state .pipeline/state/sandbox.db &
SANDBOX_PID=$!
# dagster dev ignores SIGTERM when backgrounded from a script: give it its own process group and stop the group.
set -m
.venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "$UI_PORT" &
DAGSTER_PID=$!
set +m
stop() {
  kill -TERM -- "-$DAGSTER_PID" 2>/dev/null || true
  kill -TERM "$SANDBOX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM
echo "Dagster UI: http://127.0.0.1:${UI_PORT}   sandbox (x.com stand-in): ${PIPELINE_X_BASE_URL}"
wait "$DAGSTER_PID"
