//! Bugs found in the codec while writing these tests, each with the input that showed it.

use bytes::BytesMut;
use icap_proto::{DecodeError, HeaderValue, Limits, Method, ResponseHead, StatusCode};

use crate::common::{Ev, Kind, Msg, encode_events, feed};

/// An obs-fold holding only whitespace at the end of a value used to leave `1\r\n` as the
/// value; re-encoding wrote `X-A: 1\r\n\r\n`, an empty line that ended the head early and
/// turned the next field into body bytes.
#[test]
fn empty_trailing_fold_does_not_end_the_head_when_reencoded() {
    let input = b"ICAP/1.0 204 No Content\r\nX-A: 1\r\n \r\nISTag: \"x\"\r\n\r\n";
    let kind = Kind::Response(Method::Respmod);
    let first = feed(kind, Limits::default(), [&input[..]]);
    assert_eq!(first.error, None);
    let Ev::Head(Msg::Response(h)) = &first.events[0] else {
        panic!("{first:?}")
    };
    assert_eq!(h.headers.get("X-A").unwrap().as_bytes(), b"1");
    assert_eq!(h.headers.len(), 2);
    let encoded = encode_events(&first.events, Method::Respmod);
    assert_eq!(
        &encoded[..],
        b"ICAP/1.0 204 No Content\r\nX-A: 1\r\nISTag: \"x\"\r\n\r\n"
    );
    let again = feed(kind, Limits::default(), [&encoded[..]]);
    assert_eq!(again.events, first.events);
    assert_eq!(again.left, 0);
}

/// The same at the front: `X-V:\r\n\t1\r\n\t-...` (count on a continuation line) kept a
/// leading CRLF, so the count line read as empty and the violation was unnamed.
#[test]
fn leading_fold_is_trimmed() {
    let input =
        b"ICAP/1.0 200 OK\r\nX-Violations-Found:\r\n\t1\r\n\tf\r\n\tW32/Test\r\n\t7\r\n\t2\r\n\
        Encapsulated: null-body=0\r\n\r\n";
    let out = feed(
        Kind::Response(Method::Respmod),
        Limits::default(),
        [&input[..]],
    );
    let Ev::Head(Msg::Response(h)) = &out.events[0] else {
        panic!("{out:?}")
    };
    let threats = icap_proto::verdict::threats(h);
    assert_eq!(threats.len(), 1);
    assert_eq!(threats[0].name, "W32/Test");
    assert_eq!(threats[0].problem_id.as_deref(), Some("7"));
}

/// `from_lines(["", "a"])` wrote a value starting with a fold, which a decoder trims: the
/// value did not read back the same. It is now refused.
#[test]
fn from_lines_refuses_a_leading_blank_line() {
    assert!(HeaderValue::from_lines(["", "a"]).is_err());
    let v = HeaderValue::from_lines(["a", "b"]).unwrap();
    let mut head = ResponseHead::new(StatusCode::NO_CONTENT);
    head.headers.append("X-V", "x").unwrap();
    head.headers
        .push(icap_proto::HeaderName::from_static("X-L"), v.clone());
    let mut out = BytesMut::new();
    head.encode(Method::Respmod, &mut out).unwrap();
    let got = feed(
        Kind::Response(Method::Respmod),
        Limits::default(),
        [&out[..]],
    );
    let Ev::Head(Msg::Response(back)) = &got.events[0] else {
        panic!()
    };
    assert_eq!(back.headers.get("X-L"), Some(v.as_view()));
}

/// A bare LF in trailers was reported as `InvalidTrailer`, and after chunk data as
/// `InvalidChunkTerminator`; both are now `BareLineFeed`, like everywhere else, so the
/// LF-only decision has one error.
#[test]
fn bare_lf_is_one_error_everywhere() {
    let head = b"RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n\
        HTTP/1.1 200 OK\r\n\r\n";
    for body in [&b"0\r\nX-T: 1\n\r\n"[..], b"3\r\nabc\n0\r\n\r\n"] {
        let input = [&head[..], body].concat();
        let out = feed(Kind::Request, Limits::default(), [&input[..]]);
        assert_eq!(out.error, Some(DecodeError::BareLineFeed));
    }
}

/// An `Encapsulated` value folded after a comma is one list (obs-fold is whitespace).
#[test]
fn folded_encapsulated_value() {
    let input = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0,\r\n res-body=19\r\n\r\n\
        HTTP/1.1 200 OK\r\n\r\n0\r\n\r\n";
    let out = feed(
        Kind::Response(Method::Respmod),
        Limits::default(),
        [&input[..]],
    );
    assert_eq!(out.error, None);
    assert!(out.idle && out.left == 0);
    assert_eq!(out.events.len(), 2);
}

