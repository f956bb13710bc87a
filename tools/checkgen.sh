#!/usr/bin/env bash
# Fail when regenerating the stubs would change anything checked in.
set -euo pipefail
py=$1
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tools/gen_protos.sh "$py" "$tmp"
# Compare only generated files; __init__.py and py.typed are hand-written.
if ! diff -r -x __init__.py -x py.typed -x __pycache__ "$tmp/specloom/v1" src/specloom/v1; then
  echo "checkgen: generated stubs are stale; run 'make gen' and commit the result" >&2
  exit 1
fi
echo "checkgen: stubs are up to date"
