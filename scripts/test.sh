#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine: unit and property tests, the
# storage conformance suite, the fault cases F1-F15, end-to-end tests of the real
# binary (including kill -9 crash recovery) and the demo at a small scale, then the
# HTTP API fuzzed against its OpenAPI document (scripts/fuzz-api.sh, which installs a
# pinned schemathesis in a venv under target/). yunquan's store is embedded; the load
# generator's comparison targets are tested against a real Redis and PostgreSQL, which
# this script installs (as root, with apt-get) if missing and runs on free 127.0.0.1
# ports with their data in a temporary directory, stopping them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs): install a stable Rust toolchain first" >&2
  exit 1
fi

command -v python3 >/dev/null 2>&1 || { echo "python3 is required (free ports, the fuzzer)" >&2; exit 1; }

# --- Redis and PostgreSQL for the comparison targets' tests -------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[[ -n $(pg_bin) && -x $(pg_bin)/initdb ]] || missing+=(postgresql)
if ((${#missing[@]} > 0)); then
  apt_install "${missing[@]}"
fi
SERVERS=$(mktemp -d "${TMPDIR:-/tmp}/yunquan-test-servers.XXXXXX")
# PostgreSQL runs as its own user when this runs as root and must reach its directory.
chmod 755 "$SERVERS"
SERVER_PIDS=()
stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$SERVERS"
}
trap stop_servers EXIT
REDIS_PORT=$(free_port)
start_redis "$SERVERS/redis" "$SERVERS/redis.log" "$REDIS_PORT" --save "" --appendonly no
SERVER_PIDS+=("$STARTED_PID")
PG_PORT=$(free_port)
start_postgres "$(pg_bin)" "$SERVERS/pg" "$SERVERS/postgres.log" "$PG_PORT" 40
SERVER_PIDS+=("$STARTED_PID")
export YUNQUAN_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export YUNQUAN_TEST_PG_URL="postgres://bench@127.0.0.1:$PG_PORT/bench"
# Those tests fail rather than skip if their server is missing.
export YUNQUAN_TEST_SERVERS_REQUIRED=1

# One profile for everything: the e2e tests drive the release binary under load.
cargo build --release --workspace --all-targets
cargo test --release --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
# The binary is built above; the fuzzer needs python3 (and python3-venv, installed if missing).
FUZZ_NO_BUILD=1 ./scripts/fuzz-api.sh