/// A file of `tests/fixtures/repro/`, a fuzz input kept byte for byte.
fn repro(name: &str) -> Vec<u8> {
    crate::common::fixture(&format!("repro/{name}"))
}

/// Found by a 4-minute run of the `roundtrip` target (`fuzz-roundtrip-folded-headercount.bin`,
/// byte 0 = 1: the answer to OPTIONS). The OPTIONS head has 109 header lines, 9 of them
/// obs-fold continuations: 100 fields for the decoder and for the encoder alike, and no
/// `Encapsulated`. The encoder writes the `Encapsulated` a 200 must carry, so the
/// re-encoded head had 101 fields and was refused with `HeaderCount`. `max_headers` now
/// leaves the first `Encapsulated` of an ICAP head out of the count. This replays the
/// target's check.
#[test]
fn fuzz_roundtrip_folded_headercount() {
    let input = repro("fuzz-roundtrip-folded-headercount.bin");
    let (&mode, message) = input.split_first().unwrap();
    assert_eq!(mode % 4, 1, "the answer to OPTIONS");
    let kind = Kind::Response(Method::Options);
    let first = feed(kind, Limits::default(), [message]);
    assert_eq!(first.error, None);
    assert_eq!(first.left, 0);
    let Ev::Head(Msg::Response(head)) = &first.events[0] else {
        panic!("{first:?}")
    };
    assert_eq!(head.headers.len(), 100);
    assert!(!head.headers.contains("Encapsulated"));
    let folded = head
        .headers
        .iter()
        .filter(|(_, v)| v.as_bytes().contains(&b'\n'))
        .count();
    assert_eq!(folded, 9, "nine fields carry a fold, each still one field");

    let encoded = encode_events(&first.events, Method::Options);
    let again = feed(kind, Limits::default(), [&encoded[..]]);
    assert_eq!(again.error, None, "re-encoded: {encoded:?}");
    assert_eq!(again.left, 0);
    let Ev::Head(Msg::Response(back)) = &again.events[0] else {
        panic!("{again:?}")
    };
    assert_eq!(back.headers.len(), 101);
    assert_eq!(
        back.headers.get("Encapsulated").unwrap().as_bytes(),
        b"null-body=0"
    );
    let mut without = back.clone();
    without.headers.remove("Encapsulated");
    assert_eq!(&without, head, "the same head but for Encapsulated");
    assert_eq!(again.events[1..], first.events[1..]);
    // Writing the re-decoded head again gives the same bytes.
    assert_eq!(encode_events(&again.events, Method::Options), encoded);
}

/// Found by a 4-minute run of the `chunked` target (`fuzz-chunked-trailer-roundtrip.bin`).
/// Byte 0 (0x10) picks "every limit at its largest": 104 trailer fields decode. The target
/// then decoded its re-encoding under the *default* limits (100 fields), so a decode and a
/// re-decode under different limits were compared. The codec agreed with itself: under any
/// one limit both accept or both refuse, which is what this checks; the target now
/// re-decodes with the limits it decoded with.
#[test]
fn fuzz_chunked_trailer_roundtrip() {
    let input = repro("fuzz-chunked-trailer-roundtrip.bin");
    let (&plan, message) = input.split_first().unwrap();
    assert_eq!(plan, 0x10, "no pieces, no limits");
    let no_limits = Limits::default()
        .with_max_head(usize::MAX)
        .with_max_headers(usize::MAX)
        .with_max_header_line(usize::MAX)
        .with_max_http_head(usize::MAX)
        .with_max_chunk_line(usize::MAX)
        .with_max_chunk_extensions(usize::MAX)
        .with_max_trailers(usize::MAX)
        .with_max_preview(u64::MAX)
        .with_max_body(u64::MAX);
    for limits in [no_limits, Limits::default()] {
        let first = decode_body(limits, message);
        let Ok((end, left)) = first else {
            assert_eq!(
                first.map(|_| ()),
                Err(DecodeError::LimitExceeded {
                    limit: icap_proto::Limit::HeaderCount,
                    max: 100
                })
            );
            continue;
        };
        assert_eq!(end.trailers.len(), 104);
        assert_eq!(left, b" XAllow:".len(), "bytes after the body stay");
        let mut out = BytesMut::new();
        icap_proto::chunked::encode_last_chunk(end.ieof, &end.trailers, &mut out);
        let (again, left) = decode_body(limits, &out).expect("re-encoded body decodes");
        assert_eq!(again, end);
        assert_eq!(left, 0);
    }
}

