#!/usr/bin/env bash
# The main job in one command: start the mock ICAP antivirus server, run the "ICAP Test"
# (OPTIONS) against it, then scan a clean file and the EICAR test file and show the
# verdicts. Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet -p icap-mock-server -p icap-client
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
work="$(mktemp -d)"
mock=""
cleanup() { [ -n "$mock" ] && kill "$mock" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin/icap-mock-server" --listen 127.0.0.1:0 >"$work/mock.out" 2>"$work/mock.log" &
mock=$!
url=""
for _ in $(seq 100); do
  url="$(grep -o 'icap://[^ ]*' "$work/mock.out" || true)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "mock server did not start:"; cat "$work/mock.log"; exit 1; }
echo "mock ICAP antivirus server: $url"

mkdir "$work/uploads"
printf 'quarterly report, nothing to see\n' >"$work/uploads/report.txt"
# The EICAR test string, assembled here so this script is not itself flagged by scanners.
printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-' 'ANTIVIRUS-TEST-FILE!$H+H*' >"$work/uploads/eicar.com"

echo; echo "== icap-client options $url"
"$bin/icap-client" options "$url"

echo; echo "== icap-client scan (reports only, as clamscan: --remove or --move DIR act on infected files)"
set +e
"$bin/icap-client" scan --no-progress --server "$url" \
  --header "X-FILECLOUD-USER-NAME:alice" "$work/uploads"
code=$?
set -e
echo "exit code $code (0: all clean, 1: something infected, 2: errors)"
[ "$code" -eq 1 ] || { echo "expected exit code 1 (EICAR is infected)"; exit 1; }
