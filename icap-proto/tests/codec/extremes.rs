//! No panic from any number: each site that does arithmetic on a wire value, fed the
//! extreme value (`u64::MAX` offsets and sizes, 16-hex-digit chunk sizes, 20-digit and
//! longer decimals), under the default limits and with every limit off.

use bytes::BytesMut;
use icap_proto::{
    ChunkEvent, ChunkedDecoder, DecodeError, EncapsulatedError, Limit, Limits, Method,
    OptionsResponse, ResponseHead, StatusCode,
};

use crate::common::{Ev, Kind, feed};

const MAX: &str = "18446744073709551615";
const PAST_MAX: &str = "18446744073709551616";

fn no_limits() -> Limits {
    Limits::default()
        .with_max_head(usize::MAX)
        .with_max_headers(usize::MAX)
        .with_max_header_line(usize::MAX)
        .with_max_http_head(usize::MAX)
        .with_max_chunk_line(usize::MAX)
        .with_max_chunk_extensions(usize::MAX)
        .with_max_trailers(usize::MAX)
        .with_max_preview(u64::MAX)
        .with_max_body(u64::MAX)
}

fn respmod(enc: &str, extra: &str, rest: &[u8]) -> Vec<u8> {
    [
        format!("RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\n{extra}Encapsulated: {enc}\r\n\r\n")
            .as_bytes(),
        rest,
    ]
    .concat()
}

/// `needed` (the sum of section lengths) and the `as usize` of each offset.
#[test]
fn encapsulated_offsets_at_u64_max() {
    let http = b"HTTP/1.1 200 OK\r\n\r\n";
    let rows: &[(&str, Limits, Option<DecodeError>)] = &[
        (
            "res-hdr=0, res-body=18446744073709551615",
            Limits::default(),
            Some(DecodeError::LimitExceeded {
                limit: Limit::HttpHead,
                max: 64 * 1024,
            }),
        ),
        (
            // Without limits the sum of both sections is u64::MAX: no wrap, and the head's
            // early end is a mismatch rather than a wait for 2^64 bytes.
            "req-hdr=0, res-hdr=9223372036854775808, res-body=18446744073709551615",
            no_limits(),
            Some(DecodeError::EncapsulatedMismatch),
        ),
        (
            "res-hdr=0, res-body=18446744073709551615",
            no_limits(),
            Some(DecodeError::EncapsulatedMismatch),
        ),
        (
            "res-hdr=0, res-body=18446744073709551616",
            Limits::default(),
            Some(DecodeError::InvalidEncapsulated(
                EncapsulatedError::BadOffset,
            )),
        ),
        (
            "res-hdr=0, res-body=000000000000000000000019",
            Limits::default(),
            Some(DecodeError::InvalidEncapsulated(
                EncapsulatedError::BadOffset,
            )),
        ),
    ];
    for (enc, limits, want) in rows {
        let input = respmod(enc, "", http);
        let out = feed(Kind::Request, *limits, [&input[..]]);
        assert_eq!(out.error, *want, "{enc}");
        // Byte by byte, the same answer.
        let out = feed(Kind::Request, *limits, input.chunks(1));
        assert_eq!(out.error, *want, "{enc} byte by byte");
    }
}

/// Chunk sizes: 16 hex digits up to `u64::MAX`, the body counter and the body limit.
#[test]
fn chunk_sizes_near_u64_max() {
    for size in ["ffffffffffffffff", "FFFFFFFFFFFFFFFE", "8000000000000000"] {
        let mut dec = ChunkedDecoder::new(no_limits());
        let mut buf = BytesMut::from(format!("{size}\r\nhello").as_bytes());
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(ChunkEvent::Data("hello".into()))),
            "{size}"
        );
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(dec.body_len(), 5);
    }
    // A second huge chunk after some body: the remaining budget is computed saturating.
    let mut dec = ChunkedDecoder::new(Limits::default().with_max_body(u64::MAX - 1));
    let mut buf = BytesMut::from(&b"2\r\nab\r\nffffffffffffffff\r\n"[..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Ok(Some(ChunkEvent::Data(_)))
    ));
    assert_eq!(
        dec.decode(&mut buf),
        Err(DecodeError::LimitExceeded {
            limit: Limit::Body,
            max: u64::MAX - 1
        })
    );
    // 17 digits do not fit.
    let mut dec = ChunkedDecoder::new(no_limits());
    let mut buf = BytesMut::from(&b"1ffffffffffffffff\r\n"[..]);
    assert_eq!(dec.decode(&mut buf), Err(DecodeError::ChunkSizeOverflow));
}