/// Decodes one chunked body with no data; returns its end and how many bytes were left.
fn decode_body(limits: Limits, input: &[u8]) -> Result<(icap_proto::BodyEnd, usize), DecodeError> {
    let mut dec = icap_proto::ChunkedDecoder::new(limits);
    let mut buf = BytesMut::from(input);
    match dec.decode(&mut buf)? {
        Some(icap_proto::ChunkEvent::End(end)) => Ok((end, buf.len())),
        other => panic!("{other:?}"),
    }
}

/// Whatever decodes under a limit decodes again under the same limit once encoded: rows at
/// the edge of each limit the encoder can grow past (a space after each colon, the
/// computed `Encapsulated`).
#[test]
fn reencoding_stays_within_the_limits_it_decoded_under() {
    use std::fmt::Write as _;
    type Row<'a> = (&'a str, Limits, &'a [u8], Option<DecodeError>);
    let fields = |n: usize| {
        (0..n).fold(String::new(), |mut s, i| {
            let _ = write!(s, "X-{i}:v\r\n");
            s
        })
    };
    // 8 fields and no Encapsulated at max_headers = 8.
    let tight = Limits::default().with_max_headers(8);
    let head = format!("ICAP/1.0 200 OK\r\n{}\r\n", fields(8));
    // A field of exactly max_header_line bytes as received, one more as encoded: refused.
    let line = Limits::default().with_max_header_line(10);
    let long = "ICAP/1.0 204 No Content\r\nX-A:12345\r\n\r\n"; // "X-A:12345\r\n" is 11 bytes
    let fits = "ICAP/1.0 204 No Content\r\nX-A:1234\r\n\r\n"; // 10 received, 11 encoded
    let exact = "ICAP/1.0 204 No Content\r\nX-A: 123\r\n\r\n"; // 10 both ways
    let head_line = |max| DecodeError::LimitExceeded {
        limit: icap_proto::Limit::HeaderLine,
        max,
    };
    let rows: Vec<Row<'_>> = vec![
        ("count", tight, head.as_bytes(), None),
        ("line over", line, long.as_bytes(), Some(head_line(10))),
        ("line grows", line, fits.as_bytes(), Some(head_line(10))),
        ("line exact", line, exact.as_bytes(), None),
    ];
    for (what, limits, input, want) in rows {
        let kind = Kind::Response(Method::Respmod);
        let first = feed(kind, limits, [input]);
        assert_eq!(first.error, want, "{what}");
        if want.is_some() {
            continue;
        }
        let encoded = encode_events(&first.events, Method::Respmod);
        let again = feed(kind, limits, [&encoded[..]]);
        assert_eq!(again.error, None, "{what}: {encoded:?}");
        assert_eq!(again.left, 0, "{what}");
    }
}

/// Trailers and embedded HTTP heads are measured as received and as written again.
#[test]
fn trailers_and_http_heads_measured_as_encoded() {
    // "0\r\n" then "A:b\r\n" x 3 and the empty line: 17 bytes of trailers as received,
    // 20 as written again.
    let trailers = b"0\r\nA:b\r\nB:c\r\nC:d\r\n\r\n";
    let mut dec = icap_proto::ChunkedDecoder::new(Limits::default().with_max_trailers(17));
    assert_eq!(
        dec.decode(&mut BytesMut::from(&trailers[..])),
        Err(DecodeError::LimitExceeded {
            limit: icap_proto::Limit::Trailers,
            max: 17
        })
    );
    let mut dec = icap_proto::ChunkedDecoder::new(Limits::default().with_max_trailers(20));
    assert!(matches!(
        dec.decode(&mut BytesMut::from(&trailers[..])),
        Ok(Some(icap_proto::ChunkEvent::End(_)))
    ));
    // An embedded head of 21 bytes received (`X:1`), 22 as written again.
    let http = b"HTTP/1.1 200 OK\r\nX:1\r\n\r\n";
    let input = [
        format!(
            "RESPMOD icap://h/s ICAP/1.0\r\nHost: h\r\nEncapsulated: res-hdr=0, null-body={}\r\n\r\n",
            http.len()
        )
        .as_bytes(),
        http,
    ]
    .concat();
    let at = |max| {
        feed(
            Kind::Request,
            Limits::default().with_max_http_head(max),
            [&input[..]],
        )
    };
    assert_eq!(
        at(http.len()).error,
        Some(DecodeError::LimitExceeded {
            limit: icap_proto::Limit::HttpHead,
            max: http.len() as u64
        })
    );
    assert_eq!(at(http.len() + 1).error, None);
}
