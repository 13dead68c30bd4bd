#!/usr/bin/env bash
# Overload run: the Guizhou round at a sustainable load, then the same round with five
# times the contenders in the same first-seconds burst (5x the offered claim rate),
# each against a fresh `yunquan serve` with the same in-flight cap. Prints, per phase,
# the offered rate, what was granted and shed, the latency of executed and of shed
# (503) replies, the server's peak memory and the audit verdict.
#
# Usage: scripts/overload.sh [-h]
#
# What "accepted requests keep their latency" means here: the server's own latency of the
# claims it executed (yunquan_claim_duration_seconds from /metrics, read at the end of each
# phase; bucket bounds, so "<= 25 ms" means the quantile falls in the bucket ending there)
# should stay near the sustainable phase's at 5x, because excess load is shed with 503
# `overloaded` (and Retry-After) before it reaches a shard. The load generator's latencies
# are measured from each request's intended send time, so once the offered load exceeds what
# its connections carry they include its own queue as well (coordinated omission counted).
#
# Knobs (environment):
#   OVERLOAD_SCALE=0.02        scale of the sustainable phase; the overload phase runs 5x it
#   OVERLOAD_FACTOR=5          how many times the contenders of the sustainable phase
#   OVERLOAD_CAP=256           the server's --requests-in-flight-max in both phases
#   OVERLOAD_CONNECTIONS=1024  the load generator's requests in flight at most
#   OVERLOAD_NO_BUILD=0        1 uses target/release/yunquan as it is
#   OVERLOAD_SERVE_ARGS=""     extra flags for `yunquan serve` in both phases, e.g.
#                              "--request-latency-ms-p90-target 0" for a fixed cap
#   OVERLOAD_SERVER_CPUS=""    CPU list for the server (taskset -c), e.g. 0
#   OVERLOAD_LOADGEN_CPUS=""   CPU list for the load generator, e.g. 1; with both set, the
#                              load generator cannot take the server's cores
# Outputs: the table on stdout; report.json of each phase and the server logs in
# target/overload/. Everything listens on and talks to 127.0.0.1 only; each phase is
# bounded by the scenario (a fixed number of contenders and retries).
# Runtime with the defaults: about 4 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
handle_args "$0" OVERLOAD_ "$@"

SCALE=${OVERLOAD_SCALE:-0.02}
FACTOR=${OVERLOAD_FACTOR:-5}
CAP=${OVERLOAD_CAP:-256}
CONNECTIONS=${OVERLOAD_CONNECTIONS:-1024}
NO_BUILD=${OVERLOAD_NO_BUILD:-0}
read -r -a SERVE_ARGS <<<"${OVERLOAD_SERVE_ARGS:-}"
SERVER_CPUS=${OVERLOAD_SERVER_CPUS:-}
LOADGEN_CPUS=${OVERLOAD_LOADGEN_CPUS:-}
SERVER_PIN=()
LOADGEN_PIN=()
if [[ -n $SERVER_CPUS || -n $LOADGEN_CPUS ]]; then
  command -v taskset >/dev/null 2>&1 || { echo "taskset (util-linux) is required to pin CPUs" >&2; exit 1; }
fi
[[ -n $SERVER_CPUS ]] && SERVER_PIN=(taskset -c "$SERVER_CPUS")
[[ -n $LOADGEN_CPUS ]] && LOADGEN_PIN=(taskset -c "$LOADGEN_CPUS")
BIN=$ROOT/target/release/yunquan
OUT=$ROOT/target/overload
SCENARIO=$ROOT/scenarios/guizhou-flash-round.toml

command -v python3 >/dev/null 2>&1 || { echo "python3 is required to read the reports" >&2; exit 1; }
command -v curl >/dev/null 2>&1 || { echo "curl is required to read /metrics" >&2; exit 1; }
if [[ $NO_BUILD != 1 ]]; then
  cargo build --release --bin yunquan
