#!/bin/sh
# Instructions per head decode (callgrind `Ir`), for icap-proto and its peers on the proto
# bench's two heads: each row runs N1 and N2 decodes and divides the difference, so setup
# (building the heads, process start) cancels out. Counts do not depend on machine load.
#
#   cargo build --release -p icap-benches --example head_decode_count
#   sh benches/callgrind_heads.sh
set -eu
BIN=${BIN:-target/release/examples/head_decode_count}
N1=${N1:-1000}
N2=${N2:-11000}
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$1" "$2" "$3" 2>&1 |
        sed -n 's/.*Collected : *//p'
}
printf '%-6s %-9s %s\n' head mode 'Ir per decode'
for head in small large; do
    for mode in proto copy peers icaparse; do
        a=$(total "$head" "$N1" "$mode")
        b=$(total "$head" "$N2" "$mode")
        printf '%-6s %-9s %s\n' "$head" "$mode" $(((b - a) / (N2 - N1)))
    done
done
