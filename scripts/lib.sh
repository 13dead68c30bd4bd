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
