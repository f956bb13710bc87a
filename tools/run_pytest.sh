#!/usr/bin/env bash
# Run pytest and give exit code 5 ("no tests ran") a meaning:
#  --require-tests: nothing ran means the suite is broken -> fail.
#  otherwise (a marker subset): nothing matched -> say so and succeed.
set -uo pipefail
# Tests run the same under `make test` as from a shell: make's own variables
# would otherwise reach every `make` the tests' commands run (which then print
# "Entering directory" lines into outputs the tests read).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
py=$1; shift
require=0
if [ "${1:-}" = "--require-tests" ]; then require=1; shift; fi
"$py" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  if [ "$require" -eq 1 ]; then
    echo "run_pytest: pytest collected no tests; the suite is broken" >&2
    exit 1
  fi
  echo "run_pytest: no tests matched this selection"
  exit 0
fi
exit "$rc"
