#!/usr/bin/env bash
# Searches for crash moments that break exactly-once: runs the chaos tests
# over many seeds and names every failing seed (replay one with
# SHOAL_CHAOS_SEED=S SHOAL_CHAOS_RUNS=1 cargo test --workspace --test chaos).
#
#   scripts/chaos-search.sh [RUNS] [FIRST_SEED] [TEST_FILTER]
#
#   RUNS         seeds per chaos test (default 100)
#   FIRST_SEED   first seed (default 1); seeds FIRST_SEED..FIRST_SEED+RUNS
#   TEST_FILTER  a test name filter (default: every test of tests/chaos.rs)
#
# Environment:
#   LOAD=1       keep the machine busy meanwhile: stress-ng --cpu 2 --hdd 1
#                (CPU and fsync-heavy disk writes; installed with apt if
#                missing), stopped at exit
#   KAFKA=1      also run tests/kafka_chaos.rs (needs scripts/services.sh start)
#   SHOAL_CHAOS_KEEP=DIR  keep the working directory of each failing seed
#
# The output of every seed goes to target/chaos-search/<time>.log; the
# summary at the end counts the seeds run and lists the failures.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-100}"
FIRST="${2:-1}"
FILTER="${3:-}"
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET/chaos-search"
mkdir -p "$OUT"
LOG="$OUT/$(date +%Y%m%d-%H%M%S).log"

if [ "${LOAD:-0}" = 1 ]; then
    if ! command -v stress-ng >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
    fi
    stress-ng --cpu 2 --hdd 1 --timeout 0 >/dev/null 2>&1 &
    STRESS=$!
    trap 'kill $STRESS 2>/dev/null || true' EXIT
    echo "load: stress-ng --cpu 2 --hdd 1 (pid $STRESS)"
fi

cargo build --workspace --tests -q
tests=(--test chaos)
if [ "${KAFKA:-0}" = 1 ]; then
    # shellcheck disable=SC1091
    source "${SHOAL_SERVICES_DIR:-/tmp/shoal-services}/env"
    export CI=true
    tests+=(--test kafka_chaos)
fi
echo "chaos search: $RUNS seeds from $FIRST per test, log $LOG"
status=0
SHOAL_CHAOS_RUNS="$RUNS" SHOAL_CHAOS_SEED="$FIRST" \
    cargo test --workspace -q "${tests[@]}" -- --nocapture --test-threads=1 $FILTER \
    >"$LOG" 2>&1 || status=$?
ok=$(grep -c '^chaos .*: seed [0-9]* ok' "$LOG" || true)
bad=$(grep -c '^chaos .*: seed [0-9]* FAILED' "$LOG" || true)
echo "seeds ok: $ok, failed: $bad"
grep '^chaos .*: seed [0-9]* FAILED' "$LOG" || true
if [ "$status" != 0 ] && [ "$bad" = 0 ]; then
    echo "cargo test failed outside the seeds (exit $status): see $LOG"
fi
exit "$status"
