//! What the caller did wrong: values that would break the framing are refused when built.

use bytes::BytesMut;
use icap_proto::verdict::{InfectionFound, Violation, ViolationsFound};
use icap_proto::{
    BodyKind, EncodeError, HeaderName, HeaderValue, Headers, HttpRequestHead, HttpResponseHead,
    Method, OptionsResponse, RequestHead, ResponseHead, StatusCode, Uri,
};

/// Input bytes and the value kept, or the error.
type ValueRow<I> = (I, Result<&'static [u8], EncodeError>);

#[test]
fn header_values_from_forms() {
    // User names and e-mail addresses from upload forms end up in X-Authenticated-User and
    // friends: a CR, LF or NUL would let them add headers or end the head.
    let rows: &[ValueRow<&[u8]>] = &[
        (b"alice@example.com", Ok(b"alice@example.com")),
        (b"  Alice O'Brien  ", Ok(b"Alice O'Brien")),
        (
            "Zo\u{eb} M\u{fc}ller".as_bytes(),
            Ok("Zo\u{eb} M\u{fc}ller".as_bytes()),
        ),
        (b"\xff\xfe latin-1 \xe9", Ok(b"\xff\xfe latin-1 \xe9")),
        (b"", Ok(b"")),
        (b"alice\r\nX-Evil: 1", Err(EncodeError::InvalidHeaderValue)),
        (b"alice\nX-Evil: 1", Err(EncodeError::InvalidHeaderValue)),
        (b"alice\rX", Err(EncodeError::InvalidHeaderValue)),
        (b"alice\0", Err(EncodeError::InvalidHeaderValue)),
        (b"bob@example.com\r\n", Err(EncodeError::InvalidHeaderValue)),
        (b"\r\n\tfolded", Err(EncodeError::InvalidHeaderValue)),
    ];
    for (input, want) in rows {
        let got = HeaderValue::new(input.to_vec());
        assert_eq!(
            got.as_ref().map(HeaderValue::as_bytes).map_err(|e| *e),
            *want,
            "{}",
            String::from_utf8_lossy(input)
        );
        let mut h = Headers::new();
        let appended = h.append(
            "X-Authenticated-User",
            String::from_utf8_lossy(input).into_owned(),
        );
        assert_eq!(appended.is_ok(), want.is_ok());
    }
}

/// Found by the `encode_decode` fuzz target once request decoders refused obs-fold: the
/// encoder wrote a folded request header the decoder then refused. A request is never
/// written with a fold; a response still may be (vendors fold `X-Violations-Found`).
#[test]
fn folded_values_are_refused_in_requests_only() {
    let folded = HeaderValue::from_lines(["a", "b"]).unwrap();
    let mut req = RequestHead::new(Method::Respmod, "icaps://UK/".parse::<Uri>().unwrap());
    req.headers
        .push(HeaderName::new(b"U".to_vec()).unwrap(), folded.clone());
    assert_eq!(
        req.encode(&mut BytesMut::new()),
        Err(EncodeError::FoldedRequestHeader)
    );
    let mut req = RequestHead::new(Method::Reqmod, "icap://av/x".parse::<Uri>().unwrap());
    let mut http = HttpRequestHead::new("GET", "/").unwrap();
    http.headers
        .push(HeaderName::new(b"X".to_vec()).unwrap(), folded.clone());
    req.http_request = Some(http);
    req.body = None;
    assert_eq!(
        req.encode(&mut BytesMut::new()),
        Err(EncodeError::FoldedRequestHeader)
    );
    let mut res = ResponseHead::new(StatusCode::NO_CONTENT);
    res.headers.push(
        HeaderName::new(b"X-Violations-Found".to_vec()).unwrap(),
        folded,
    );
    assert!(res.encode(Method::Respmod, &mut BytesMut::new()).is_ok());
}

#[test]
fn folded_values_from_lines() {
    let rows: &[ValueRow<&[&str]>] = &[
        (
            &["1", "-", "Eicar", "0", "0"],
            Ok(b"1\r\n\t-\r\n\tEicar\r\n\t0\r\n\t0"),
        ),
        (&[" a ", "\tb"], Ok(b"a\r\n\tb")),
        (&[""], Ok(b"")),
        (&["a", ""], Err(EncodeError::InvalidHeaderValue)),
        (&["a", "  "], Err(EncodeError::InvalidHeaderValue)),
        (&["", "a"], Err(EncodeError::InvalidHeaderValue)),
        (&["a", "b\r\nX: y"], Err(EncodeError::InvalidHeaderValue)),
        (&["a\n", "b"], Err(EncodeError::InvalidHeaderValue)),
        (&["a", "b\0"], Err(EncodeError::InvalidHeaderValue)),
    ];
    for (lines, want) in rows {
        let got = HeaderValue::from_lines(*lines);
        assert_eq!(
            got.as_ref().map(HeaderValue::as_bytes).map_err(|e| *e),
            *want,
            "{lines:?}"
        );
    }
}

#[test]
fn header_names() {
    for ok in ["X-Client-IP", "ISTag", "x!#$%&'*+.^_`|~0", "a"] {
        assert!(HeaderName::new(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Bad Name",
        "X:Y",
        "X\r\nY",
        "X\0",
        "\u{dc}ber",
        "X\t",
        "(x)",
        "X@Y",
        "a/b",
        "X\"",
    ] {
        assert_eq!(
            HeaderName::new(bad).err(),
            Some(EncodeError::InvalidHeaderName),
            "{bad:?}"
        );
        let mut h = Headers::new();
        assert_eq!(h.append(bad, "v"), Err(EncodeError::InvalidHeaderName));
    }
}

#[test]
fn tokens_uris_and_texts() {
    assert_eq!("FOO".parse::<Method>(), Err(EncodeError::InvalidToken));
    assert_eq!("reqmod".parse::<Method>(), Err(EncodeError::InvalidToken));
    assert_eq!("RESPMOD".parse::<Method>(), Ok(Method::Respmod));
    assert_eq!(StatusCode::new(99), Err(EncodeError::InvalidStatus));
    assert_eq!(StatusCode::new(1000), Err(EncodeError::InvalidStatus));
    for bad in [
        "http://h/s",
        "icap://",
        "icap:///s",
        "icap://h/a b",
        "icap://h/a\r\nX: y",
        "icap://u@h/s",
        "icap://h:99999/s",
        "icap://h:port/s",
        "icap://[::1/s",
        "",
    ] {
        assert_eq!(bad.parse::<Uri>(), Err(EncodeError::InvalidUri), "{bad:?}");
    }
    assert_eq!(
        HttpRequestHead::new("GE T", "/").err(),
        Some(EncodeError::InvalidToken)
    );
    assert_eq!(
        HttpRequestHead::new("", "/").err(),
        Some(EncodeError::InvalidToken)
    );
    assert_eq!(
        HttpRequestHead::new("GET", "/a b").err(),
        Some(EncodeError::InvalidText)
    );
    assert_eq!(
        HttpRequestHead::new("GET", "").err(),
        Some(EncodeError::InvalidText)
    );
    assert_eq!(
        HttpRequestHead::new("GET", "/\r\n").err(),
        Some(EncodeError::InvalidText)
    );
    assert_eq!(
        HttpRequestHead::new("GET", "/")
            .unwrap()
            .with_version("HTTP/1.1x")
            .err(),
        Some(EncodeError::InvalidToken)
    );
    assert_eq!(
        HttpResponseHead::new(99, "x").err(),
        Some(EncodeError::InvalidStatus)
    );
    assert_eq!(
        HttpResponseHead::new(200, "a\r\nb").err(),
        Some(EncodeError::InvalidText)
    );
    assert_eq!(
        HttpResponseHead::new(200, "a\0").err(),
        Some(EncodeError::InvalidText)
    );
    assert_eq!(
        HttpResponseHead::new(200, "OK")
            .unwrap()
            .with_version("ICAP/1.0")
            .err(),
        Some(EncodeError::InvalidToken)
    );
    assert_eq!(
        ResponseHead::new(StatusCode::OK)
            .with_reason(&b"OK\r\nX-Evil: 1"[..])
            .err(),
        Some(EncodeError::InvalidText)
    );
    assert_eq!(
        ResponseHead::new(StatusCode::OK)
            .with_header("X-A", "b\nc")
            .err(),
        Some(EncodeError::InvalidHeaderValue)
    );
}

#[test]
fn encapsulation_not_allowed() {
    let uri: Uri = "icap://h/s".parse().unwrap();
    let mut out = BytesMut::new();
    let res = HttpResponseHead::new(200, "OK").unwrap();
    let req = HttpRequestHead::new("GET", "/").unwrap();

    let mut h = RequestHead::new(Method::Reqmod, uri.clone());
    h.http_response = Some(res.clone());
    assert_eq!(h.encode(&mut out), Err(EncodeError::InvalidEncapsulation));

    let mut h = RequestHead::new(Method::Respmod, uri.clone());
    h.body = Some(BodyKind::Request);
    assert_eq!(h.encode(&mut out), Err(EncodeError::InvalidEncapsulation));

    let mut h = RequestHead::new(Method::Options, uri.clone());
    h.http_request = Some(req.clone());
    assert_eq!(h.encode(&mut out), Err(EncodeError::InvalidEncapsulation));

    let mut h = ResponseHead::new(StatusCode::OK);
    h.http_request = Some(req.clone());
    assert_eq!(
        h.encode(Method::Respmod, &mut out),
        Err(EncodeError::InvalidEncapsulation)
    );
    h.http_response = Some(res);
    assert_eq!(
        h.encode(Method::Reqmod, &mut out),
        Err(EncodeError::InvalidEncapsulation)
    );
    // A Preview the decoder could not read back.
    let mut h = RequestHead::new(Method::Respmod, uri.clone());
    h.body = Some(BodyKind::Response);
    h.headers.append("Preview", "1k").unwrap();
    assert_eq!(h.encode(&mut out), Err(EncodeError::InvalidHeaderValue));
    h.headers.remove("Preview");
    h.headers.append("Preview", "1024").unwrap();
    assert_eq!(h.encode(&mut BytesMut::new()), Ok(()));

    assert!(out.is_empty(), "nothing is written for a refused head");
}

#[test]
fn verdict_and_options_values() {
    let f = InfectionFound {
        kind: Some(0),
        resolution: Some(2),
        threat: "Eicar\r\nX-Evil: 1".into(),
    };
    assert_eq!(f.to_header_value(), Err(EncodeError::InvalidHeaderValue));
    let v = ViolationsFound(vec![Violation {
        filename: "a\nb".into(),
        threat: "t".into(),
        problem_id: "0".into(),
        resolution: "0".into(),
    }]);
    assert_eq!(v.to_header_value(), Err(EncodeError::InvalidHeaderValue));
    let v = ViolationsFound(vec![Violation {
        filename: "-".into(),
        threat: String::new(),
        problem_id: "0".into(),
        resolution: "0".into(),
    }]);
    assert_eq!(v.to_header_value(), Err(EncodeError::InvalidHeaderValue));
    let mut o = OptionsResponse::new(vec![Method::Respmod], "x");
    o.service = Some("AV\r\nX-Evil: 1".into());
    assert_eq!(o.to_head().err(), Some(EncodeError::InvalidHeaderValue));
}

/// Literals checked when a constant is compiled: the same bytes as the checked
/// constructors keep, and a literal they would change or refuse panics.
#[test]
fn static_literals_are_what_the_checked_constructors_keep() {
    const HOST: HeaderName = HeaderName::from_static("Host");
    const EMPTY: HeaderValue = HeaderValue::from_static("");
    const INNER_SPACE: HeaderValue = HeaderValue::from_static("a b");
    assert_eq!(HOST, HeaderName::new("Host").unwrap());
    assert_eq!(EMPTY, HeaderValue::new("").unwrap());
    assert_eq!(INNER_SPACE, HeaderValue::new("a b").unwrap());
    for bad in ["", "Bad Name", "X:", "Caf\u{e9}"] {
        let r = std::panic::catch_unwind(|| HeaderName::from_static(bad));
        assert!(r.is_err(), "name {bad:?}");
    }
    for bad in ["a\r\nX-Evil: 1", "a\n", "\0", " lead", "trail\t"] {
        let r = std::panic::catch_unwind(|| HeaderValue::from_static(bad));
        assert!(r.is_err(), "value {bad:?}");
    }
}
