//! Bugs found in the codec while writing these tests, each with the input that showed it.

use bytes::BytesMut;
use icap_proto::{DecodeError, Event, HeaderValue, Limits, Method, ResponseHead, StatusCode};

use crate::common::{Kind, Msg, encode_events, feed};

/// An obs-fold holding only whitespace at the end of a value used to leave `1\r\n` as the
/// value; re-encoding wrote `X-A: 1\r\n\r\n`, an empty line that ended the head early and
/// turned the next field into body bytes.
#[test]
fn empty_trailing_fold_does_not_end_the_head_when_reencoded() {
    let input = b"ICAP/1.0 204 No Content\r\nX-A: 1\r\n \r\nISTag: \"x\"\r\n\r\n";
    let kind = Kind::Response(Method::Respmod);
    let first = feed(kind, Limits::default(), [&input[..]]);
    assert_eq!(first.error, None);
    let Event::Head(Msg::Response(h)) = &first.events[0] else {
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
    let Event::Head(Msg::Response(h)) = &out.events[0] else {
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
    let Event::Head(Msg::Response(back)) = &got.events[0] else {
        panic!()
    };
    assert_eq!(back.headers.get("X-L"), Some(&v));
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
