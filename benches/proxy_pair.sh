#!/bin/bash
# One whole run for paired timing with farm-bench: a mock (the scan_count example) as the
# upstream, PROXY (an icap-mock-server binary) in front of it keeping 32 idle upstream
# connections, journal and body digests off, then the scan_count client making ROUNDS rounds
# of CONNS small scans through the proxy.
#
#   cargo build --release -p icap-benches --example scan_count
#   cargo build --release -p icap-mock-server && cp target/release/icap-mock-server /tmp/mock_new
#   # and an older build as /tmp/mock_old, then:
#   farm-bench -n 10 --timeout 900 --vs "bash benches/proxy_pair.sh /tmp/mock_old 16 2000" \
#       -- bash benches/proxy_pair.sh /tmp/mock_new 16 2000
set -eu
PROXY=$1
CONNS=$2
ROUNDS=$3
BIN=${BIN:-target/release/examples/scan_count}
D=$(mktemp -d)
printf 'journal_limit = 0\nbody_digest = false\n' >"$D/proxy.toml"
"$BIN" mock >"$D/url" &
MOCK=$!
i=0
while [ ! -s "$D/url" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PROXY" --listen "127.0.0.1:$PORT" --upstream "$(cat "$D/url")" --upstream-max-idle 32 \
    --config "$D/proxy.toml" >/dev/null 2>&1 &
PX=$!
i=0
while ! (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
"$BIN" client "icap://127.0.0.1:$PORT/avscan" "$ROUNDS" "$CONNS" task >/dev/null
kill "$PX" "$MOCK"
wait "$PX" "$MOCK" 2>/dev/null || true
rm -rf "$D"
