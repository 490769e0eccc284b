#!/usr/bin/env bash
# Starts what the tests need and writes their addresses to .services.env:
#   - PostgreSQL 15 (Debian's package; installed if missing when we are root), a role `organic`;
#   - Chromium (Debian's package) for the Playwright browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
: > .services.env

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
need_apt=()
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from Debian's packages"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  as_root pg_createcluster 15 main >/dev/null
  cluster="15 main"
fi
port=$(pg_lsclusters -h | awk 'NR==1 {print $3}')
if ! pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online; then
  as_root pg_ctlcluster $cluster start
fi
as_root su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_roles WHERE rolname='organic'\" | grep -q 1 || psql -q -p $port -c \"CREATE ROLE organic LOGIN SUPERUSER PASSWORD 'organic'\""
echo "export ORGANIC_TEST_POSTGRES_URL=postgresql+psycopg://organic:organic@127.0.0.1:$port/postgres" >> .services.env
echo "PostgreSQL ready on port $port; Chromium at /usr/bin/chromium"
