#!/usr/bin/env bash
# Make sure the local PostgreSQL cluster answers (CI machines start with it,
# but it may have been stopped). Does nothing when DATABASE_URL points at a
# server that already answers or when no local cluster exists.
set -uo pipefail
url=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
if command -v pg_isready >/dev/null 2>&1 && pg_isready -d "$url" -q; then
  exit 0
fi
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "pg_up: no answer at $url and no local cluster tools; PostgreSQL tests will fail" >&2
  exit 0
fi
read -r version cluster _ < <(pg_lsclusters --no-header | head -n 1)
if [ -z "${version:-}" ]; then
  echo "pg_up: no local PostgreSQL cluster found" >&2
  exit 0
fi
echo "pg_up: starting PostgreSQL $version/$cluster"
pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
for _ in $(seq 1 30); do
  pg_isready -d "$url" -q && exit 0
  sleep 1
done
echo "pg_up: PostgreSQL did not come up" >&2
exit 1
