#!/usr/bin/env bash
# Optional system packages some tests use, installed when this machine can:
#   elixir                — the real `mix test` run of the elixir profile (skipped,
#                           with a reason, when mix is missing).
#   chromium, chromium-driver — the web console's browser tests (tests/web/test_browser.py)
#                           drive Debian's headless Chromium through chromedriver; never
#                           a browser downloaded by a test tool. Skipped, with a reason,
#                           when missing.
# Never fatal: without root or apt the affected tests say why they skip.
set -uo pipefail

wanted=()
command -v mix >/dev/null 2>&1 || wanted+=(elixir)
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || wanted+=(chromium chromium-driver)
if [ "${#wanted[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: ${wanted[*]} not installed and no root/apt here; the tests needing them will be skipped" >&2
  exit 0
fi
echo "system_deps: installing ${wanted[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
apt-get update -q >/dev/null 2>&1 || echo "system_deps: apt-get update failed" >&2
for package in "${wanted[@]}"; do
  apt-get install -y -q "$package" >/dev/null 2>&1 \
    || echo "system_deps: could not install $package; the tests needing it will be skipped" >&2
done
exit 0
