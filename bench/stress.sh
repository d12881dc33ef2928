#!/usr/bin/env bash
# The test suite under load: two CPU hogs run beside pytest, as on a busy CI machine or
# a laptop doing other work. No test may depend on the machine's speed (fixed sleeps,
# tight deadlines, asserted durations); this run shows whether one does.
#
#   bench/stress.sh                          # the whole suite
#   bench/stress.sh tests/sandbox -q         # any pytest arguments
#   bench/stress.sh -- .ci/run               # any command: here the whole CI run
#   STRESS_HOGS=4 bench/stress.sh            # more hogs
#
# The hogs are this script's own children and are ended when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

hogs=()
stop_hogs() {
    for pid in "${hogs[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop_hogs EXIT

for _ in $(seq "${STRESS_HOGS:-2}"); do
    python3 -c 'while 1: pass' &
    hogs+=("$!")
done
if [[ "${1:-}" == "--" ]]; then
    shift
    echo "stress: ${#hogs[@]} CPU hogs running (pids ${hogs[*]}); running $*" >&2
    "$@"
else
    echo "stress: ${#hogs[@]} CPU hogs running (pids ${hogs[*]}); running pytest $*" >&2
    python -m pytest -p no:cacheprovider "$@"
fi
