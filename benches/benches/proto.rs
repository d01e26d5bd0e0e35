//! Codec benchmarks: head decoding (small and large heads), chunked body decoding (64 KiB
//! and 4 KiB chunks, fed whole and in 1460-byte and 16 KiB pieces) and encoding, with the
//! same bytes parsed by `icaparse` and `httparse` and copied by `memcpy` in the same groups,
//! so that the ratios come from one run. Results and the command are in `BENCHMARKS.md`.
//!
//! Run: `cargo bench -p icap-benches --bench proto -- --warm-up-time 1 --measurement-time 3`
// criterion_group! and criterion_main! generate undocumented public items.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use icap_benches::heads::{large_head, small_head};
use icap_proto::chunked::{self, ChunkEvent};
use icap_proto::{ChunkedDecoder, Event, Headers, Limits, RequestDecoder, RequestHead};

/// A body of 1 MiB, cut into chunks for the chunked benchmarks.
const BODY_LEN: usize = 1 << 20;
/// A TCP segment's worth of payload on Ethernet: how bytes arrive from a socket.
const PIECE: usize = 1460;

fn encode(head: &RequestHead) -> Bytes {
    let mut out = BytesMut::new();
    head.encode(&mut out).expect("valid head");
    out.freeze()
}

/// Where the ICAP head ends and each embedded head starts, for the peers.
struct Layout {
    icap_end: usize,
    req_end: usize,
}

fn layout(bytes: &[u8]) -> Layout {
    let find = |from: usize| {
        from + find_crlfcrlf(&bytes[from..]).expect("a head ends with an empty line") + 4
    };
    let icap_end = find(0);
    let req_end = find(icap_end);
    Layout { icap_end, req_end }
}

fn find_crlfcrlf(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

fn decode_head(dec: &mut RequestDecoder, buf: &mut BytesMut) -> Box<RequestHead> {
    match dec.decode(buf) {
        Ok(Some(Event::Head(h))) => h,
        other => panic!("head expected: {other:?}"),
    }
}

fn bench_heads(c: &mut Criterion) {
    for (name, head) in [("small", small_head()), ("large", large_head())] {
        let bytes = encode(&head);
        let at = layout(&bytes);
        let mut g = c.benchmark_group(format!("head_decode/{name}"));

        // Sanity: every parser reads the whole head.
        let mut dec = RequestDecoder::new(Limits::default());
        let decoded = decode_head(&mut dec, &mut BytesMut::from(&bytes[..]));
        assert_eq!(encode(&decoded), bytes);

        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("icap-proto, copying into a fresh buffer first", |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(black_box(&bytes[..]));
                let mut dec = RequestDecoder::new(Limits::default());
                decode_head(&mut dec, &mut buf)
            });
        });
        g.bench_function("icap-proto (ICAP + HTTP heads)", |b| {
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| {
                    let mut dec = RequestDecoder::new(Limits::default());
                    decode_head(&mut dec, buf)
                },
                BatchSize::SmallInput,
            );
        });
        g.bench_function("icaparse (ICAP head, sections copied)", |b| {
            b.iter(|| {
                let mut fields = [icaparse::EMPTY_HEADER; 128];
                let mut req = icaparse::Request::new(&mut fields);
                let status = req.parse(black_box(&bytes)).expect("icaparse reads it");
                assert!(status.is_complete());
                black_box(
                    req.encapsulated_sections
                        .as_ref()
                        .map(std::collections::HashMap::len),
                );
            });
        });
        g.bench_function("icaparse + httparse (ICAP + HTTP heads)", |b| {
            b.iter(|| {
                let bytes = black_box(&bytes[..]);
                let mut fields = [icaparse::EMPTY_HEADER; 128];
                let mut req = icaparse::Request::new(&mut fields);
                assert!(req.parse(bytes).expect("icaparse reads it").is_complete());
                let n = http_heads(&bytes[at.icap_end..], at.req_end - at.icap_end);
                black_box((req.headers.len(), n));
            });
        });
        let http = &bytes[at.icap_end..];
        g.throughput(Throughput::Bytes(http.len() as u64));
        g.bench_function("httparse (HTTP heads only)", |b| {
            b.iter(|| black_box(http_heads(black_box(http), at.req_end - at.icap_end)));
        });
        g.finish();
    }
}

