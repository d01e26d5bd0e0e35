# What the interop scripts share (sourced, not run): their temp dir and child processes,
# cleanup on exit or signal, PASS/FAIL counting, free ports and waiting for a child to be
# ready. The sourcing script sets `keep_var` (the variable that keeps the temp dir) and
# `work_name` before sourcing.
work=$(mktemp -d "/tmp/${work_name:?}.XXXXXX")
chmod 755 "$work" # squid and c-icap run as other users
pids=()
fails=0
passes=0

cleanup() {
  trap '' INT TERM # finish cleaning up even when signalled again
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
  done
  if [ "${!keep_var:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

pass() { passes=$((passes + 1)); echo "PASS $*"; }
fail() { fails=$((fails + 1)); echo "FAIL $*"; }
die() { echo "FAIL $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_for WHAT PID SECONDS COMMAND...: polls COMMAND every 0.1 s while PID lives.
wait_for() {
  local what=$1 pid=$2 secs=$3 i
  shift 3
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || die "$what: exited before it was ready"
    sleep 0.1
  done
  die "$what: not ready after ${secs} s"
}
