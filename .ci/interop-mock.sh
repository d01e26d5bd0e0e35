#!/usr/bin/env bash
# Real ICAP clients against icap-mock-server: Debian's c-icap-client and squid 5.7 (as an ICAP
# client, respmod_precache). Needs the peers from .ci/install-peers; runs as root (squid drops to the
# proxy user).
#
#   c-icap-client: OPTIONS; RESPMOD of a clean file (52 B and 40 KB) -> 204; RESPMOD of EICAR (alone and
#     inside an 8 KB text, after the first 1 KiB) -> 200 with X-Infection-Found or X-Virus-ID and an
#     embedded HTTP 403, without the EICAR bytes in what it writes out; each with the default preview
#     (the server's Preview), a 16-byte preview (-w 16: 100 Continue then the rest) and -nopreview;
#     and -no204 on the 40 KB clean file -> 200 echo, byte-identical.
#   squid: a forward proxy whose respmod_precache service is the mock (bypass=0, so an ICAP failure is
#     an HTTP 500, not a pass), an origin (python3 http.server); curl through the proxy: clean files
#     pass byte-identical (200), EICAR files come back as 403 without the EICAR bytes. Files stay
#     under 64 KB (squid 5.7 stalls on larger adapted bodies when the ICAP server holds the whole
#     body before answering).
#
# usage: interop-mock.sh [--against-cicap]
#   --against-cicap  run the same checks against a real c-icap (.ci/cicap-server.sh, service avscan)
#                    instead of the mock: the reference the mock must match.
# ICAP_CAPTURE_DIR=DIR routes every ICAP connection through .ci/peers/icap-tap.py and keeps the bytes
# of both directions in DIR. INTEROP_KEEP=1 keeps the temp dir with all logs.
# Prints one PASS or FAIL line per check; exits non-zero if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=mock
[ "${1:-}" = --against-cicap ] && target=cicap

keep_var=INTEROP_KEEP work_name=interop-mock
# shellcheck source=.ci/interop-lib.sh
source .ci/interop-lib.sh
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
show_log() { # FILE [LINES]
  [ -s "$1" ] || return 0
  echo "---- last lines of $1"
  tail -n "${2:-40}" "$1"
  echo "----"
}

# ---------------------------------------------------------------- the ICAP server under test
if [ "$target" = mock ]; then
  echo "building icap-mock-server"
  timeout 1200 cargo build -q -p icap-mock-server --bin icap-mock-server
  tdir=$(cargo metadata -q --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  "$tdir/debug/icap-mock-server" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
  pids+=($!)
  server_pid=$!
  server_log=$work/server.log
  wait_for "icap-mock-server" "$server_pid" 30 grep -q '^listening on icap://' "$work/server.out"
  url=$(grep -m1 -o 'icap://[^ ]*' "$work/server.out")
  hostport=${url#icap://}
  hostport=${hostport%%/*}
  icap_port=${hostport##*:}
  service=${url#icap://*/}
else
  icap_port=$(free_port)
  .ci/cicap-server.sh "$icap_port" >"$work/server.out" 2>"$work/server.log" &
  pids+=($!)
  server_pid=$!
  server_log=$work/server.log
  wait_for "c-icap" "$server_pid" 30 grep -q '^ready' "$work/server.out"
  service=avscan
fi
echo "ICAP server under test: $target, icap://127.0.0.1:$icap_port/$service"

# Clients talk to client_port: the server itself, or a capturing tap in front of it.
client_port=$icap_port
if [ -n "${ICAP_CAPTURE_DIR:-}" ]; then
  client_port=$(free_port)
  python3 .ci/peers/icap-tap.py "$client_port" "$icap_port" "$ICAP_CAPTURE_DIR" >"$work/tap.out" &
  pids+=($!)
  wait_for "icap-tap" "${pids[-1]}" 10 grep -q '^ready' "$work/tap.out"
  echo "capturing ICAP traffic into $ICAP_CAPTURE_DIR"
fi

# ---------------------------------------------------------------- samples (all under 64 KB)
mkdir -p "$work/www"
www=$work/www
base64 -d >"$www/eicar.com" <<<'WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo='
eicar_hex=$(od -An -v -tx1 "$www/eicar.com" | tr -d ' \n')
printf 'a clean file for the ICAP interoperability tests\n' >"$www/clean.txt"
head -c 40000 /dev/urandom >"$www/clean-40k.bin"
{
  for i in $(seq 64); do printf 'clean line %03d before the test string: abcdefghijklmnopqrstuvwxyz\n' "$i"; done
  cat "$www/eicar.com"
  printf '\n'
  for i in $(seq 40); do printf 'clean line %03d after the test string: ABCDEFGHIJKLMNOPQRSTUVWXYZ\n' "$i"; done
} >"$www/eicar-inside.txt"
size_of() { if [ -f "$1" ]; then wc -c <"$1"; else echo 0; fi; }
has_eicar() { [ -f "$1" ] && od -An -v -tx1 "$1" | tr -d ' \n' | grep -q "$eicar_hex"; }

# ---------------------------------------------------------------- c-icap-client
n=0
# cic NAME ARGS...: runs c-icap-client (30 s bound); leaves $out (its -o file) and $err (its report,
# which it prints on stderr) and sets $rc.
cic() {
  local name=$1
  shift
  n=$((n + 1))
  out=$work/cic-$n-$name.out
  err=$work/cic-$n-$name.err
  rc=0
  timeout 30 c-icap-client -i 127.0.0.1 -p "$client_port" -s "$service" -v -o "$out" "$@" \
    >"$work/cic-$n-$name.stdout" 2>"$err" || rc=$?
}
threat_of() { grep -oE 'Threat=[^;]*|X-Virus-ID: .*|X-Infection-Found: .*' "$1" | head -1 || true; }
report_fail() { # NAME WHY
  fail "c-icap-client $1: $2 (exit $rc)"
  sed 's/^/    | /' "$err" | head -40
}

cic options
if [ $rc -eq 0 ] && grep -q 'ICAP/1.0 200' "$err" && grep -qE 'Methods:.*RESPMOD' "$err" &&
  grep -q 'Allow 204: Yes' "$err" && grep -qE 'Preview: [0-9]+' "$err"; then
  pass "c-icap-client OPTIONS: 200, Methods with RESPMOD, Allow 204, $(grep -m1 -oE 'Preview: [0-9]+' "$err")"
else
  report_fail OPTIONS "expected 200 with Methods: RESPMOD, Allow: 204 and Preview"
fi

for mode in preview preview16 nopreview; do
  case $mode in
    preview) margs=() ;;
    preview16) margs=(-w 16) ;;
    nopreview) margs=(-nopreview) ;;
  esac
  for f in clean.txt clean-40k.bin; do
    cic "$mode-$f" "${margs[@]}" -f "$www/$f" -resp "http://origin.test/$f"
    if [ $rc -eq 0 ] && grep -q 'ICAP/1.0 204' "$err"; then
      pass "c-icap-client RESPMOD $f ($mode): 204"
    else
      report_fail "RESPMOD $f ($mode)" "expected ICAP 204"
    fi
  done
  for f in eicar.com eicar-inside.txt; do
    cic "$mode-$f" "${margs[@]}" -f "$www/$f" -resp "http://origin.test/$f"
    threat=$(threat_of "$err")
    if [ $rc -ne 0 ]; then
      report_fail "RESPMOD $f ($mode)" "c-icap-client failed"
    elif ! grep -qE 'ICAP/1.0 200' "$err"; then
      report_fail "RESPMOD $f ($mode)" "expected ICAP 200"
    elif [ -z "$threat" ]; then
      report_fail "RESPMOD $f ($mode)" "no X-Infection-Found / X-Virus-ID threat header"
    elif ! grep -qE 'HTTP/1.[01] 403' "$err"; then
      report_fail "RESPMOD $f ($mode)" "no embedded HTTP 403"
    elif has_eicar "$out"; then
      report_fail "RESPMOD $f ($mode)" "the EICAR bytes came back in the adapted body"
    else
      pass "c-icap-client RESPMOD $f ($mode): 200 + embedded 403, $threat"
    fi
  done
