#!/bin/sh
# Instructions (callgrind `Ir`) the mock server spends per small scan: the mock runs under
# callgrind, the client (another process, not counted) scans a 1 KiB clean body N1 times
# to warm up, the counters are dumped and reset, then N2 more scans are counted alone.
# Counts do not depend on machine load.
#
#   cargo build --release -p icap-benches --example scan_count
#   sh benches/callgrind_mock.sh            # prints "Ir per request: ..."
#   KEEP=1 sh benches/callgrind_mock.sh     # keeps the profile for callgrind_annotate
set -eu
BIN=${BIN:-target/release/examples/scan_count}
N1=${N1:-500}
N2=${N2:-3000}
OUT=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" "$BIN" mock >"$OUT/url" 2>"$OUT/vg.log" &
VG=$!
i=0
while [ ! -s "$OUT/url" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
URL=$(cat "$OUT/url")
"$BIN" client "$URL" "$N1" >/dev/null
callgrind_control -z "$VG" >/dev/null 2>&1
"$BIN" client "$URL" "$N2" >/dev/null
callgrind_control -d "$VG" >/dev/null 2>&1
sleep 1
kill "$VG" 2>/dev/null || true
wait "$VG" 2>/dev/null || true
PROFILE=$(ls "$OUT"/cg.*.1 | head -1)
TOTAL=$(sed -n 's/^summary: *//p; s/^totals: *//p' "$PROFILE" | head -1)
# The counted part is N2 scans plus one warm-up scan of the second client run.
echo "Ir per request: $((TOTAL / (N2 + 1)))  ($TOTAL over $((N2 + 1)) requests)"
if [ "${KEEP:-0}" = 1 ]; then echo "profile: $PROFILE"; else rm -rf "$OUT"; fi
