#!/bin/sh
# User and system CPU per thread of the scan bench while one of its rows runs: where a
# small scan's time goes (the client's runtime thread, the mock's, criterion's own), in
# user space and in the kernel. Linux only (/proc); ticks are 1/100 s.
#
#   cargo bench -p icap-benches --bench scan --no-run
#   sh benches/thread_cpu.sh scan_1KiB_x16/icap_client
#   sh benches/thread_cpu.sh scan_1KiB_x16/icap_rs
#   sh benches/thread_cpu.sh scan_1KiB_x16/raw_tcp
#
# The row runs alone with an 8 s measurement; the threads are sampled from its 5th to its
# 8th second (inside the measurement), and the row's throughput is printed after. Per scan:
# ticks * 10 ms / (throughput * WINDOW s). The context switches are counts over the same
# window: a voluntary one is a thread going to sleep (so a wake-up later), an involuntary
# one a thread preempted; per scan: switches / (throughput * WINDOW s).
set -eu
ROW=$1
WINDOW=${WINDOW:-3}
BIN=$(ls -t target/release/deps/scan-* | grep -v '\.d$' | head -1)
OUT=$(mktemp)
"$BIN" --bench --warm-up-time 1 --measurement-time 8 "$ROW" >"$OUT" 2>&1 &
P=$!
sample() {
    for t in /proc/"$P"/task/*; do
        printf '%s %s %s\n' "$(cat "$t/comm")" "$(awk '{print $14, $15}' "$t/stat")" \
            "$(awk '/^voluntary_ctxt_switches/ {v = $2} /^nonvoluntary_ctxt_switches/ {n = $2} END {print v, n}' "$t/status")"
    done
}
sleep 5
A=$(sample)
sleep "$WINDOW"
B=$(sample)
echo "$ROW: user and system ticks per thread over $WINDOW s"
printf '%s\n' "$A" >"$OUT.a"
printf '%s\n' "$B" >"$OUT.b"
paste "$OUT.a" "$OUT.b" | awk '{u = $7 - $2; s = $8 - $3; v = $9 - $4; n = $10 - $5
    if (u + s > 0) printf "  %-18s user %4d  sys %4d  switches %7d voluntary %6d involuntary\n", $1, u, s, v, n}'
wait "$P"
grep -m1 'thrpt:' "$OUT"
rm -f "$OUT" "$OUT.a" "$OUT.b"
