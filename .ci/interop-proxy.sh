#!/usr/bin/env bash
# icap-mock-server as a recording proxy in front of a real c-icap + ClamAV, then as a replay of that
# recording with c-icap stopped (issue 11). Needs the peers from .ci/install-peers; runs as root
# (.ci/cicap-server.sh needs it).
#
#   1. c-icap (.ci/cicap-server.sh, service avscan) and, in front of it,
#      icap-mock-server --upstream icap://127.0.0.1:CICAP/avscan --record DIR
#   2. the same scans straight to c-icap and through the proxy, with c-icap-client and icap-client:
#      clean, EICAR, EICAR inside a text, preview (default, 16 bytes), no preview, REQMOD, a 5 MiB
#      file (204 and -no204 echo); each scan's verdict (status, threat, echo body digest) must be the
#      same both ways
#   3. c-icap stopped; icap-mock-server --replay DIR: the same scans give the same verdicts again;
#      a file never recorded gets the replay's clear error, not a clean
#   4. icap-mock-server verify-dialect DIR: its report is printed (informational)
#
# Prints one PASS or FAIL line per check; exits non-zero if any check failed. PROXY_KEEP=1 keeps the
# temp dir (logs, the recording).
set -euo pipefail
cd "$(dirname "$0")/.."

keep_var=PROXY_KEEP work_name=interop-proxy
# shellcheck source=.ci/interop-lib.sh
source .ci/interop-lib.sh
stop() { # PID: stop one process we started
  kill -TERM "$1" 2>/dev/null || true
  timeout 10 tail --pid="$1" -f /dev/null 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
}

