#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine: unit and property tests, the
# storage conformance suite, the fault cases F1-F15, end-to-end tests of the real
# binary (including kill -9 crash recovery) and the demo at a small scale, then the
# HTTP API fuzzed against its OpenAPI document (scripts/fuzz-api.sh, which installs a
# pinned schemathesis in a venv under target/). The store is embedded: no servers needed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs): install a stable Rust toolchain first" >&2
  exit 1
fi

# One profile for everything: the e2e tests drive the release binary under load.
cargo build --release --workspace --all-targets
cargo test --release --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-2}"
# The binary is built above; the fuzzer needs python3 (and python3-venv, installed if missing).
FUZZ_NO_BUILD=1 ./scripts/fuzz-api.sh
