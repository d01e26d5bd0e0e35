//! Decodes the proto bench's small (or large) RESPMOD head N times, for counting work under
//! `valgrind --tool=callgrind` (instructions) rather than timing it. The third argument says
//! who decodes:
//!
//! - `proto` (default): icap-proto into an owned `RequestHead` (ICAP head, `Encapsulated`,
//!   both embedded HTTP heads), each time from a fresh `BytesMut` copy of the bytes;
//! - `copy`: only that copy into a fresh `BytesMut`, to subtract from `proto`;
//! - `peers`: `icaparse` on the ICAP head plus `httparse` on both embedded heads, the
//!   `icaparse + httparse` row of `benches/proto.rs` (borrowed results, no copy);
//! - `icaparse`: `icaparse` alone;
//! - `detach`: `proto`, then `RequestHead::detached` of the head (as the mock's journal
//!   keeps it), to subtract `proto` from.
//!
//! ```sh
//! cargo build --release -p icap-benches --example head_decode_count
//! valgrind --tool=callgrind target/release/examples/head_decode_count small 1000 proto
//! valgrind --tool=callgrind target/release/examples/head_decode_count small 11000 proto
//! # per decode = (second total - first total) / 10 000; the same for `large` and each mode
//! ```
//!
//! `benches/callgrind_heads.sh` runs every row and prints the per-decode numbers. The heads
//! are the same bytes as `benches/proto.rs` decodes (built here the same way).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use icap_benches::heads::{large_head, small_head};
use icap_proto::{Event, Limits, RequestDecoder};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "small".to_owned());
    let n: usize = args
        .next()
        .map_or(10_000, |s| s.parse().expect("a count of decodes"));
    let mode = args.next().unwrap_or_else(|| "proto".to_owned());
    let head = if which == "large" {
        large_head()
    } else {
        small_head()
    };
    let mut out = BytesMut::new();
    head.encode(&mut out).expect("valid head");
    let bytes: Bytes = out.freeze();
    let icap_end = find_end(&bytes, 0);
    let req_end = find_end(&bytes, icap_end);
    let mut fields = 0usize;
    for _ in 0..n {
        fields += match mode.as_str() {
            "proto" => proto(&bytes),
            "detach" => detach(&bytes),
            "copy" => black_box(BytesMut::from(black_box(&bytes[..]))).len(),
            "peers" => icaparse(&bytes) + httparse(&bytes[icap_end..], req_end - icap_end),
            "icaparse" => icaparse(&bytes),
            other => panic!("mode is proto, detach, copy, peers or icaparse, not {other:?}"),
        };
    }
    println!(
        "{which} {mode}: {n} decodes of {} bytes, {fields} fields",
        bytes.len()
    );
}

/// icap-proto: the whole head into an owned value, dropped here.
fn proto(bytes: &[u8]) -> usize {
    let mut buf = BytesMut::from(black_box(bytes));
    let mut dec = RequestDecoder::new(Limits::default());
    match dec.decode(&mut buf) {
        Ok(Some(Event::Head(h))) => {
            let h = black_box(h);
            h.headers.len()
                + h.http_request.as_ref().map_or(0, |r| r.headers.len())
                + h.http_response.as_ref().map_or(0, |r| r.headers.len())
        }
        other => panic!("head expected: {other:?}"),
    }
}

/// [`proto`], then a detached copy of the head, both dropped here.
fn detach(bytes: &[u8]) -> usize {
    let mut buf = BytesMut::from(black_box(bytes));
    let mut dec = RequestDecoder::new(Limits::default());
    match dec.decode(&mut buf) {
        Ok(Some(Event::Head(h))) => black_box(black_box(&h).detached()).headers.len(),
        other => panic!("head expected: {other:?}"),
    }
}

/// The ICAP head by `icaparse` (which also copies the sections into a map).
fn icaparse(bytes: &[u8]) -> usize {
    let mut fields = [icaparse::EMPTY_HEADER; 128];
    let mut req = icaparse::Request::new(&mut fields);
    let status = req.parse(black_box(bytes)).expect("icaparse reads it");
    assert!(status.is_complete());
    black_box(&req.encapsulated_sections);
    req.headers.len()
}

/// Both embedded heads by `httparse`: the request head is the first `req_len` bytes.
fn httparse(http: &[u8], req_len: usize) -> usize {
    let http = black_box(http);
    let mut h1 = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut h1);
    assert!(req.parse(&http[..req_len]).expect("valid").is_complete());
    let mut h2 = [httparse::EMPTY_HEADER; 128];
    let mut res = httparse::Response::new(&mut h2);
    assert!(res.parse(&http[req_len..]).expect("valid").is_complete());
    black_box(req.headers.len() + res.headers.len())
}

/// The index just past the `CRLF CRLF` that ends the head starting at `from`.
fn find_end(b: &[u8], from: usize) -> usize {
    from + b[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head ends with an empty line")
        + 4
}
