#!/usr/bin/env bash
# Optional system packages some tests use, installed when this machine can:
#   elixir — the real `mix test` run of the elixir profile (skipped, with a
#            reason, when mix is missing).
# Never fatal: without root or apt the affected tests say why they skip.
set -uo pipefail
if command -v mix >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: installing elixir (for the elixir profile's real mix test)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q elixir >/dev/null 2>&1 \
    || echo "system_deps: could not install elixir; its mix test will be skipped" >&2
else
  echo "system_deps: elixir not installed and no root/apt here; its mix test will be skipped" >&2
fi
exit 0
