#!/usr/bin/env bash
# Check the contract for breaking changes against the last release tag (v*).
set -euo pipefail
cd "$(dirname "$0")/.."
last=$(git tag --list 'v*' --sort=-v:refname | head -n 1)
if [ -z "$last" ]; then
  echo "breaking: no release tag yet (v*); nothing to compare against"
  exit 0
fi
echo "breaking: comparing protos/ with $last"
node_modules/.bin/buf breaking --against ".git#tag=$last"
