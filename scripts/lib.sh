# Shell functions shared by the scripts in this folder; source it, do not run it.

# Seconds a started server may take to print its listening line.
LISTENING_DEADLINE_S=60

# show_help SCRIPT: prints the script's header comment (from line 2 to `set -euo
# pipefail`) without the comment marks: the header is the script's documentation.
show_help() {
  sed -n '2,/^set -euo pipefail/p' "$1" | sed '$d' | sed 's/^# \{0,1\}//'
}

# handle_args SCRIPT PREFIX ARGS...: -h/--help shows the help and exits 0; any other
# argument is refused (settings come from PREFIX* environment variables) with exit 2.
handle_args() {
  local script=$1 prefix=$2
  shift 2
  if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    show_help "$script"
    exit 0
  fi
  if [[ $# -gt 0 ]]; then
    echo "usage: $script [-h]   (settings come from ${prefix}* environment variables; see -h)" >&2
    exit 2
  fi
}

# wait_listening STDOUT_FILE PID: waits for the `listening on http://ADDR` line that
# `yunquan serve` (and the bench's empty handler) print once bound, and prints the URL.
# Fails (status 1, a reason on stderr) if the process exits first, if the line does not
# come within LISTENING_DEADLINE_S, or if the address is not on loopback.
wait_listening() {
  local file=$1 pid=$2 i url
  for ((i = 0; i < LISTENING_DEADLINE_S * 10; i++)); do
    url=$(sed -n 's/^listening on //p' "$file" 2>/dev/null | head -n1)
    if [[ -n $url ]]; then
      if [[ $url != http://127.0.0.1:* ]]; then
        echo "the server listens on $url, not on loopback" >&2
        return 1
      fi
      echo "$url"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the server exited before it was listening" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "the server printed no 'listening on' line within $LISTENING_DEADLINE_S s" >&2
  return 1
}

# apt_install PKG...: installs the Debian packages as root with apt-get (and stops the
# services the redis-server and postgresql packages start on their own: the scripts run
# their own servers on free ports). Fails with the command to run when not root.
apt_install() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing $*: install them first, e.g. 'sudo apt-get update && sudo apt-get install -y $*'" >&2
    return 1
  fi
  echo "==> installing $* (apt-get)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  local pkg
  for pkg in "$@"; do
    case $pkg in
      redis-server | postgresql)
        systemctl stop "$pkg" 2>/dev/null || service "$pkg" stop 2>/dev/null || true
        ;;
    esac
  done
}

# pg_bin: the newest installed PostgreSQL's bin directory, empty if there is none.
pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true
}

# free_port: a free TCP port on 127.0.0.1 (the kernel picks it; the caller binds it next).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS COMMAND...: retries COMMAND every 0.1 s until it succeeds (status 1 if
# it never does).
wait_for() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# start_redis DIR LOG PORT ARGS...: starts redis-server on 127.0.0.1:PORT in the background
# with its data in DIR and its log in LOG (extra ARGS such as --appendonly yes), leaves its
# pid in STARTED_PID and waits until it answers PING.
start_redis() {
  local dir=$1 log=$2 port=$3
  shift 3
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize no \
    --protected-mode yes --logfile "$log" "$@" &
  STARTED_PID=$!
  wait_for 30 redis-cli -h 127.0.0.1 -p "$port" ping || {
    echo "redis-server did not answer within 30 s; see $log" >&2
    return 1
  }
}

# start_postgres PG_BIN DIR LOG PORT MAX_CONNECTIONS: makes a cluster in DIR with user
# `bench` (trust) and database `bench`, starts it on 127.0.0.1:PORT with durable commits
# (synchronous_commit and fsync on) in the background, leaves its pid in STARTED_PID and
# waits until it accepts connections. As root it runs as the `postgres` user, since
# PostgreSQL refuses to run as root; DIR's parent must then be readable by that user.
start_postgres() {
  local bin=$1 dir=$2 log=$3 port=$4 conns=$5 as_pg=()
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || {
      echo "running as root needs the 'postgres' user (the postgresql package creates it)" >&2
      return 1
    }
    chown postgres "$dir"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$bin/initdb" -D "$dir" -U bench --auth=trust -E UTF8 >"$log.initdb" 2>&1 || {
    echo "initdb failed; see $log.initdb" >&2
    return 1
  }
  "${as_pg[@]}" "$bin/postgres" -D "$dir" -p "$port" -k "$dir" \
    -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on \
    -c max_connections="$conns" >"$log" 2>&1 &
  STARTED_PID=$!
  wait_for 60 "$bin/pg_isready" -h 127.0.0.1 -p "$port" -U bench || {
    echo "postgres did not come up within 60 s; see $log" >&2
    return 1
  }
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U bench bench
}
