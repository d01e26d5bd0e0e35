#!/bin/sh
# Instructions (callgrind `Ir`) per small scan (1 KiB clean body, one connection), counted
# apart for each side, so that one side's count does not depend on the other's:
#
#   mock     the mock server under callgrind, scanned by icap-client in another process:
#            N1 scans to warm up, counters reset, N2 scans counted;
#   client   icap-client under callgrind against a mock in another process: a run of N1
#            and a run of N2 scans, the difference divided by N2 - N1 (start-up cancels);
#   icap-rs  the same for icap-rs, the peer of benches/scan.rs.
#
# Counts do not depend on machine load.
#
#   cargo build --release -p icap-benches --example scan_count
#   sh benches/callgrind_scan.sh           # prints one line per row
#   KEEP=1 sh benches/callgrind_scan.sh    # keeps the profiles for callgrind_annotate
set -eu
BIN=${BIN:-target/release/examples/scan_count}
N1=${N1:-1000}
N2=${N2:-3000}
OUT=$(mktemp -d)

wait_url() {
    i=0
    while [ ! -s "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    cat "$1"
}

# The mock, counted.
valgrind --tool=callgrind --callgrind-out-file="$OUT/mock.%p" "$BIN" mock >"$OUT/url1" 2>"$OUT/vg.log" &
VG=$!
URL=$(wait_url "$OUT/url1")
"$BIN" client "$URL" "$N1" >/dev/null
callgrind_control -z "$VG" >/dev/null 2>&1
"$BIN" client "$URL" "$N2" >/dev/null
callgrind_control -d "$VG" >/dev/null 2>&1
sleep 1
kill "$VG" 2>/dev/null || true
wait "$VG" 2>/dev/null || true
TOTAL=$(sed -n 's/^summary: *//p; s/^totals: *//p' "$(ls "$OUT"/mock.*.1 | head -1)" | head -1)
# The counted part is N2 scans plus the warm-up scan of the second client run.
echo "mock     Ir per request: $((TOTAL / (N2 + 1)))"

# The clients, counted against a mock that is not.
"$BIN" mock >"$OUT/url2" &
MOCK=$!
URL=$(wait_url "$OUT/url2")
collected() {
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.$3" "$BIN" "$2" "$URL" "$3" 2>&1 |
        sed -n 's/.*Collected : *//p'
}
for who in ${WHO:-client icap-rs}; do
    a=$(collected "$who" "$who" "$N1")
    b=$(collected "$who" "$who" "$N2")
    printf '%-8s Ir per scan: %s\n' "$who" $(((b - a) / (N2 - N1)))
done
kill "$MOCK"
if [ "${KEEP:-0}" = 1 ]; then echo "profiles: $OUT"; else rm -rf "$OUT"; fi
