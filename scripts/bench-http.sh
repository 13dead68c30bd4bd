#!/usr/bin/env bash
# Durable HTTP claims/s and latency of `yunquan serve`, measured against an empty axum
# handler (gateway/examples/empty_handler.rs) run the same way by the same script.
#
# Usage: scripts/bench-http.sh [-h]
#
# What it does:
#   1. installs wrk (and jq, curl) if missing - only as root, otherwise it says what to run;
#   2. `cargo build --release` (the server and the empty handler example);
#   3. starts `yunquan serve` on a fresh temporary data directory, creates and publishes a
#      campaign with one tier whose round is live now and whose stock exceeds every claim
#      the runs can make, imports enough residents that no resident claims twice across
#      all runs, and mints their tokens (POST /v1/tokens, 10,000 per request); then
#      restarts the server (a clean stop snapshots every shard; see below);
#   4. starts the empty handler;
#   5. peak runs: BENCH_REPS times, interleaved (empty, then yunquan), wrk with
#      BENCH_THREADS threads, BENCH_CONNECTIONS connections, no pipelining, BENCH_DURATION s;
#   6. paced runs: the same, BENCH_PACED_REPS times, both targets paced to half of
#      yunquan's median peak rate, to read latency away from saturation;
#   7. prints a table (medians of the repetitions, ratios yunquan/empty), the server's
#      group-commit figures per phase (claims per durable write, time per write, share of
#      each shard's time spent writing, from /metrics), writes all of it with every raw run
#      to target/bench-http.json, and checks the server's claim count against wrk's
#      (see "Claim accounting" below).
#
# Why it is built this way:
#   - The machine is shared and noisy (and wrk shares the cores with the server), so an
#     absolute req/s means little from one day to the next. The empty handler runs on the
#     same runtime, route shape, client and cores, alternating with yunquan, so the ratio
#     yunquan/empty is the number to compare across machines and commits. Medians of
#     BENCH_REPS runs, with min..max shown, keep one unlucky run from deciding.
#   - Every claim is durable: the server answers 201 only after its group commit reached
#     the disk (the journal's record log, fdatasync), so req/s is durable claims/s.
#   - Each request carries a different resident's token (scripts/bench/claims.lua), because
#     a resident claims a tier once per round; a repeated token would be a cheap 409, not
#     a claim. A run with non-201 answers does not measure claims and is flagged INVALID.
#   - Pacing: wrk (not wrk2) can only pace closed loop, through the Lua delay() hook: a
#     connection sends its next request only after the previous answer, so when the server
#     stalls, requests that "should" have been sent are simply not sent, and their waiting
#     is not counted. The paced p99 is NOT corrected for coordinated omission; read it as
#     service time at that load, not as user-visible latency.
#   - Claim accounting: wrk stops with up to one request per connection in flight. The
#     server still claims those it had handed to a shard, but wrk never sees the answers,
#     and those cut off earlier (the connection closed) claim nothing. So the check is
#     201s seen <= claimed <= 201s seen + requests in flight (usually claimed equals the
#     upper bound exactly); anything else is a MISMATCH and the script exits non-zero.
#   - Snapshots: a shard writes a full snapshot inline every 1,000,000 events (serve's
#     --snapshot-every-events) and its claims wait meanwhile. The resident import alone
#     brings each shard close to that, so without care the first snapshot always lands in
#     the same run and owns its p99. The restart after setup snapshots every shard, so all
#     runs start alike; a snapshot that still falls inside a run is reported.
#
# Knobs (environment):
#   BENCH_DURATION=10        seconds per wrk run
#   BENCH_CONNECTIONS=64     wrk connections (one request in flight each)
#   BENCH_THREADS=2          wrk threads
#   BENCH_REPS=3             peak repetitions per target
#   BENCH_PACED_REPS=3       paced repetitions per target (0 skips the paced runs)
#   BENCH_EXPECTED_RPS=30000 yunquan claims/s to provision residents for (with 25% headroom);
#                            raise it if the script reports the token pool exhausted
#   BENCH_SERVE_ARGS=""      extra flags for `yunquan serve` (e.g. "--shards 4")
#   BENCH_KEEP=0             1 keeps the temporary data directory and token file
#   BENCH_NO_BUILD=0         1 skips the build and uses the binaries in target/release
# Outputs: the table on stdout, target/bench-http.json, wrk and server logs in
# target/bench-http/. Everything listens on and talks to 127.0.0.1 only.
# Runtime with the defaults: about 3 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
handle_args "$0" BENCH_ "$@"

