#!/usr/bin/env bash
# Regenerates the byte-exact captures in .ci/peers/captures/: Debian's c-icap-client and squid 5.7
# talking to a real c-icap (virus_scan + clamav, .ci/cicap-server.sh), recorded by icap-tap.py.
# Each capture is a pair NAME.request.icap (what the client sent) / NAME.response.icap (what c-icap
# answered), one TCP connection each. Dates, ISTags and squid's request ids differ between runs.
# Usage (as root): .ci/peers/capture-cicap.sh [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/captures}
work=$(mktemp -d /tmp/capture-cicap.XXXXXX)
chmod 755 "$work" # squid drops to the proxy user
pids=()
cleanup() {
  trap '' INT TERM # finish cleaning up even when signalled again
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do timeout 10 tail --pid="$p" -f /dev/null || kill -KILL "$p" 2>/dev/null || true; done
  [ "${CAPTURE_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() { # FILE PID: waits up to 30 s for a "ready" line
  for _ in $(seq 300); do
    grep -q '^ready' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "capture: process $2 died" >&2; return 1; }
    sleep 0.1
  done
  echo "capture: not ready after 30 s" >&2
  return 1
}

icap_port=$(free_port)
"$here/../cicap-server.sh" "$icap_port" >"$work/cicap.out" 2>"$work/cicap.err" &
pids+=($!)
wait_ready "$work/cicap.out" "${pids[-1]}"

# Deterministic samples: a short clean text, the 68-byte EICAR, and EICAR at offset 4096 of a
# 7 KB text (after the first 1024-byte preview, so the verdict comes after 100 Continue).
base64 -d >"$work/eicar.com" <<<'WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo='
printf 'a clean file for the ICAP interoperability captures\n' >"$work/clean.txt"
{ for i in $(seq 64); do printf 'clean line %03d of the text before the test string: abcdefghijklmnopqrstuvwxyz0123\n' "$i"; done
  cat "$work/eicar.com"; printf '\n'
  for i in $(seq 40); do printf 'clean line %03d after the test string: ABCDEFGHIJKLMNOPQRSTUVWXYZ4567890123456789\n' "$i"; done
} >"$work/eicar-inside.txt"

rm -rf "$out"
mkdir -p "$out"
tap() { # NAME: starts a tap in front of c-icap, sets tap_port
  tap_port=$(free_port)
  python3 "$here/icap-tap.py" "$tap_port" "$icap_port" "$work/tap-$1" "$1" >"$work/tap-$1.out" &
  pids+=($!)
  wait_ready "$work/tap-$1.out" "${pids[-1]}"
}
client() { # NAME ARGS...: one c-icap-client run through a fresh tap
  local name=$1
  shift
  tap "$name"
  timeout 30 c-icap-client -i 127.0.0.1 -p "$tap_port" "$@" >/dev/null 2>"$work/$name.client"
  # No wait needed: the tap writes each chunk to its file before passing it on, so whatever the
  # client received is on disk by the time it exits.
  cp "$work/tap-$name/$name-1.request.icap" "$out/cicap-$name.request.icap"
  cp "$work/tap-$name/$name-1.response.icap" "$out/cicap-$name.response.icap"
}

client options-echo -s echo
client options-virus_scan -s virus_scan
client respmod-clean-preview -s virus_scan -f "$work/clean.txt" -resp http://origin.test/clean.txt
client respmod-eicar-preview -s virus_scan -f "$work/eicar.com" -resp http://origin.test/eicar.com
client respmod-clean-nopreview -s virus_scan -nopreview -f "$work/clean.txt" -resp http://origin.test/clean.txt
client respmod-eicar-nopreview -s virus_scan -nopreview -f "$work/eicar.com" -resp http://origin.test/eicar.com
client respmod-eicar-after-preview -s virus_scan -f "$work/eicar-inside.txt" -resp http://origin.test/eicar-inside.txt
client respmod-clean-no204 -s virus_scan -no204 -f "$work/clean.txt" -resp http://origin.test/clean.txt

# squid as the ICAP client: OPTIONS, then RESPMOD of a clean file and of EICAR on persistent
# connections.
tap squid
mkdir -p "$work/squid/www"
chown proxy "$work/squid"
cp "$work/clean.txt" "$work/eicar.com" "$work/squid/www/"
http_port=$(free_port)
origin_port=$(free_port)
sed -e "s|@HTTP_PORT@|$http_port|g" -e "s|@ICAP_URL@|icap://127.0.0.1:$tap_port/avscan|g" \
  -e "s|@WORK@|$work/squid|g" "$here/squid.conf.in" >"$work/squid/squid.conf"
(cd "$work/squid/www" && exec python3 -m http.server --bind 127.0.0.1 "$origin_port") >/dev/null 2>&1 &
pids+=($!)
squid -N -f "$work/squid/squid.conf" >"$work/squid/squid.out" 2>&1 &
pids+=($!)
for i in $(seq 301); do
  [ "$i" -le 300 ] && kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/squid/squid.out" >&2; exit 1; }
  (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$origin_port") 2>/dev/null && break
  sleep 0.1
done
for f in clean.txt eicar.com; do
  timeout 30 curl -s -x "http://127.0.0.1:$http_port" -o /dev/null -w "squid $f %{http_code}\n" \
    "http://127.0.0.1:$origin_port/$f"
done
for f in "$work/tap-squid"/*.icap; do
  cp "$f" "$out/$(basename "$f")"
done
ls -l "$out"
