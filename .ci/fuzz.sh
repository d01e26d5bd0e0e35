#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 120) each, with the ICAP
# dictionary, starting from the committed, minimized corpus in fuzz/corpus/<target>/ (made by
# `cargo fuzz cmin` after long local runs; see fuzz/README.md) plus a few seeds written here,
# and exits non-zero if any target crashes, panics, leaks, times out or runs over its memory
# limit. Needs the nightly toolchain; installs cargo-fuzz when it is missing. Crash inputs
# land in fuzz/artifacts/<target>/. FUZZ_SEED_ONLY=1 writes the seeds and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-120}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi
# Warnings are CI's concern on stable (clippy -D warnings); a new nightly lint must not turn
# a fuzz run red. cargo-fuzz builds into fuzz/target.
unset RUSTFLAGS CARGO_TARGET_DIR

# Seeds: a few messages written here, plus the codec's byte-exact fixtures when present.
# Decoding targets read a plan byte first (0: feed whole; 0x03 then 3 piece sizes).
seed() { # seed <target> <name> <printf-format>
    mkdir -p "fuzz/corpus/$1"
    printf "$3" >"fuzz/corpus/$1/seed-$2"
}
req_respmod='RESPMOD icap://127.0.0.1:1344/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\nPreview: 4\r\nEncapsulated: req-hdr=0, res-hdr=46, res-body=84\r\n\r\nGET /eicar.com HTTP/1.1\r\nHost: example.com\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n4\r\nX5O!\r\n0\r\n\r\n2\r\nP%%\r\n0\r\n\r\n'
req_reqmod='REQMOD icap://av/reqmod ICAP/1.0\r\nHost: av\r\nEncapsulated: req-hdr=0, req-body=38\r\n\r\nPOST /upload HTTP/1.1\r\nHost: files\r\n\r\n5;x=y\r\nhello\r\n0; ieof\r\nX-T: 1\r\n\r\n'
req_options='OPTIONS icap://av/avscan ICAP/1.0\r\nHost: av\r\n\r\n'
res_infected='ICAP/1.0 200 OK\r\nISTag: "c-icap-1"\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature;\r\nX-Violations-Found: 1\r\n\t-\r\n\tEicar-Test-Signature\r\n\t0\r\n\t0\r\nEncapsulated: res-hdr=0, res-body=62\r\n\r\nHTTP/1.0 403 Forbidden\r\nX-Virus-Name: Eicar-Test-Signature\r\n\r\n9\r\n<h1>x</h1\r\n0\r\n\r\n'
res_clean='ICAP/1.0 204 Unmodified\r\nISTag: "c-icap-1"\r\nX-Virus-ID: no threats\r\n\r\n'
res_options='ICAP/1.0 200 OK\r\nMethods: RESPMOD, REQMOD\r\nService: AV\r\nISTag: "x"\r\nMax-Connections: 100\r\nOptions-TTL: 3600\r\nPreview: 1024\r\nTransfer-Preview: *\r\nTransfer-Ignore: jpg\r\nAllow: 204, trailers\r\nEncapsulated: null-body=0\r\n\r\n'
for m in req_respmod req_reqmod req_options; do
    seed decode_request "$m" "\x00${!m}"
    seed decode_request "$m-pieces" "\x03\x05\x40\xc1${!m}"
    seed roundtrip "$m" "\x00${!m}"
done
for m in res_infected res_clean res_options; do
    seed decode_response "$m" "\x00${!m}"
    seed decode_response "$m-pieces" "\x03\x01\x1f\x07${!m}"
    seed roundtrip "$m-options" "\x01${!m}"
    seed roundtrip "$m-reqmod" "\x02${!m}"
    seed roundtrip "$m-respmod" "\x03${!m}"
done
seed chunked basic '\x00a\r\n0123456789\r\n3;name=val;q="a;b"\r\nabc\r\n0; ieof\r\nX-T: 1\r\n\r\n'
seed chunked pieces '\x02\x02\x05a\r\n0123456789\r\n0; use-original-body=42\r\n\r\n'
seed chunked tight '\x09\x01FFFFFFFF\r\nabc'
seed chunked unlimited '\x10a\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n'
if [ -d icap-proto/tests/fixtures ]; then
    for f in icap-proto/tests/fixtures/*.icap; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .icap)
        if head -c 5 "$f" | grep -q '^ICAP/'; then
            targets="decode_response"
            modes="1 2 3"
        else
            targets="decode_request"
            modes="0"
        fi
        for t in $targets; do
            mkdir -p "fuzz/corpus/$t"
            { printf '\x00'; cat "$f"; } >"fuzz/corpus/$t/fixture-$name"
        done
        mkdir -p fuzz/corpus/roundtrip
        for mode in $modes; do
            { printf "\\x0$mode"; cat "$f"; } >"fuzz/corpus/roundtrip/fixture-$name-$mode"
        done
    done
fi

# The exchange target: byte 0 is a request plan, byte 1 a piece size (0: whole), then the
# answer. Plans: 0x56 RESPMOD + Allow 204 + preview without ieof + body; 0xc6 the same with
# the request written and no preview; 0xd6 written, preview with ieof.
for m in res_infected res_clean res_options; do
    seed exchange "$m-preview" "\x66\x00${!m}"
    seed exchange "$m-written" "\xc6\x07${!m}"
    seed exchange "$m-ieof" "\xd6\x00${!m}"
done
seed exchange continue '\x66\x03ICAP/1.0 100 Continue\r\n\r\nICAP/1.0 204 No Content\r\nISTag: "a"\r\n\r\n'
seed exchange leftover '\xc6\x00ICAP/1.0 204 No Content\r\n\r\nICAP/1.0 204 No Content\r\n\r\n'
if [ "${FUZZ_SEED_ONLY:-0}" = 1 ]; then
    exit 0
fi

# Debug assertions on: integer overflow must panic here, not wrap silently.
flags=(--release --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
failed=()
for target in $(cargo +nightly fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    printf '\n---- fuzz %s for %ss\n' "$target" "$seconds"
    if ! cargo +nightly fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" \
        -dict=fuzz/icap.dict \
        -max_len=16384 \
        -timeout=10 \
        -rss_limit_mb=1024 \
        -malloc_limit_mb=512 \
        -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nfuzz targets that failed: %s (inputs in fuzz/artifacts/)\n' "${failed[*]}"
    exit 1
fi
printf '\nall fuzz targets ran %ss without a crash\n' "$seconds"