DURATION=${BENCH_DURATION:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
REPS=${BENCH_REPS:-3}
PACED_REPS=${BENCH_PACED_REPS:-3}
EXPECTED_RPS=${BENCH_EXPECTED_RPS:-30000}
SERVE_ARGS=${BENCH_SERVE_ARGS:-}
KEEP=${BENCH_KEEP:-0}
NO_BUILD=${BENCH_NO_BUILD:-0}
# Tokens a wrk thread takes at a time; a run wastes at most THREADS blocks of tokens.
BLOCK=1000
# Subjects per POST /v1/tokens (the API's cap); residents are provisioned in multiples.
TOKENS_PER_REQUEST=10000
LUA=$ROOT/scripts/bench/claims.lua
OUT_JSON=$ROOT/target/bench-http.json
LOG_DIR=$ROOT/target/bench-http
YUNQUAN=$ROOT/target/release/yunquan
EMPTY=$ROOT/target/release/examples/empty_handler

for v in DURATION CONNECTIONS THREADS REPS PACED_REPS EXPECTED_RPS; do
  if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
    echo "BENCH_$v must be a whole number, got '${!v}'" >&2
    exit 2
  fi
done
if ((REPS < 1 || THREADS < 1 || CONNECTIONS < THREADS || DURATION < 1)); then
  echo "need BENCH_REPS >= 1, BENCH_DURATION >= 1 and BENCH_CONNECTIONS >= BENCH_THREADS >= 1" >&2
  exit 2
fi

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------
missing=()
for tool in wrk jq curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "missing ${missing[*]}: install them first, e.g. 'sudo apt-get update && sudo apt-get install -y ${missing[*]}'"
  fi
fi
[[ $NO_BUILD == 1 ]] || command -v cargo >/dev/null 2>&1 || die "cargo is required (https://rustup.rs)"
# Round times are local Asia/Shanghai wall clock; GNU date computes them.
TZ=Asia/Shanghai date -d '-60 sec' +%FT%T >/dev/null 2>&1 || die "GNU date with time zone data is required"

# --- build -------------------------------------------------------------------------
if [[ $NO_BUILD == 1 ]]; then
  say "BENCH_NO_BUILD=1: using the binaries already in target/release"
else
  say "building (release)"
  # One cargo invocation for both: one feature resolution and one wait for the build
  # lock (other builds may hold it).
  cargo build --release -p yunquan -p yunquan-gateway --bin yunquan --example empty_handler
fi
[[ -x $YUNQUAN && -x $EMPTY ]] || die "build did not produce $YUNQUAN and $EMPTY"

# --- processes and cleanup ---------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/yunquan-bench.XXXXXX")
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
PIDS=()

# Waits up to 30 s for a pid this script sent SIGTERM to, then SIGKILLs it
# (yunquan drains and snapshots on SIGTERM, which takes a moment).
reap() {
  local pid=$1 i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "warning: pid $pid did not stop on SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# On any exit: stops what this script started (only those pids), then removes the
# temporary data.
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    reap "$pid"
  done
  if [[ $KEEP == 1 ]]; then
    echo "kept $WORK (data directory and tokens)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a server in the background and sets BASE to the http://ADDR it prints on its
# first stdout line (port 0 lets the kernel pick a free loopback port).
start_server() {
  local name=$1
  shift
  # Created here, not by the background job's redirection, so the poll below never
  # races the job for their existence.
  : >"$LOG_DIR/$name.stdout"
  : >"$LOG_DIR/$name.stderr"
  "$@" >>"$LOG_DIR/$name.stdout" 2>>"$LOG_DIR/$name.stderr" &
  PIDS+=($!)
  local pid=$!
  BASE=$(wait_listening "$LOG_DIR/$name.stdout" "$pid") ||
    die "$name did not start; see $LOG_DIR/$name.stderr"
}

# api METHOD PATH [curl args...]: prints the body; fails loudly on a non-2xx status.
api() {
  local method=$1 path=$2 body status
  shift 2
  body=$WORK/api-body
  status=$(curl -sS -o "$body" -w '%{http_code}' -X "$method" \
    -H "Authorization: Bearer $MGR" "$@" "$YQ$path") || die "$method $path: curl failed"
  if [[ $status != 2* ]]; then
    die "$method $path answered $status: $(head -c 500 "$body")"
  fi
  cat "$body"
}

# --- yunquan: campaign, residents, tokens ------------------------------------------
# Claims the yunquan runs can make, with 25% headroom: each peak run at most
# EXPECTED_RPS x DURATION, each paced run about half that.
RESIDENTS=$(((EXPECTED_RPS * DURATION * (2 * REPS + PACED_REPS) / 2 * 5 / 4 + TOKENS_PER_REQUEST - 1) / TOKENS_PER_REQUEST * TOKENS_PER_REQUEST))
# Account ids are fixed width (r0000000) so every token has the same length, which lets
# each wrk thread seek to its slice of the token file instead of reading all of it.
((RESIDENTS <= 10000000)) || die "at most 10,000,000 residents (7-digit account ids); lower BENCH_EXPECTED_RPS"
STOCK=$((RESIDENTS > 5000000 ? RESIDENTS : 5000000))
DATA=$WORK/data
TOKENS=$WORK/tokens.txt

say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# start_yunquan LOGNAME: starts `yunquan serve` on $DATA and waits until /readyz says
# every shard is up; sets YQ (base URL) and YQ_PID.
start_yunquan() {
  # RUST_LOG=info: the script reads the shard count and snapshot times from the log.
  # The adaptive in-flight limit is off (a fixed cap far above wrk's connections): a run
  # with any non-201 answer does not measure claims.
  # shellcheck disable=SC2086 # BENCH_SERVE_ARGS is a list of flags
  start_server "$1" env RUST_LOG=info "$YUNQUAN" serve --data "$DATA" --listen 127.0.0.1:0 \
    --request-latency-ms-p90-target 0 $SERVE_ARGS
  YQ=$BASE
  YQ_PID=${PIDS[-1]}
  local i
  for ((i = 0; ; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$YQ/readyz") == 200 ]] && break
    ((i < 600)) || die "yunquan not ready within 60 s; see $LOG_DIR/$1.stderr"
    sleep 0.1
  done
}

say "starting yunquan serve on a fresh data directory ($DATA)"
start_yunquan yunquan-setup
MGR=$("$YUNQUAN" token --data "$DATA" --role manager --subject bench)
# The shard count the server chose (its --shards default is the core count).
SHARDS=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG_DIR/yunquan-setup.stderr" | sed -n 's/.* serving .*shards=\([0-9]*\).*/\1/p' | head -n1)
[[ $SHARDS =~ ^[0-9]+$ ]] || die "cannot find the shard count in $LOG_DIR/yunquan-setup.stderr"

START_AT=$(TZ=Asia/Shanghai date -d '-60 sec' +%FT%T)
END_AT=$(TZ=Asia/Shanghai date -d '+2 hours' +%FT%T)
# budget_fen covers every unit's face value, so the budget never refuses a claim either.
SPEC=$(jq -nc --arg from "$START_AT" --arg until "$END_AT" --argjson stock "$STOCK" '{
  name: "bench-http", funder: "bench", timezone: "Asia/Shanghai",
  budget_fen: ($stock * 1000 * 2),
  rounds: [{"start": $from, "end": $until}],
  tiers: [{name: "10 off", kind: "fixed", discount_fen: 1000, stock: $stock}],
  limits: {per_tier_per_round: 1},
  eligibility: {categories: ["catering"]},
  validity: {kind: "days_after_claim", days: 1}}')
CAMPAIGN=$(api POST /v1/campaigns -H 'content-type: application/json' -d "$SPEC" | jq -r .id)
api POST "/v1/campaigns/$CAMPAIGN/publish" >/dev/null
say "campaign $CAMPAIGN published: one tier, stock $STOCK, round live $START_AT .. $END_AT (Asia/Shanghai)"

say "importing $RESIDENTS residents (enough for ${EXPECTED_RPS} claims/s; BENCH_EXPECTED_RPS)"
t0=$SECONDS
accepted=$(awk -v n="$RESIDENTS" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "{\"account\":\"r%07d\",\"identity_number\":\"BENCH%09d\",\"region\":\"bench\"}\n", i, i
  }' | api POST /v1/residents/import -H 'content-type: application/x-ndjson' --data-binary @- |
  jq -r '.accepted')
[[ $accepted == "$RESIDENTS" ]] || die "resident import accepted $accepted of $RESIDENTS"
say "imported in $((SECONDS - t0)) s; minting their tokens"
t0=$SECONDS
: >"$TOKENS"
for ((first = 0; first < RESIDENTS; first += TOKENS_PER_REQUEST)); do
  jq -nc --argjson a "$first" --argjson b "$((first + TOKENS_PER_REQUEST))" \
    '{role: "resident", ttl_s: 7200, subjects: [range($a; $b) | "r" + ("000000" + tostring)[-7:]]}' |
    api POST /v1/tokens -H 'content-type: application/json' --data-binary @- |
    jq -r '.tokens[]' >>"$TOKENS"
done
minted=$(wc -l <"$TOKENS")
[[ $minted == "$RESIDENTS" ]] || die "minted $minted tokens for $RESIDENTS residents"
widths=$(awk '{ print length }' "$TOKENS" | sort -u | wc -l)
[[ $widths == 1 ]] || die "tokens differ in length; claims.lua needs fixed-width lines"
say "minted $minted tokens in $((SECONDS - t0)) s"

# A shard snapshots its whole state inline every --snapshot-every-events (1,000,000 by
# default) and claims wait meanwhile. The import alone brings each shard close to that,
# so the first snapshot would land in whichever run crosses it (hundreds of ms of stall
# in one run's p99, always the same run). A clean stop snapshots every shard, so a
# restart makes every run start from the same state; any snapshot that still falls in
# a run is reported next to the table.
say "restarting yunquan (a clean stop snapshots the shards, so no run starts near a snapshot)"
kill -TERM "$YQ_PID"
reap "$YQ_PID"
for i in "${!PIDS[@]}"; do
  [[ ${PIDS[i]} == "$YQ_PID" ]] && unset 'PIDS[i]'
done
PIDS=("${PIDS[@]}")
start_yunquan yunquan

say "starting the empty handler"
start_server empty "$EMPTY" 127.0.0.1:0
EMPTY_URL=$BASE

# --- runs --------------------------------------------------------------------------
RESULTS=$LOG_DIR/runs.jsonl
: >"$RESULTS"
CURSOR=0 # first unused token line for yunquan

# The server's group-commit figures (Prometheus counters): journal writes, their events
# and time, and writes slower than 100 ms, so each yunquan run can say how many durable
# writes it took, how big they were, how long the shards spent in them and whether a
# latency spike came from the disk.
journal_counters() {
  curl -s "$YQ/metrics" | awk '
    /^yunquan_journal_sync_seconds_sum /   { ss = $2 }
    /^yunquan_journal_sync_seconds_count / { sc = $2 }
    /^yunquan_journal_batch_events_sum /   { es = $2 }
    /^yunquan_journal_sync_seconds_bucket\{le="0.1"\} / { fast = $2 }
    END { printf "{\"sync_s\":%s,\"writes\":%s,\"events\":%s,\"slow\":%s}\n", ss + 0, sc + 0, es + 0, sc - fast }'
}

# run_wrk PHASE REP TARGET RATE: one wrk run; appends its result to $RESULTS.
run_wrk() {
  local phase=$1 rep=$2 target=$3 rate=$4 url start wrap raw log j0 j1 t0 t1
  if [[ $target == yunquan ]]; then
    url=$YQ start=$CURSOR wrap=0
  else
    # The empty handler ignores the token; reusing tokens keeps request sizes identical.
    url=$EMPTY_URL start=0 wrap=1
  fi
  raw=$WORK/wrk-out.json
  log=$LOG_DIR/$phase-$rep-$target.txt
  : >"$raw"
  sleep 1 # let the previous run's last requests and commits finish
  j0=$(journal_counters)
  t0=$(date +%s.%N)
  # In the background and waited for, so that an interrupted script stops wrk too.
  BENCH_OUT=$raw wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$LUA" "$url" -- \
    "$TOKENS" "$start" "$BLOCK" "$wrap" "$CAMPAIGN" "$rate" "$THREADS" >"$log" 2>&1 &
  PIDS+=($!)
  wait "${PIDS[-1]}" || die "wrk failed for $phase $rep $target; see $log"
  unset 'PIDS[-1]'
  t1=$(date +%s.%N)
  j1=$(journal_counters)
  [[ -s $raw ]] || die "wrk wrote no result for $phase $rep $target; see $log"
  jq -c --arg phase "$phase" --argjson rep "$rep" --arg target "$target" --argjson rate "$rate" \
    --argjson start "$start" --argjson t0 "$t0" --argjson t1 "$t1" --argjson j0 "$j0" --argjson j1 "$j1" \
    --argjson shards "$SHARDS" '
    {phase: $phase, rep: $rep, target: $target, target_rps: $rate, token_start: $start,
     wall_start: $t0, wall_end: $t1} + .
    + if $target == "yunquan" then
        ($j1.writes - $j0.writes) as $w
        | {journal: {writes: $w,
            events_per_write: (if $w > 0 then ($j1.events - $j0.events) / $w else null end),
            sync_ms_mean: (if $w > 0 then ($j1.sync_s - $j0.sync_s) * 1000 / $w else null end),
            shard_time_in_writes: (($j1.sync_s - $j0.sync_s) / ($t1 - $t0) / $shards),
            writes_over_100ms: ($j1.slow - $j0.slow)}}
      else {} end' "$raw" >>"$RESULTS"
  if [[ $target == yunquan ]]; then
    CURSOR=$(jq -r .next_start "$raw")
  fi
  tail -n1 "$RESULTS" | jq -r '"    \(.phase) \(.rep) \(.target): \(.rps | floor) req/s, p50 \(.p50_us / 1000) ms, p99 \(.p99_us / 1000) ms, non-201 \(.other_status), socket errors \(.errors.connect + .errors.read + .errors.write + .errors.timeout)"
    + if .journal == null then ""
      elif .journal.writes == 0 then ", no journal writes"
      else ", \(.journal.writes) journal writes of \(.journal.events_per_write * 10 | round / 10) events, \(.journal.sync_ms_mean * 100 | round / 100) ms each, \(.journal.writes_over_100ms) over 100 ms" end' >&2
}

say "peak: $REPS x (empty, yunquan), wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, no pipelining"
for ((rep = 1; rep <= REPS; rep++)); do
  run_wrk peak "$rep" empty 0
  run_wrk peak "$rep" yunquan 0
done

PACED_RPS=$(jq -s '[.[] | select(.phase == "peak" and .target == "yunquan") | .rps] | sort | .[(length / 2 | floor)] / 2 | floor' "$RESULTS")
if ((PACED_REPS > 0)); then
  say "paced: $PACED_REPS x (empty, yunquan) at $PACED_RPS req/s (half of yunquan's median peak; closed loop)"
  for ((rep = 1; rep <= PACED_REPS; rep++)); do
    run_wrk paced "$rep" empty "$PACED_RPS"
    run_wrk paced "$rep" yunquan "$PACED_RPS"
  done
fi

# --- claim accounting ----------------------------------------------------------------
sleep 1 # the last run's unanswered requests are still being committed
STATS=$(api GET "/v1/campaigns/$CAMPAIGN/stats")
CLAIMED=$(jq '[.tiers[].claimed] | add' <<<"$STATS")
SEEN_201=$(jq -s '[.[] | select(.target == "yunquan") | .created] | add' "$RESULTS")
UNANSWERED=$(jq -s '[.[] | select(.target == "yunquan") | .unanswered] | add' "$RESULTS")
if ((CLAIMED == SEEN_201 + UNANSWERED)); then
  CHECK=exact
  CHECK_MSG="OK: server claimed $CLAIMED = $SEEN_201 201s wrk saw + $UNANSWERED requests in flight when wrk stopped (every request sent was claimed exactly once)"
elif ((CLAIMED >= SEEN_201 && CLAIMED < SEEN_201 + UNANSWERED)); then
  # Requests in flight when wrk exits lose their connection; the server claims those
  # already handed to a shard and drops the rest, so any count in between is correct.
  CHECK=within_in_flight
  CHECK_MSG="OK: server claimed $CLAIMED = $SEEN_201 201s wrk saw + $((CLAIMED - SEEN_201)) of the $UNANSWERED requests in flight when wrk stopped (the others were cut off before reaching a shard)"
else
  CHECK=mismatch
  CHECK_MSG="MISMATCH: the server says claimed $CLAIMED, wrk saw $SEEN_201 x 201 and left $UNANSWERED requests unanswered"
fi

# --- report --------------------------------------------------------------------------
# Shard snapshots are written inline by the shard (it stops claiming meanwhile); note
# which runs they fell into, since one can own a run's p99.
SNAPSHOTS=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG_DIR/yunquan.stderr" | awk '/snapshot saved/ { print $1 }' |
  while read -r at; do date -d "$at" +%s.%N; done | jq -sc .)
jq -s \
  --argjson snapshots "$SNAPSHOTS" \
  --argjson cfg "$(jq -nc --argjson d "$DURATION" --argjson c "$CONNECTIONS" --argjson t "$THREADS" \
    --argjson reps "$REPS" --argjson preps "$PACED_REPS" --argjson residents "$RESIDENTS" \
    --argjson cores "$(nproc)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg serve_args "$SERVE_ARGS" \
    --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    '{duration_s: $d, connections: $c, threads: $t, reps: $reps, paced_reps: $preps, residents: $residents,
      cores: $cores, load_average_end: $load, serve_args: $serve_args, git_head: $commit}')" \
  --argjson paced_rps "$PACED_RPS" \
  --argjson check "$(jq -nc --arg r "$CHECK" --arg m "$CHECK_MSG" --argjson c "$CLAIMED" \
    --argjson s "$SEEN_201" --argjson u "$UNANSWERED" \
    '{result: $r, message: $m, claimed: $c, answered_201: $s, unanswered: $u}')" '
  def median: sort | .[(length / 2 | floor)];
  def stats($runs): {
    runs: ($runs | length),
    rps: {median: ($runs | map(.rps) | median), min: ($runs | map(.rps) | min), max: ($runs | map(.rps) | max)},
    p50_us: ($runs | map(.p50_us) | median),
    p99_us: ($runs | map(.p99_us) | median),
    non_201: ($runs | map(.other_status) | add),
    socket_errors: ($runs | map(.errors.connect + .errors.read + .errors.write + .errors.timeout) | add),
    token_pool_exhausted: ($runs | any(.exhausted)),
    snapshots: ($runs | map(.snapshots // 0) | add)
  } + if ($runs | any((.journal.writes // 0) > 0)) then ($runs | map(select(.journal.writes > 0))) as $runs | {journal: {
    events_per_write: ($runs | map(.journal.events_per_write) | median),
    sync_ms_mean: ($runs | map(.journal.sync_ms_mean) | median),
    shard_time_in_writes: ($runs | map(.journal.shard_time_in_writes) | median),
    writes_over_100ms: ($runs | map(.journal.writes_over_100ms) | add)}} else {} end;
  def phase($p): (map(select(.phase == $p))) as $r
    | if ($r | length) == 0 then null else
        {empty: stats($r | map(select(.target == "empty"))), yunquan: stats($r | map(select(.target == "yunquan")))}
        | . + {ratio_yunquan_over_empty: {
            rps: (.yunquan.rps.median / .empty.rps.median),
            # Each repetition ran empty then yunquan back to back: their ratios show the noise.
            rps_per_rep: [$r[] | select(.target == "yunquan") | . as $y
              | $r[] | select(.target == "empty" and .rep == $y.rep) | $y.rps / .rps],
            p50: (.yunquan.p50_us / .empty.p50_us),
            p99: (.yunquan.p99_us / .empty.p99_us)}}
      end;
  map(if .target == "yunquan" then
        . as $run | . + {snapshots: ([$snapshots[] | select(. >= $run.wall_start and . <= $run.wall_end)] | length)}
      else . end)
  | {config: $cfg, summary: {peak: phase("peak"), paced: (phase("paced") | if . then . + {target_rps: $paced_rps} else . end)},
     claim_check: $check, runs: .}' "$RESULTS" >"$OUT_JSON"

echo
jq -r '
  def ms: . / 1000 | tostring | .[0:6];
  def row($name; $s): [$name, "\($s.rps.median | floor) (\($s.rps.min | floor)..\($s.rps.max | floor))",
    ($s.p50_us | ms), ($s.p99_us | ms), "\($s.non_201)"] | @tsv;
  def r3: . * 1000 | round / 1000 | tostring;
  def ratio($r): ["  yunquan/empty", "\($r.rps | r3) (per rep \($r.rps_per_rep | min | r3)..\($r.rps_per_rep | max | r3))",
    ($r.p50 * 100 | round / 100 | tostring),
    ($r.p99 * 100 | round / 100 | tostring), ""] | @tsv;
  (["target", "req/s median (min..max)", "p50 ms", "p99 ms", "non-201"] | @tsv),
  ("peak, \(.config.connections) connections, median of \(.summary.peak.yunquan.runs)" | [., "", "", "", ""] | @tsv),
  row("  empty"; .summary.peak.empty), row("  yunquan"; .summary.peak.yunquan), ratio(.summary.peak.ratio_yunquan_over_empty),
  (if .summary.paced then
    ("paced to \(.summary.paced.target_rps) req/s, median of \(.summary.paced.yunquan.runs)" | [., "", "", "", ""] | @tsv),
    row("  empty"; .summary.paced.empty), row("  yunquan"; .summary.paced.yunquan), ratio(.summary.paced.ratio_yunquan_over_empty)
   else empty end)
' "$OUT_JSON" | column -t -s $'\t'
echo
jq -r '
  .summary | to_entries[] | select(.value and .value.yunquan.journal) | .key as $p | .value.yunquan.journal
  | "yunquan group commit (\($p), medians): \(.events_per_write * 10 | round / 10) claims per durable write, "
    + "\(.sync_ms_mean * 100 | round / 100) ms per write, each shard inside writes \(.shard_time_in_writes * 100 | round)% of the time"
' "$OUT_JSON"
jq -r '.runs[] | select((.snapshots // 0) > 0)
  | "note: \(.snapshots) shard snapshot(s) during \(.phase) \(.rep) yunquan (p99 \(.p99_us / 1000) ms): a shard writes its whole state inline and claims on it wait"' "$OUT_JSON"
echo "claims check: $CHECK_MSG"
echo "results: $OUT_JSON (every run), wrk output and server logs: $LOG_DIR/"

status=0
if [[ $CHECK == mismatch ]]; then
  echo "!!! CLAIM COUNT MISMATCH: the server's stats disagree with what wrk sent and saw !!!" >&2
  status=1
fi
if jq -e '.runs | any(.target == "yunquan" and .exhausted)' "$OUT_JSON" >/dev/null; then
  echo "!!! INVALID: the token pool ran out, so tokens were reused (409 limit_reached); raise BENCH_EXPECTED_RPS !!!" >&2
  status=1
fi
# A claims run must be claims: a few non-201 (e.g. a 503 while shedding) are reported,
# more than 0.1% of the answers make the run meaningless.
bad_runs=$(jq -r '.runs[] | select(.other_status > .requests / 1000 or (.errors.connect + .errors.read + .errors.write) > 0)
  | "\(.phase) \(.rep) \(.target): \(.other_status) non-201 of \(.requests), socket errors \(.errors), first: \(.first_bad)"' "$OUT_JSON")
if [[ -n $bad_runs ]]; then
  echo "!!! INVALID runs (non-201 answers above 0.1% or socket errors): !!!" >&2
  echo "$bad_runs" >&2
  status=1
fi
exit "$status"