done

cic no204-clean-40k.bin -no204 -f "$www/clean-40k.bin" -resp http://origin.test/clean-40k.bin
if [ $rc -eq 0 ] && grep -q 'ICAP/1.0 200' "$err" && cmp -s "$out" "$www/clean-40k.bin"; then
  pass "c-icap-client RESPMOD clean-40k.bin (-no204): 200 echo, body byte-identical"
else
  report_fail "RESPMOD clean-40k.bin (-no204)" "expected ICAP 200 echoing the body unchanged ($(size_of "$out") bytes written)"
fi

# ---------------------------------------------------------------- squid as the ICAP client
origin_port=$(free_port)
(cd "$www" && exec python3 -m http.server --bind 127.0.0.1 "$origin_port") >"$work/origin.log" 2>&1 &
pids+=($!)
wait_for "origin http.server" "${pids[-1]}" 10 port_open "$origin_port"

mkdir -p "$work/squid"
chown proxy "$work/squid"
http_port=$(free_port)
sed -e "s|@HTTP_PORT@|$http_port|g" -e "s|@ICAP_URL@|icap://127.0.0.1:$client_port/$service|g" \
  -e "s|@WORK@|$work/squid|g" .ci/peers/squid.conf.in >"$work/squid/squid.conf"
squid -N -f "$work/squid/squid.conf" >"$work/squid/squid.out" 2>&1 &
pids+=($!)
squid_pid=$!
wait_for "squid" "$squid_pid" 30 port_open "$http_port"

fetch() { # FILE: sets $code and $got
  got=$work/squid-$1.out
  code=$(timeout 40 curl -s -o "$got" -w '%{http_code}' --max-time 30 -x "http://127.0.0.1:$http_port" \
    "http://127.0.0.1:$origin_port/$1") || true
}
squid_fail() {
  fail "$1"
  show_log "$work/squid/cache.log" 15 | sed 's/^/    | /'
}
for round in 1 2; do # the second round reuses squid's persistent ICAP connection
  for f in clean.txt clean-40k.bin; do
    fetch "$f"
    if [ "$code" = 200 ] && cmp -s "$got" "$www/$f"; then
      pass "squid round $round: $f passes, 200, byte-identical ($(size_of "$got") bytes)"
    else
      squid_fail "squid round $round: $f: expected 200 byte-identical, got HTTP ${code:-none}, $(size_of "$got") bytes"
    fi
  done
  for f in eicar.com eicar-inside.txt; do
    fetch "$f"
    if [ "$code" = 403 ] && ! has_eicar "$got"; then
      pass "squid round $round: $f blocked, 403 ($(size_of "$got") bytes of block page)"
    else
      squid_fail "squid round $round: $f: expected 403 without the EICAR bytes, got HTTP ${code:-none}$(has_eicar "$got" && echo ', EICAR delivered')"
    fi
  done
done
kill -0 "$server_pid" 2>/dev/null && pass "ICAP server still running after all clients" ||
  fail "ICAP server exited during the tests"

echo "interop ($target): $passes passed, $fails failed"
if [ $fails -gt 0 ]; then
  show_log "$server_log" 60
  exit 1
fi
