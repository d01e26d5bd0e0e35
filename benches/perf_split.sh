#!/bin/sh
# Where the time of one scan goes, in microseconds per scan: each thread of the scan bench
# (the client's runtime, the server's), split into the kernel and user space, while one
# of its rows runs. `perf record` samples the process on the cpu-clock (no hardware
# counters needed) from the row's 5th to its 8th second, inside its measurement.
#
#   cargo bench -p icap-benches --bench scan --no-run
#   sh benches/perf_split.sh scan_1KiB_x16/icap_client/16
#   sh benches/perf_split.sh scan_1KiB_x16/raw_tcp/16
#
# Per scan: samples * (1 / FREQ s) / (throughput * WINDOW s). Needs `perf` (Debian:
# linux-perf) and perf_event_paranoid <= 2 for a process of one's own.
set -eu
ROW=$1
FREQ=${FREQ:-2000}
WINDOW=${WINDOW:-3}
BIN=$(ls -t target/release/deps/scan-* | grep -v '\.d$' | head -1)
OUT=$(mktemp -d)
"$BIN" --bench --warm-up-time 1 --measurement-time 8 "$ROW" >"$OUT/log" 2>&1 &
P=$!
sleep 5
perf record -q -F "$FREQ" -e cpu-clock -p "$P" -o "$OUT/perf.data" -- sleep "$WINDOW" 2>/dev/null
wait "$P"
THRPT=$(awk '/thrpt:/ {print $4, $5; exit}' "$OUT/log")
# One line per sample: the thread's name, the address, the object it lies in.
perf script -i "$OUT/perf.data" -F comm,ip,dso 2>/dev/null |
    awk -v t="$THRPT" -v f="$FREQ" -v w="$WINDOW" -v row="$ROW" '
        BEGIN {
            split(t, a, " "); rate = a[1]
            if (a[2] ~ /^K/) rate *= 1000; else if (a[2] ~ /^M/) rate *= 1000000
        }
        NF >= 3 {
            side = ($NF == "([kernel.kallsyms])") ? "kernel" : "user"
            n[$1 "/" side]++
        }
        END {
            printf "%s: %.1f k scans/s\n", row, rate / 1000
            for (k in n) {
                us = n[k] / f / (rate * w) * 1e6
                printf "  %-14s %6.2f us per scan\n", k, us
                total += us
            }
            printf "  %-14s %6.2f us per scan\n", "all", total
        }'
rm -rf "$OUT"