fi
[[ -x $BIN ]] || { echo "no $BIN: build first" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
TMP=$(mktemp -d -t yunquan-overload.XXXXXX)
SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
  if [[ -n $SERVER_PID ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# Runs one phase at `scale` and leaves its report and peak RSS in $OUT.
phase() {
  local name=$1 scale=$2 data=$TMP/$1 addr token
  mkdir -p "$data"
  "${SERVER_PIN[@]}" "$BIN" serve --data "$data" --listen 127.0.0.1:0 --requests-in-flight-max "$CAP" \
    "${SERVE_ARGS[@]}" \
    >"$OUT/$name-serve.out" 2>"$OUT/$name-serve.log" &
  SERVER_PID=$!
  addr=$(wait_listening "$OUT/$name-serve.out" "$SERVER_PID") ||
    { cat "$OUT/$name-serve.log" >&2; exit 1; }
  token=$("$BIN" token --data "$data" --role manager --subject overload)
  # Peak resident memory of the server, sampled every 200 ms.
  (peak=0; while kill -0 "$SERVER_PID" 2>/dev/null; do
     rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
     ((rss > peak)) && peak=$rss && echo "$peak" >"$OUT/$name-rss-peak-kib"
     sleep 0.2
   done) &
  SAMPLER_PID=$!
  echo "==> $name: scale $scale against $addr (in-flight cap $CAP, $CONNECTIONS connections)"
  set +e
  "${LOADGEN_PIN[@]}" "$BIN" loadgen --scenario "$SCENARIO" --target "$addr" --scale "$scale" --token "$token" \
    --connections "$CONNECTIONS" --report "$OUT/$name-report.json" >"$OUT/$name-loadgen.out" 2>&1
  local rc=$?
  set -e
  curl -s "$addr/metrics" >"$OUT/$name-metrics.txt" || true
  kill "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  echo "    loadgen exit code $rc (0: audit passed)"
  return 0
}

phase sustainable "$SCALE"
phase overload "$(python3 -c "print($SCALE * $FACTOR)")"

python3 - "$OUT" "$FACTOR" <<'PY'
import json, sys, os
out, factor = sys.argv[1], sys.argv[2]
rows = []
ok = True

def server_quantiles(path, name="yunquan_claim_duration_seconds"):
    # Cumulative Prometheus buckets -> the bucket bound each quantile falls in, in ms.
    buckets = []
    if not os.path.exists(path):
        return ("?", "?")
    for line in open(path):
        if line.startswith(name + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return ("?", "?")
    total = buckets[-1][1]
    def q(x):
        for le, n in buckets:
            if n >= x * total:
                return "<=%g" % (le * 1000) if le != float("inf") else ">5000"
    return (q(0.5), q(0.99))

for name in ("sustainable", "overload"):
    path = os.path.join(out, f"{name}-report.json")
    if not os.path.exists(path):
        print(f"{name}: no report (see {out}/{name}-loadgen.out)"); ok = False; continue
    r = json.load(open(path))
    c = r["claims"]
    peak = open(os.path.join(out, f"{name}-rss-peak-kib")).read().strip() if os.path.exists(os.path.join(out, f"{name}-rss-peak-kib")) else "0"
    other_errors = c["errors"] - c.get("overloaded", 0)
    ok = ok and r["audit"]["ok"] and other_errors == 0
    rows.append((name, r["scale"], c["attempted"], c["granted"], c.get("overloaded", 0), other_errors,
                 c["per_second"], c.get("executed_latency_ms", {}).get("p50", 0), c.get("executed_latency_ms", {}).get("p99", 0),
                 c.get("shed_latency_ms", {}).get("p99", 0), int(peak) // 1024, r["audit"]["ok"],
                 server_quantiles(os.path.join(out, f"{name}-metrics.txt"))))
print(f"\nclaims, same scenario and burst shape, overload phase = {factor}x the contenders")
print(f"{'phase':<12} {'scale':>6} {'attempted':>10} {'granted':>8} {'shed 503':>9} {'other err':>9} {'claims/s':>9} {'srv p50':>8} {'srv p99':>8} {'exec p50':>9} {'exec p99':>9} {'shed p99':>9} {'RSS MiB':>8} audit")
for row in rows:
    print(f"{row[0]:<12} {row[1]:>6} {row[2]:>10} {row[3]:>8} {row[4]:>9} {row[5]:>9} {row[6]:>9.0f} {row[12][0]:>8} {row[12][1]:>8} {row[7]:>9.2f} {row[8]:>9.2f} {row[9]:>9.2f} {row[10]:>8} {'ok' if row[11] else 'FAILED'}")
print("(ms; srv = the server's latency of the claims it executed, from /metrics buckets;")
print(" exec and shed = the load generator's latency of executed and of 503 replies, from intended send time)")
sys.exit(0 if ok else 1)
PY
