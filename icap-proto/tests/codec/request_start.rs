//! `RequestStart`: a head written from a start encoded once is the head `RequestHead::encode`
//! writes, byte for byte, and is refused where that one is.

use bytes::BytesMut;
use icap_proto::{
    BodyKind, EncodeError, HeaderValue, Headers, HttpRequestHead, HttpResponseHead, Method,
    RequestHead, RequestStart,
};

fn headers(fields: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in fields {
        h.append(*n, *v).unwrap();
    }
    h
}

/// A method and what its head encapsulates.
type Shape<'a> = (
    Method,
    Option<&'a HttpRequestHead>,
    Option<&'a HttpResponseHead>,
    Option<BodyKind>,
);

/// Both encodings of one head: from a start with `shared`, and as one `RequestHead` whose
/// fields are `shared` then `own`.
fn both(
    method: Method,
    shared: &Headers,
    own: &Headers,
    req: Option<&HttpRequestHead>,
    res: Option<&HttpResponseHead>,
    body: Option<BodyKind>,
) -> (Result<BytesMut, EncodeError>, Result<BytesMut, EncodeError>) {
    let uri: icap_proto::Uri = "icap://av.example:1344/scan?x=1".parse().unwrap();
    let from_start = RequestStart::new(method, &uri, shared).and_then(|s| {
        let mut out = BytesMut::new();
        s.encode(own, req, res, body, &mut out).map(|()| out)
    });
    let mut head = RequestHead::new(method, uri);
    head.headers = shared.clone();
    for (n, v) in own {
        head.headers.push(n.to_owned(), v.to_owned());
    }
    head.http_request = req.cloned();
    head.http_response = res.cloned();
    head.body = body;
    let mut out = BytesMut::new();
    let whole = head.encode(&mut out).map(|()| out);
    (from_start, whole)
}

#[test]
fn a_head_from_a_start_is_the_encoded_request_head() {
    let mut get = HttpRequestHead::new("GET", "/a%20b.txt").unwrap();
    get.headers.append("Host", "upload.local").unwrap();
    let mut ok = HttpResponseHead::new(200, "OK").unwrap();
    ok.headers.append("Content-Length", "68").unwrap();
    let shared = headers(&[("Host", "av.example"), ("Allow", "204")]);
    let owns = [
        headers(&[]),
        headers(&[("Preview", "1024"), ("X-Client-IP", "10.0.0.1")]),
        // An Encapsulated among the request's own fields is replaced in place.
        headers(&[("X-A", "1"), ("Encapsulated", "whatever"), ("X-B", "2")]),
    ];
    let shapes: [Shape; 5] = [
        (
            Method::Respmod,
            Some(&get),
            Some(&ok),
            Some(BodyKind::Response),
        ),
        (Method::Respmod, None, Some(&ok), Some(BodyKind::Response)),
        (Method::Reqmod, Some(&get), None, Some(BodyKind::Request)),
        (Method::Reqmod, Some(&get), None, None),
        (Method::Options, None, None, None),
    ];
    for own in &owns {
        for (method, req, res, body) in shapes {
            let (a, b) = both(method, &shared, own, req, res, body);
            assert_eq!(a, b, "{method:?} {own:?}");
            assert!(a.is_ok(), "{method:?} {own:?}: {a:?}");
        }
    }
}

#[test]
fn a_start_refuses_what_the_request_head_refuses() {
    let ok = HttpResponseHead::new(200, "OK").unwrap();
    let res = Some(&ok);
    let body = Some(BodyKind::Response);
    let folded = HeaderValue::from_lines(["a", "b"]).unwrap();
    let mut folded_own = Headers::new();
    folded_own.push("X-Fold".try_into().unwrap(), folded.clone());
    let rows: [(Headers, Headers, EncodeError); 4] = [
        // Two different Preview values, one in the start and one in the request.
        (
            headers(&[("Preview", "0")]),
            headers(&[("Preview", "5")]),
            EncodeError::InvalidHeaderValue,
        ),
        (
            headers(&[]),
            headers(&[("Preview", "soon")]),
            EncodeError::InvalidHeaderValue,
        ),
        (headers(&[]), folded_own, EncodeError::FoldedRequestHeader),
        // A body with no head to carry it is no encapsulation at all.
        (
            headers(&[]),
            headers(&[]),
            EncodeError::InvalidEncapsulation,
        ),
    ];
    for (i, (shared, own, want)) in rows.into_iter().enumerate() {
        let (res, body) = if i == 3 {
            (None, Some(BodyKind::Request))
        } else {
            (res, body)
        };
        let (a, b) = both(Method::Respmod, &shared, &own, None, res, body);
        assert_eq!(a, Err(want), "row {i}");
        assert_eq!(b, Err(want), "row {i}");
    }
    // The start itself: no Encapsulated (each request computes it), no fold.
    let uri: icap_proto::Uri = "icap://av/scan".parse().unwrap();
    let enc = headers(&[("Encapsulated", "null-body=0")]);
    assert!(matches!(
        RequestStart::new(Method::Respmod, &uri, &enc),
        Err(EncodeError::InvalidEncapsulation)
    ));
    let mut fold = Headers::new();
    fold.push("X-Fold".try_into().unwrap(), folded);
    assert!(matches!(
        RequestStart::new(Method::Respmod, &uri, &fold),
        Err(EncodeError::FoldedRequestHeader)
    ));
}