echo "building icap-mock-server and icap-client"
timeout 1200 cargo build -q -p icap-mock-server -p icap-client
tdir=$(cargo metadata -q --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
mock=$tdir/debug/icap-mock-server
client=$tdir/debug/icap-client

# ---------------------------------------------------------------- samples
www=$work/www
mkdir -p "$www"
base64 -d >"$www/eicar.com" <<<'WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo='
printf 'a clean file for the ICAP proxy tests\n' >"$www/clean.txt"
{
  for i in $(seq 64); do printf 'clean line %03d before the test string: abcdefghijklmnopqrstuvwxyz\n' "$i"; done
  cat "$www/eicar.com"
  printf '\n'
} >"$www/eicar-inside.txt"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$www/big-5m.bin"
printf 'never recorded %s\n' "$RANDOM$RANDOM" >"$www/unrecorded.txt"

# ---------------------------------------------------------------- servers
cicap_port=$(free_port)
.ci/cicap-server.sh "$cicap_port" >"$work/cicap.out" 2>"$work/cicap.log" &
cicap_pid=$!
pids+=("$cicap_pid")
wait_for c-icap "$cicap_pid" 30 grep -q '^ready' "$work/cicap.out"

start_mock() { # NAME ARGS...: starts the mock; sets mock_pid and mock_port
  local name=$1
  shift
  "$mock" --listen 127.0.0.1:0 "$@" >"$work/$name.out" 2>"$work/$name.log" &
  mock_pid=$!
  pids+=("$mock_pid")
  wait_for "$name" "$mock_pid" 30 grep -q '^listening on icap://' "$work/$name.out"
  local url hostport
  url=$(grep -m1 -o 'icap://[^ ]*' "$work/$name.out")
  hostport=${url#icap://}
  hostport=${hostport%%/*}
  mock_port=${hostport##*:}
}
start_mock proxy --upstream "icap://127.0.0.1:$cicap_port/avscan" --record "$work/rec"
proxy_pid=$mock_pid
proxy_port=$mock_port
echo "c-icap on $cicap_port, the proxy on $proxy_port"

# ---------------------------------------------------------------- one verdict per scan
# verdict PORT CASE: prints a one-line verdict for the case against the server on PORT.
verdict() {
  local port=$1 case=$2
  local out=$work/v-$1-$2 rc=0
  case $case in
    cic-*)
      local args=()
      case $case in
        cic-clean) args=(-f "$www/clean.txt" -resp http://origin.test/clean.txt) ;;
        cic-eicar) args=(-f "$www/eicar.com" -resp http://origin.test/eicar.com) ;;
        cic-eicar-inside-w16) args=(-w 16 -f "$www/eicar-inside.txt" -resp http://origin.test/eicar-inside.txt) ;;
        cic-eicar-nopreview) args=(-nopreview -f "$www/eicar.com" -resp http://origin.test/eicar.com) ;;
        cic-clean-nopreview) args=(-nopreview -f "$www/clean.txt" -resp http://origin.test/clean.txt) ;;
        cic-reqmod-eicar) args=(-f "$www/eicar.com" -req http://upload.test/eicar.com) ;;
        cic-big) args=(-f "$www/big-5m.bin" -resp http://origin.test/big-5m.bin) ;;
        cic-big-no204) args=(-no204 -f "$www/big-5m.bin" -resp http://origin.test/big-5m.bin) ;;
      esac
      timeout 60 c-icap-client -i 127.0.0.1 -p "$port" -s avscan -v -o "$out.body" "${args[@]}" \
        >"$out.stdout" 2>"$out.err" || rc=$?
      local status threat digest=-
      status=$(grep -m1 -oE 'ICAP/1.0 [0-9]{3}' "$out.err" || echo none)
      threat=$(grep -m1 -oE 'Threat=[^;]*' "$out.err" || echo -)
      [ -s "$out.body" ] && [ "$case" = cic-big-no204 ] && digest=$(sha256sum <"$out.body" | cut -c1-16)
      echo "rc=$rc $status $threat body=$digest"
      ;;
    ic-*)
      local args=(scan -s "icap://127.0.0.1:$port/avscan" --json --on-infected report --no-progress)
      case $case in
        ic-clean) args+=("$www/clean.txt") ;;
        ic-eicar) args+=("$www/eicar.com") ;;
        ic-eicar-inside) args+=("$www/eicar-inside.txt") ;;
        ic-nopreview) args+=(--preview off "$www/eicar.com") ;;
        ic-reqmod) args+=(--reqmod "$www/eicar.com") ;;
        ic-big) args+=(--max-size 0 "$www/big-5m.bin") ;;
        ic-unrecorded) args+=("$www/unrecorded.txt") ;;
      esac
      timeout 120 "$client" "${args[@]}" >"$out.json" 2>"$out.err" || rc=$?
      python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line).get("report", {})
    names = ",".join(t.get("name", "") for t in r.get("threats", []))
    print(r.get("verdict"), r.get("status"), names or "-")
' "$out.json" 2>/dev/null | tr '\n' ' ' || true
      echo "rc=$rc"
      ;;
  esac
}

cases=(cic-clean cic-eicar cic-eicar-inside-w16 cic-eicar-nopreview cic-clean-nopreview
  cic-reqmod-eicar cic-big cic-big-no204 ic-clean ic-eicar ic-eicar-inside ic-nopreview ic-reqmod ic-big)
declare -A direct
for c in "${cases[@]}"; do
  direct[$c]=$(verdict "$cicap_port" "$c")
  got=$(verdict "$proxy_port" "$c")
  if [ "$got" = "${direct[$c]}" ]; then
    pass "proxy $c: same verdict as c-icap ($got)"
  else
    fail "proxy $c: c-icap said '${direct[$c]}', through the proxy '$got'"
  fi
done
# The verdicts themselves must be the expected ones (a broken c-icap setup would pass the above).
for c in cic-eicar cic-eicar-inside-w16 cic-eicar-nopreview cic-reqmod-eicar; do
  case ${direct[$c]} in *Threat=*) pass "c-icap $c: infected" ;; *) fail "c-icap $c: no threat in '${direct[$c]}'" ;; esac
done
case ${direct[ic-eicar]} in infected*) pass "c-icap ic-eicar: infected" ;; *) fail "c-icap ic-eicar: '${direct[ic-eicar]}'" ;; esac
case ${direct[ic-clean]} in clean*) pass "c-icap ic-clean: clean" ;; *) fail "c-icap ic-clean: '${direct[ic-clean]}'" ;; esac
case ${direct[cic-big-no204]} in *"ICAP/1.0 200"*"body=$(sha256sum <"$www/big-5m.bin" | cut -c1-16)") pass "c-icap cic-big-no204: 200 echo of the 5 MiB file" ;; *) fail "c-icap cic-big-no204: '${direct[cic-big-no204]}'" ;; esac

records=$(find "$work/rec" -name '*.json' | wc -l)
if [ "$records" -ge "${#cases[@]}" ] && ! grep -rl EICAR-STANDARD "$work/rec" >/dev/null; then
  pass "recording: $records exchanges, no body stored"
else
  fail "recording: $records exchanges (or a body was stored)"
fi
peak=$(grep VmHWM "/proc/$proxy_pid/status" | awk '{print $2 " " $3}')
echo "proxy peak RSS after the 5 MiB scans: $peak"

# ---------------------------------------------------------------- transport faults (icap-client)
# Faults that only slow or tear the bytes keep c-icap's verdict; a cut answer must never read as clean.
for spec in "slice=3" "latency=300,jitter=100" "bandwidth_down=20000" "bandwidth_up=20000"; do
  start_mock "tf-${spec%%=*}" --upstream "icap://127.0.0.1:$cicap_port/avscan" --transport-faults "$spec"
  for c in ic-eicar ic-clean; do
    got=$(verdict "$mock_port" "$c")
    if [ "$got" = "${direct[$c]}" ]; then
      pass "transport $spec $c: c-icap's verdict ($got)"
    else
      fail "transport $spec $c: c-icap said '${direct[$c]}', with the fault '$got'"
    fi
  done
  stop "$mock_pid"
done
for spec in "cut_down=12:reset" "cut_down=40:close" "cut_up=60:reset"; do
  start_mock "tf-cut-${spec%%:*}" --upstream "icap://127.0.0.1:$cicap_port/avscan" --transport-faults "$spec"
  for c in ic-eicar ic-clean; do
    got=$(verdict "$mock_port" "$c")
    case $got in
      clean* | infected*) fail "transport $spec $c: a cut answer gave a verdict ('$got')" ;;
      *) pass "transport $spec $c: no verdict from a cut answer ($got)" ;;
    esac
  done
  stop "$mock_pid"
done

# ---------------------------------------------------------------- replay, c-icap stopped
stop "$proxy_pid"
stop "$cicap_pid"
start_mock replay --replay "$work/rec"
replay_port=$mock_port
for c in "${cases[@]}"; do
  got=$(verdict "$replay_port" "$c")
  if [ "$got" = "${direct[$c]}" ]; then
    pass "replay $c: same verdict as c-icap ($got)"
  else
    fail "replay $c: c-icap said '${direct[$c]}', the replay '$got'"
  fi
done
# c-icap-client prints nothing for a 500 and exits 0, so icap-client is the judge here.
got=$(verdict "$replay_port" ic-unrecorded)
case $got in
  clean*) fail "replay of a file never recorded: a silent clean ('$got')" ;;
  *500*) pass "replay of a file never recorded: 500, not clean ($got)" ;;
  *) fail "replay of a file never recorded: '$got'" ;;
esac

# ---------------------------------------------------------------- verify-dialect (report only)
echo "---- icap-mock-server verify-dialect (c-icap dialect vs the recording)"
RUST_LOG=warn timeout 120 "$mock" verify-dialect "$work/rec" --dialect c-icap || true
echo "----"

echo "interop-proxy: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
