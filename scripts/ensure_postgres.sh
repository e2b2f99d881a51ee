#!/usr/bin/env bash
# The tests need a real PostgreSQL. Use the local server if it answers, start it if it is installed but
# stopped, install the server binaries if missing (tests/pg.py then starts a throwaway cluster).
set -uo pipefail
url_host=127.0.0.1
if pg_isready -q -h "$url_host" -p 5432 2>/dev/null; then exit 0; fi
if [[ -n "${PIPELINE_TEST_PG_ADMIN_URL:-}" ]]; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -1)" main start 2>/dev/null
  for _ in $(seq 20); do pg_isready -q -h "$url_host" -p 5432 && exit 0; sleep 0.5; done
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null && [[ $(id -u) -eq 0 ]]; then
    echo "installing PostgreSQL server binaries for a throwaway test cluster..." >&2
    apt-get install -y -qq postgresql >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)
  fi
fi
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi  # tests/pg.py starts one
echo "No PostgreSQL: install it (apt-get install -y postgresql) or set PIPELINE_TEST_PG_ADMIN_URL" >&2
exit 1
