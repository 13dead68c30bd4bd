#!/usr/bin/env bash
# Flash-sale claims side by side: yunquan (over HTTP, and in process without HTTP)
# against the two designs in use today, on the same workload:
#   - Redis with a Lua script (check the person's set, check and decrement stock, add
#     the person), once with no persistence and once with appendfsync everysec;
#   - PostgreSQL with one hot stock row and a claim row with UNIQUE (person, round),
#     one transaction per claim, synchronous_commit=on and fsync=on (durable).
#
# Usage: scripts/bench-compare.sh [-h]
#
# What it does:
#   1. installs redis-server, postgresql, jq, curl and librsvg2-bin if missing (only as
#      root, with apt-get; otherwise it says what to run);
#   2. `cargo build --release`;
#   3. starts, each on a free 127.0.0.1 port with its data in one temporary directory:
#      two Redis servers (`--save "" --appendonly no`; `--appendonly yes --appendfsync
#      everysec`), a PostgreSQL cluster made by initdb (run as the `postgres` user when
#      this script is root, since PostgreSQL refuses to run as root), and
#      `yunquan serve` on a fresh data directory;
#   4. runs `yunquan compare` once against all of them: every target gets the same
#      persons, stock, order of claims and number of clients (one connection and one
#      request in flight each, no pipelining); BENCH_REPS closed-loop runs per target,
#      interleaved (all targets, then all again); then, with the other targets let go
#      (connections closed, so PostgreSQL's backends exit), yunquan-http paced at
#      fractions of its median peak for the latency-vs-offered-load curve, each rate
#      followed by Redis without persistence at the same rate (what the machine and the
#      load generator add by themselves);
#   5. each run's correctness is read back from the target's own store (coupons
#      exported by yunquan, SCARD/SMEMBERS and the counter in Redis, COUNT(*) and
#      COUNT(DISTINCT person) and the stock row in PostgreSQL): granted must equal
#      min(stock, distinct persons who asked), nobody twice, stock accounted for;
#   6. prints the table, writes target/bench-compare.json and target/bench-compare.svg
#      (and target/bench-compare.png when rsvg-convert is there), and stops everything
#      it started, whatever happens (trap).
#
# Knobs (environment):
#   BENCH_PERSONS=50000      distinct persons (each grabs once)
#   BENCH_STOCK=40000        units per round (below BENCH_PERSONS so every round sells out)
#   BENCH_REPEAT=0.1         second grabs as a fraction of persons (must meet the limit)
#   BENCH_CLIENTS=64         concurrent clients per target
#   BENCH_REPS=3             closed-loop runs per target, interleaved
#   BENCH_SWEEP=0.1,0.25,0.5,0.75,0.9   offered loads of the curve (fractions of peak;
#                            empty skips the curve)
#   BENCH_SWEEP_S=3          seconds per paced run of the curve
#   BENCH_TARGETS="yunquan-http yunquan-inprocess redis-none redis-aof postgres"
#                            which targets to run
#   BENCH_SERVE_ARGS=""      extra flags for `yunquan serve` (e.g. "--shards 4")
#   BENCH_KEEP=0             1 keeps the temporary directory (data and logs)
# Outputs: the table on stdout, target/bench-compare.{json,svg,png}, server logs in
# target/bench-compare/. Everything listens on and talks to 127.0.0.1 only.
# Runtime with the defaults: about 5 minutes after the build (PostgreSQL's runs are
# most of it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
handle_args "$0" BENCH_ "$@"

PERSONS=${BENCH_PERSONS:-50000}
STOCK=${BENCH_STOCK:-40000}
REPEAT=${BENCH_REPEAT:-0.1}
CLIENTS=${BENCH_CLIENTS:-64}
REPS=${BENCH_REPS:-3}
SWEEP=${BENCH_SWEEP-0.1,0.25,0.5,0.75,0.9}
SWEEP_S=${BENCH_SWEEP_S:-3}
TARGETS=${BENCH_TARGETS:-yunquan-http yunquan-inprocess redis-none redis-aof postgres}
SERVE_ARGS=${BENCH_SERVE_ARGS:-}
KEEP=${BENCH_KEEP:-0}
YUNQUAN=$ROOT/target/release/yunquan
LOG_DIR=$ROOT/target/bench-compare
OUT_JSON=$ROOT/target/bench-compare.json
OUT_SVG=$ROOT/target/bench-compare.svg
OUT_PNG=$ROOT/target/bench-compare.png

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
wants() { [[ " $TARGETS " == *" $1 "* ]]; }

# --- tools -------------------------------------------------------------------------
PG_BIN=$(pg_bin)
missing=()
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v rsvg-convert >/dev/null 2>&1 || missing+=(librsvg2-bin)
if wants redis-none || wants redis-aof; then
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
fi
if wants postgres; then
  [[ -n $PG_BIN && -x $PG_BIN/initdb ]] || missing+=(postgresql)