/// The per-message extension budget, counted over many lines without limits.
#[test]
fn extension_budget_without_limits() {
    let mut dec = ChunkedDecoder::new(no_limits());
    let line = format!("1;{}\r\na\r\n", "x".repeat(1000));
    let mut buf = BytesMut::from(line.repeat(50).as_bytes());
    let mut data = 0;
    while let Ok(Some(ChunkEvent::Data(d))) = dec.decode(&mut buf) {
        data += d.len();
    }
    assert_eq!(data, 50);
}

/// `use-original-body` takes any u64, and refuses what does not fit.
#[test]
fn use_original_body_at_u64_max() {
    let mut dec = ChunkedDecoder::new(Limits::default());
    let mut buf = BytesMut::from(format!("0; use-original-body={MAX}\r\n\r\n").as_bytes());
    let Ok(Some(ChunkEvent::End(end))) = dec.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(end.use_original_body, Some(u64::MAX));
    let mut dec = ChunkedDecoder::new(Limits::default());
    let mut buf = BytesMut::from(format!("0; use-original-body={PAST_MAX}\r\n\r\n").as_bytes());
    assert_eq!(dec.decode(&mut buf), Err(DecodeError::InvalidChunkSize));
}

/// `Preview` in a request: the announced size, the limit and the preview counter.
#[test]
fn request_preview_at_u64_max() {
    let body = b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let enc = "res-hdr=0, res-body=19";
    let input = respmod(enc, &format!("Preview: {MAX}\r\n"), body);
    let out = feed(Kind::Request, Limits::default(), [&input[..]]);
    assert_eq!(
        out.error,
        Some(DecodeError::LimitExceeded {
            limit: Limit::Preview,
            max: 1024 * 1024
        })
    );
    let out = feed(Kind::Request, no_limits(), [&input[..]]);
    assert_eq!(out.error, None);
    assert!(out.events.contains(&Ev::PreviewEnd { ieof: false }));
    let input = respmod(enc, &format!("Preview: {PAST_MAX}\r\n"), body);
    let out = feed(Kind::Request, no_limits(), [&input[..]]);
    assert_eq!(out.error, Some(DecodeError::InvalidHeaderValue("Preview")));
}

/// `Options-TTL`, `Preview` and `Max-Connections` in an OPTIONS answer, at and past `u64::MAX`.
#[test]
fn options_numbers_at_and_past_u64_max() {
    for n in [MAX, PAST_MAX, "999999999999999999999999999999999999999999"] {
        let head = ResponseHead::new(StatusCode::OK)
            .with_header("ISTag", "\"x\"")
            .unwrap()
            .with_header("Options-TTL", n)
            .unwrap()
            .with_header("Preview", n)
            .unwrap()
            .with_header("Max-Connections", n)
            .unwrap();
        let o = OptionsResponse::from_head(&head).unwrap();
        assert_eq!(o.options_ttl.unwrap().as_secs(), 30 * 24 * 3600, "{n}");
        assert_eq!(o.preview, Some(64 * 1024), "{n}");
        assert_eq!(o.max_connections, None, "{n}");
        assert_eq!(o.warnings.len(), 3, "{n}");
    }
}

/// The decoders' own counters with a huge `Preview` and no limits, fed in pieces.
#[test]
fn response_body_with_huge_chunk_in_pieces() {
    let input = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n\
        HTTP/1.1 200 OK\r\n\r\nffffffffffffffff\r\n0123456789";
    let out = feed(
        Kind::Response(Method::Respmod),
        no_limits(),
        input.chunks(3),
    );
    assert_eq!(out.error, None);
    let data: usize = out
        .events
        .iter()
        .map(|e| match e {
            Ev::Data(d) => d.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(data, 10);
}
