#!/usr/bin/env bash
# Fuzzes the running HTTP API against its own OpenAPI document (GET /openapi.json) with
# schemathesis: no answer may be a 5xx, and every answer must have a status, a media
# type and a body that the document declares for that operation.
#
# Usage: scripts/fuzz-api.sh [-h]
#
# What it does:
#   1. creates (or reuses) a Python venv in target/fuzz-venv with a pinned schemathesis
#      (installing python3-venv with apt-get first if the venv module is missing, as root);
#   2. `cargo build --release --bin yunquan`;
#   3. starts `yunquan serve` on a fresh temporary data directory on 127.0.0.1, port 0,
#      and seeds it: a live campaign, two residents, a merchant with a terminal, one
#      coupon redeemed and one still available; mints a token per role with
#      `yunquan token` (it reads the key in the data directory);
#   4. runs the fuzzer three times, each with the token of one role on the operations
#      that role may call (tags resident, terminal, then manager and public), so the
#      calls get past the access guard; the manager runs last because it may end the
#      campaign. Path parameters name the seeded objects half of the time
#      (scripts/fuzz/schemathesis.toml); scripts/fuzz/hooks.py teaches the fuzzer NDJSON;
#   5. stops the server (also on failure or interrupt) and exits non-zero if any run
#      found a failure or an error.
#
# Checks (scripts/fuzz/schemathesis.toml): not_a_server_error, status_code_conformance,
# content_type_conformance, response_headers_conformance, response_schema_conformance,
# and negative_data_rejection (a request the document calls invalid is refused with a
# 4xx; not for the imports, which refuse bad lines one by one inside a 200). Not
# positive_data_acceptance: the document cannot state every rule (a budget
# that covers the stock, a coupon code's check digits), so some valid-looking requests
# are rightly refused. Phases: examples, coverage, fuzzing and stateful, FUZZ_EXAMPLES
# test cases at most per operation and phase, from a fixed seed, so a run is repeatable.
#
# Knobs (environment):
#   FUZZ_EXAMPLES=30        most test cases per operation (schemathesis --max-examples)
#   FUZZ_SEED=20250601      random seed of every run
#   FUZZ_WORKERS=1          concurrent fuzzer workers (CPython 3.11 before 3.11.8 may
#                           fail in ast.parse when the fuzzer's threads describe
#                           strategies at once: keep 1 there)
#   FUZZ_ROLES="resident terminal manager"  roles to run, in order
#   FUZZ_KEEP=0             1 keeps the temporary data directory
#   FUZZ_NO_BUILD=0         1 skips the build and uses target/release/yunquan
#   FUZZ_CHECKS=            comma-separated fuzzer checks instead of the configured ones
# Outputs: the fuzzer's report on stdout, the server's log and a JUnit report per role
# in target/fuzz-api/. Everything listens on and talks to 127.0.0.1 only.
# Runtime with the defaults: about 2 minutes after the build and the first install.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
handle_args "$0" FUZZ_ "$@"

EXAMPLES=${FUZZ_EXAMPLES:-30}
SEED=${FUZZ_SEED:-20250601}
WORKERS=${FUZZ_WORKERS:-1}
ROLES=${FUZZ_ROLES:-resident terminal manager}
KEEP=${FUZZ_KEEP:-0}
NO_BUILD=${FUZZ_NO_BUILD:-0}
CHECKS=${FUZZ_CHECKS:-}
# The fuzzer's version is pinned: a newer one may generate other cases from the same seed.
SCHEMATHESIS_VERSION=4.32.5
VENV=$ROOT/target/fuzz-venv
ST=$VENV/bin/schemathesis
YUNQUAN=$ROOT/target/release/yunquan
OUT_DIR=$ROOT/target/fuzz-api
CONFIG=$ROOT/scripts/fuzz/schemathesis.toml
HOOKS=$ROOT/scripts/fuzz/hooks.py

for v in EXAMPLES SEED WORKERS; do
  if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
    echo "FUZZ_$v must be a whole number, got '${!v}'" >&2
    exit 2
  fi
done

say() { printf '== %s\n' "$*"; }
die() {
  echo "fuzz-api: $*" >&2
  exit 1
}

# --- the fuzzer ----------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 is required"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  [[ $(id -u) == 0 ]] || die "python3's venv module is missing: run 'apt-get install -y python3-venv' as root"
  say "installing python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
if ! [[ -x $ST && $("$ST" --version 2>/dev/null) == *" $SCHEMATHESIS_VERSION" ]]; then
  say "installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- the server ----------------------------------------------------------------------
if [[ $NO_BUILD != 1 ]]; then
  say "building yunquan (release)"
  cargo build --release --bin yunquan
fi
[[ -x $YUNQUAN ]] || die "no $YUNQUAN: build it first"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/yunquan-fuzz.XXXXXX")
DATA=$WORK/data
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
PID=