fi
if ((${#missing[@]} > 0)); then
  apt_install "${missing[@]}" || exit 1
  PG_BIN=$(pg_bin)
fi
command -v cargo >/dev/null 2>&1 || die "cargo is required (https://rustup.rs)"

# --- build -------------------------------------------------------------------------
say "building (release)"
cargo build --release -p yunquan --bin yunquan
[[ -x $YUNQUAN ]] || die "build did not produce $YUNQUAN"

# --- processes and cleanup ---------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/yunquan-compare.XXXXXX")
# PostgreSQL runs as its own user and must be able to reach its directory.
chmod 755 "$WORK"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
PIDS=()

# Stops what this script started (only those pids), then removes the temporary data.
cleanup() {
  local rc=$? pid i
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "warning: pid $pid did not stop on SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ $KEEP == 1 ]]; then
    echo "kept $WORK (data directories)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ARGS=()

# --- Redis -------------------------------------------------------------------------
redis_target() {
  local name=$1 port
  shift
  port=$(free_port) || die "python3 is needed to pick a free port"
  start_redis "$WORK/$name" "$LOG_DIR/$name.log" "$port" "$@" || exit 1
  PIDS+=("$STARTED_PID")
  ARGS+=(--redis "redis://127.0.0.1:$port")
  say "$name on 127.0.0.1:$port ($*)"
}
if wants redis-none; then
  redis_target redis-none --save "" --appendonly no
fi
if wants redis-aof; then
  redis_target redis-aof --save "" --appendonly yes --appendfsync everysec
fi

# --- PostgreSQL --------------------------------------------------------------------
if wants postgres; then
  PG_PORT=$(free_port) || die "python3 is needed to pick a free port"
  # Durable like yunquan: a commit returns only after its WAL is flushed to disk.
  start_postgres "$PG_BIN" "$WORK/pg" "$LOG_DIR/postgres.log" "$PG_PORT" $((CLIENTS + 20)) || exit 1
  PIDS+=("$STARTED_PID")
  ARGS+=(--postgres "postgres://bench@127.0.0.1:$PG_PORT/bench")
  say "postgres on 127.0.0.1:$PG_PORT (synchronous_commit=on, fsync=on)"
fi

# --- yunquan -----------------------------------------------------------------------
if wants yunquan-http; then
  DATA=$WORK/yunquan
  # The adaptive in-flight limit is off (a fixed cap of 4,096, far above the clients): a
  # 503 counts as an error in this comparison, and no other target sheds load.
  # shellcheck disable=SC2086 # BENCH_SERVE_ARGS is a list of flags
  "$YUNQUAN" serve --data "$DATA" --listen 127.0.0.1:0 --request-latency-ms-p90-target 0 $SERVE_ARGS \
    >"$LOG_DIR/yunquan.stdout" 2>"$LOG_DIR/yunquan.log" &
  PIDS+=($!)
  YQ=$(wait_listening "$LOG_DIR/yunquan.stdout" "${PIDS[-1]}") ||
    die "yunquan serve did not start; see $LOG_DIR/yunquan.log"
  wait_for 60 curl -fs "$YQ/readyz" || die "yunquan serve was not ready within 60 s; see $LOG_DIR/yunquan.log"
  YUNQUAN_TOKEN=$("$YUNQUAN" token --data "$DATA" --role manager --subject bench)
  export YUNQUAN_TOKEN
  ARGS+=(--yunquan-http "$YQ")
  say "yunquan serve on $YQ (data $DATA)"
fi
if wants yunquan-inprocess; then
  ARGS+=(--yunquan-inprocess)
fi

# --- the comparison ----------------------------------------------------------------
say "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "running: yunquan compare ${ARGS[*]} (persons $PERSONS, stock $STOCK, clients $CLIENTS, reps $REPS)"
status=0
# In the background and waited for, so an interrupt reaches the trap (and stops it too).
"$YUNQUAN" compare "${ARGS[@]}" --persons "$PERSONS" --stock "$STOCK" \
  --repeat-fraction "$REPEAT" --clients "$CLIENTS" --reps "$REPS" --sweep "$SWEEP" \
  --sweep-duration-s "$SWEEP_S" --json "$OUT_JSON" --svg "$OUT_SVG" &
COMPARE_PID=$!
PIDS+=("$COMPARE_PID")
wait "$COMPARE_PID" || status=$?
if [[ -s $OUT_SVG ]] && command -v rsvg-convert >/dev/null 2>&1; then
  rsvg-convert -o "$OUT_PNG" "$OUT_SVG" && echo "picture: $OUT_PNG"
fi
if ((status != 0)); then
  echo "!!! yunquan compare exited $status: a run was incorrect or a target failed (see above) !!!" >&2
fi
exit "$status"
