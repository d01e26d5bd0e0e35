//! Decodes the proto bench's small (or large) RESPMOD head N times, for counting work under
//! `valgrind --tool=callgrind` (instructions) rather than timing it:
//!
//! ```sh
//! cargo build --release -p icap-benches --example head_decode_count
//! valgrind --tool=callgrind target/release/examples/head_decode_count small 10000
//! ```
//!
//! The heads are the same bytes as `benches/proto.rs` decodes (built here the same way).

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
    let head = if which == "large" {
        large_head()
    } else {
        small_head()
    };
    let mut out = BytesMut::new();
    head.encode(&mut out).expect("valid head");
    let bytes: Bytes = out.freeze();
    let mut fields = 0usize;
    for _ in 0..n {
        let mut buf = BytesMut::from(black_box(&bytes[..]));
        let mut dec = RequestDecoder::new(Limits::default());
        match dec.decode(&mut buf) {
            Ok(Some(Event::Head(h))) => fields += black_box(&h).headers.len(),
            other => panic!("head expected: {other:?}"),
        }
    }
    println!(
        "{which}: {n} decodes of {} bytes, {fields} ICAP fields",
        bytes.len()
    );
}
