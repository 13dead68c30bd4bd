#!/usr/bin/env bash
# The kill -9 crash test (tests/crash.rs) run for many cycles on one data directory.
#
# Usage: scripts/crash-loop.sh [-h]
#
# Environment:
#   CRASH_CYCLES   kill cycles (default 100; the test suite runs 3)
#   CRASH_SEED     seed of the kill points and of who redeems and reverses (default: the
#                  test's fixed seed); a failing run prints its seed, set it here to repeat it
#   CRASH_TIMEOUT  seconds before the whole run is stopped (default 1800)
#
# What one cycle does (see tests/crash.rs): imports 600 residents, runs their claims (about
# 70% then redeem, about 30% of those then reverse) against `yunquan serve` started with
# --snapshot-every-events 200, kill -9s the server after a random number of acknowledged
# requests, restarts it on the same data directory and checks that every acknowledged
# claim, redemption and reversal is there, that stock and budget figures equal what the
# coupon export shows, and that retries replay. Every fourth cycle also kills a server right
# after it prints its listening line, and one a drawn 1-40,000 us after it was started, while it
# is still recovering. After the last cycle the offline audit must pass.
#
# Bounded and local: the server listens on 127.0.0.1 only, on a port the OS picks; the
# request count is fixed by the cycle count (600 residents, at most 3 requests each, per
# cycle); the run stops after CRASH_TIMEOUT seconds at the latest. The data directory is a
# temporary directory removed at the end.
#
# Prints the test's per-cycle lines and a summary; exit code 0 only if every cycle passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
handle_args "$0" CRASH_ "$@"

cycles="${CRASH_CYCLES:-100}"
timeout_s="${CRASH_TIMEOUT:-1800}"
if ! [[ "$cycles" =~ ^[0-9]+$ ]] || (( cycles < 1 || cycles > 10000 )); then
  echo "CRASH_CYCLES must be a whole number from 1 to 10000, got '$cycles'" >&2
  exit 2
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs): install a stable Rust toolchain first" >&2
  exit 1
fi

export YUNQUAN_CRASH_CYCLES="$cycles"
if [[ -n "${CRASH_SEED:-}" ]]; then
  export YUNQUAN_CRASH_SEED="$CRASH_SEED"
fi

log="$(mktemp -t yunquan-crash-loop.XXXXXX)"
trap 'rm -f "$log"' EXIT

cargo build --release --test crash --bin yunquan
started=$(date +%s)
set +e
timeout "$timeout_s" cargo test --release --test crash -- --nocapture --test-threads=1 \
  2>&1 | tee "$log" | grep -E '^(crash test|cycle|crash summary)|panicked|FAILED'
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - started ))

echo
echo "== crash loop summary =="
echo "cycles requested: $cycles"
grep -E '^crash summary' "$log" | sed 's/^crash summary: /result: /' || echo "result: no summary line (the run failed before the end)"
echo "wall time: ${elapsed} s"
if (( status == 0 )); then
  echo "verdict: PASS"
else
  if (( status == 124 )); then
    echo "verdict: FAIL (stopped after ${timeout_s} s)"
  else
    echo "verdict: FAIL (exit $status); the failing assertion is above"
  fi
  grep -E '^crash test:' "$log" | sed 's/^/repeat with: /' || true
fi
exit "$status"