# On any exit: stops the server this script started (by its pid) and removes the data.
cleanup() {
  local rc=$? i
  if [[ -n $PID ]]; then
    kill -TERM "$PID" 2>/dev/null || true
    # yunquan drains and snapshots on SIGTERM; give it up to 30 s, then SIGKILL.
    for ((i = 0; i < 300; i++)); do
      kill -0 "$PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [[ $KEEP == 1 ]]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

: >"$OUT_DIR/server.stdout"
"$YUNQUAN" serve --data "$DATA" --listen 127.0.0.1:0 --shards 2 \
  >>"$OUT_DIR/server.stdout" 2>"$OUT_DIR/server.stderr" &
PID=$!
BASE=$(wait_listening "$OUT_DIR/server.stdout" "$PID") ||
  die "yunquan did not start; see $OUT_DIR/server.stderr"
for ((i = 0; ; i++)); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz") == 200 ]] && break
  ((i < 600)) || die "yunquan not ready within 60 s; see $OUT_DIR/server.stderr"
  sleep 0.1
done
say "yunquan listening on $BASE"

token() { "$YUNQUAN" token --data "$DATA" "$@"; }
MANAGER=$(token --role manager --subject fuzz)
RESIDENT=$(token --role resident --subject r-2)
TERMINAL=$(token --role terminal --subject t-1 --merchant m-1)

# api METHOD PATH BODY TOKEN: prints the body of a 2xx answer, fails loudly otherwise.
api() {
  local status
  status=$(curl -sS -o "$WORK/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $4" \
    -H 'Content-Type: application/json' --data-binary "$3" "$BASE$2") || die "$1 $2: curl failed"
  [[ $status == 2* ]] || die "$1 $2 answered $status: $(head -c 500 "$WORK/body")"
  cat "$WORK/body"
}
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

say "seeding a live campaign, residents, a merchant, a redemption"
# The campaign's zone is UTC, so the round does not depend on the machine's zone data.
START_AT=$(date -u -d '-60 sec' +%FT%T)
END_AT=$(date -u -d '+2 hours' +%FT%T)
CAMPAIGN=$(api POST /v1/campaigns "{\"name\": \"fuzz round\", \"funder\": \"commerce dept\", \"timezone\": \"UTC\",
  \"budget_fen\": 100000000, \"rounds\": [{\"start\": \"$START_AT\", \"end\": \"$END_AT\"}],
  \"tiers\": [{\"kind\": \"fixed\", \"discount_fen\": 2000, \"min_spend_fen\": 10000, \"stock\": 1000}],
  \"eligibility\": {\"categories\": [\"catering\"]},
  \"validity\": {\"kind\": \"days_after_claim\", \"days\": 1}}" "$MANAGER" | field id)
api POST "/v1/campaigns/$CAMPAIGN/publish" '' "$MANAGER" >/dev/null
api POST /v1/residents '{"account": "r-1", "identity_number": "520101199001010011", "region": "guiyang"}' "$MANAGER" >/dev/null
api POST /v1/residents '{"account": "r-2", "identity_number": "520101199001010022", "region": "guiyang"}' "$MANAGER" >/dev/null
api POST /v1/merchants '{"id": "m-1", "name": "noodle house", "category": "catering", "region": "guiyang", "terminals": ["t-1"]}' "$MANAGER" >/dev/null
R1=$(token --role resident --subject r-1)
REDEEMED=$(api POST "/v1/campaigns/$CAMPAIGN/claims" '{"tier": 0}' "$R1" | field code)
REDEMPTION=$(api POST /v1/redemptions "{\"code\": \"$REDEEMED\", \"request_no\": \"pos-1\", \"order_fen\": 20000}" "$TERMINAL" | field redemption_id)
AVAILABLE=$(api POST "/v1/campaigns/$CAMPAIGN/claims" '{"tier": 0}' "$RESIDENT" | field code)

export FUZZ_CAMPAIGN=$CAMPAIGN FUZZ_MERCHANT=m-1 FUZZ_CODE=$AVAILABLE FUZZ_REDEMPTION=$REDEMPTION
export SCHEMATHESIS_HOOKS=$HOOKS

# fuzz ROLE TOKEN TAG...: one fuzzer run as ROLE over the operations of the tags.
fuzz() {
  local role=$1 tags=() checks=()
  export FUZZ_TOKEN=$2
  shift 2
  for t in "$@"; do tags+=(--include-tag "$t"); done
  [[ -z $CHECKS ]] || checks=(--checks "$CHECKS")
  say "fuzzing as $role: ${*} operations, at most $EXAMPLES cases each, seed $SEED"
  python3 -c 'import os, sys; sys.stdout.write(os.path.expandvars(open(sys.argv[1]).read()))' \
    "$CONFIG" >"$WORK/schemathesis-$role.toml"
  # Run from the work directory: the fuzzer writes its caches where it runs.
  (cd "$WORK" && "$ST" --config-file "$WORK/schemathesis-$role.toml" run "$BASE/openapi.json" \
    "${tags[@]}" \
    ${checks[@]+"${checks[@]}"} \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$EXAMPLES" --seed "$SEED" --workers "$WORKERS" \
    --report junit --report-junit-path "$OUT_DIR/junit-$role.xml" \
    --no-color)
}

FAILED=()
for role in $ROLES; do
  case $role in
    resident) fuzz resident "$RESIDENT" resident || FAILED+=(resident) ;;
    terminal) fuzz terminal "$TERMINAL" terminal || FAILED+=(terminal) ;;
    manager) fuzz manager "$MANAGER" manager public || FAILED+=(manager) ;;
    *) die "unknown role '$role' in FUZZ_ROLES (resident, terminal, manager)" ;;
  esac
done
kill -0 "$PID" 2>/dev/null || die "yunquan died during the runs; see $OUT_DIR/server.stderr"
# A panic caught by the runtime may still have been answered with a proper status.
if grep -q 'panicked' "$OUT_DIR/server.stderr"; then
  die "yunquan panicked during the runs; see $OUT_DIR/server.stderr"
fi
if ((${#FAILED[@]} > 0)); then
  die "failures as: ${FAILED[*]} (reports in $OUT_DIR)"
fi
say "no server error and no answer outside the document in any run"
