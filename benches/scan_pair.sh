#!/bin/sh
# One whole run for paired timing with farm-bench: a mock from BIN, then WHO (client or
# icap-rs, from the same BIN) making ROUNDS rounds of CONNS small scans against it.
#
#   cargo build --release -p icap-benches --example scan_count
#   cp target/release/examples/scan_count /tmp/scan_count_new    # and an older build as _old
#   farm-bench -n 10 --timeout 300 \
#       --vs "sh benches/scan_pair.sh /tmp/scan_count_old client 16 10000" \
#       -- sh benches/scan_pair.sh /tmp/scan_count_new client 16 10000
set -eu
BIN=$1
WHO=$2
CONNS=$3
ROUNDS=$4
D=$(mktemp -d)
"$BIN" mock >"$D/url" &
MOCK=$!
i=0
while [ ! -s "$D/url" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
"$BIN" "$WHO" "$(cat "$D/url")" "$ROUNDS" "$CONNS" task >/dev/null
kill "$MOCK"
wait "$MOCK" 2>/dev/null || true
rm -rf "$D"