/// Parses the embedded request head (the first `req_len` bytes) and the response head.
fn http_heads(http: &[u8], req_len: usize) -> usize {
    let mut h1 = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut h1);
    let a = req.parse(&http[..req_len]).expect("httparse reads it");
    let mut h2 = [httparse::EMPTY_HEADER; 128];
    let mut res = httparse::Response::new(&mut h2);
    let b = res.parse(&http[req_len..]).expect("httparse reads it");
    a.unwrap() + b.unwrap() + req.headers.len() + res.headers.len()
}

/// A 1 MiB body in chunks of `chunk` bytes, with the last chunk.
fn chunked_body(chunk: usize) -> (Vec<u8>, Bytes) {
    let data: Vec<u8> = (0..BODY_LEN).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = BytesMut::new();
    for part in data.chunks(chunk) {
        chunked::encode_chunk(part, &mut out);
    }
    chunked::encode_last_chunk(false, &Headers::new(), &mut out);
    (data, out.freeze())
}

/// Decodes a whole body from `buf`; returns the data length.
fn drain(dec: &mut ChunkedDecoder, buf: &mut BytesMut) -> Option<usize> {
    let mut n = 0;
    loop {
        match dec.decode(buf).expect("valid body") {
            Some(ChunkEvent::Data(d)) => n += d.len(),
            Some(ChunkEvent::End(_)) => return Some(n),
            None => return None,
        }
    }
}

/// Feeds `encoded` in `piece`-byte reads into one buffer, as a connection would, decoding
/// after each read; returns the body length.
fn feed_pieces(encoded: &[u8], piece: usize) -> usize {
    let mut dec = ChunkedDecoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(piece.max(8 * 1024));
    let mut total = 0;
    for read in encoded.chunks(piece) {
        buf.extend_from_slice(read);
        loop {
            match dec.decode(&mut buf).expect("valid body") {
                Some(ChunkEvent::Data(d)) => total += d.len(),
                Some(ChunkEvent::End(_)) => return total,
                None => break,
            }
        }
    }
    panic!("body did not end")
}

fn bench_chunked(c: &mut Criterion) {
    for (name, chunk) in [("64KiB", 64 * 1024), ("4KiB", 4 * 1024)] {
        let (data, encoded) = chunked_body(chunk);
        let mut g = c.benchmark_group(format!("chunked_decode/{name}_chunks"));
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        g.bench_function("icap-proto, fed whole", |b| {
            b.iter_batched_ref(
                || BytesMut::from(&encoded[..]),
                |buf| {
                    let mut dec = ChunkedDecoder::new(Limits::default());
                    assert_eq!(drain(&mut dec, buf), Some(BODY_LEN));
                },
                BatchSize::LargeInput,
            );
        });
        for piece in [PIECE, 16 * 1024] {
            g.bench_function(format!("icap-proto, fed in {piece}-byte pieces"), |b| {
                b.iter(|| {
                    assert_eq!(feed_pieces(black_box(&encoded[..]), piece), BODY_LEN);
                });
            });
        }
        g.bench_function("memcpy of the same bytes", |b| {
            let mut dst = vec![0u8; encoded.len()];
            b.iter(|| {
                dst.copy_from_slice(black_box(&encoded[..]));
                black_box(&dst);
            });
        });
        g.finish();
        black_box(data);
    }
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (name, head) in [("small", small_head()), ("large", large_head())] {
        let len = encode(&head).len();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("request head, {name}"), |b| {
            let mut out = BytesMut::with_capacity(2 * len);
            b.iter(|| {
                out.clear();
                black_box(&head).encode(&mut out).expect("valid head");
                black_box(&out);
            });
        });
    }
    for (name, chunk) in [("64KiB", 64 * 1024), ("4KiB", 4 * 1024)] {
        let (data, encoded) = chunked_body(chunk);
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        g.bench_function(format!("chunked body, {name} chunks"), |b| {
            let mut out = BytesMut::with_capacity(encoded.len());
            b.iter(|| {
                out.clear();
                for part in black_box(&data[..]).chunks(chunk) {
                    chunked::encode_chunk(part, &mut out);
                }
                chunked::encode_last_chunk(false, &Headers::new(), &mut out);
                assert_eq!(out.len(), encoded.len());
            });
        });
    }
    let (_, encoded) = chunked_body(64 * 1024);
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    g.bench_function("memcpy of a 1 MiB body", |b| {
        let mut dst = vec![0u8; encoded.len()];
        b.iter(|| {
            dst.copy_from_slice(black_box(&encoded[..]));
            black_box(&dst);
        });
    });
    g.finish();
}

criterion_group!(benches, bench_heads, bench_chunked, bench_encode);
criterion_main!(benches);
