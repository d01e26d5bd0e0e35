//! Encode, then decode: requests and responses built from arbitrary typed values (header
//! fields, embedded HTTP heads, a body with or without a preview). Whatever the encoders
//! accept, the decoders read back as the same value and the same body events.
#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use icap_proto::chunked;
use icap_proto::{
    BodyEnd, BodyKind, HeaderName, HeaderValue, Headers, HttpRequestHead, HttpResponseHead, Method,
    RequestDecoder, RequestHead, ResponseDecoder, ResponseHead, Scheme, StatusCode, Uri,
};
use icap_proto_fuzz::{Seen, no_limits, run, without_encapsulated};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Field {
    name: String,
    value: Vec<u8>,
    folded: Vec<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
struct HttpReq {
    method: String,
    target: String,
    fields: Vec<Field>,
}

#[derive(Arbitrary, Debug)]
struct HttpRes {
    status: u16,
    reason: String,
    fields: Vec<Field>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    response: Option<(u16, Vec<u8>)>,
    method: Method,
    tls: bool,
    host: String,
    port: Option<u16>,
    service: String,
    fields: Vec<Field>,
    http_request: Option<HttpReq>,
    http_response: Option<HttpRes>,
    body: Option<(BodyKind, Vec<u8>, Option<u16>)>,
}

fn headers(fields: &[Field]) -> Headers {
    let mut h = Headers::new();
    for f in fields {
        let Ok(name) = HeaderName::new(f.name.clone().into_bytes()) else {
            continue;
        };
        let value = if f.folded.is_empty() {
            HeaderValue::new(f.value.clone())
        } else {
            HeaderValue::from_lines(std::iter::once(&f.value).chain(&f.folded))
        };
        if let Ok(value) = value {
            h.push(name, value);
        }
    }
    h
}

fn http_request(r: &Option<HttpReq>) -> Option<HttpRequestHead> {
    let r = r.as_ref()?;
    let mut head = HttpRequestHead::new(&r.method, &r.target).ok()?;
    head.headers = headers(&r.fields);
    Some(head)
}

fn http_response(r: &Option<HttpRes>) -> Option<HttpResponseHead> {
    let r = r.as_ref()?;
    let mut head = HttpResponseHead::new(r.status, &r.reason).ok()?;
    head.headers = headers(&r.fields);
    Some(head)
}

/// Writes the body (preview first when asked) and returns the events it must decode to.
fn body<H>(input: &Input, preview: Option<u64>, out: &mut BytesMut) -> Vec<Seen<H>> {
    let Some((_, data, _)) = &input.body else {
        return vec![Seen::End(BodyEnd::default())];
    };
    let data = Bytes::copy_from_slice(data);
    let mut want = Vec::new();
    match preview {
        Some(p) => {
            let rest = chunked::encode_preview(&data, p as usize, out);
            let sent = data.len() - rest.len();
            if sent > 0 {
                want.push(Seen::Data(data[..sent].to_vec()));
            }
            let ieof = rest.is_empty();
            want.push(Seen::PreviewEnd(ieof));
            if ieof {
                want.push(Seen::End(BodyEnd {
                    ieof: true,
                    ..BodyEnd::default()
                }));
                return want;
            }
            chunked::encode_body(&rest, out);
            want.push(Seen::Data(rest.to_vec()));
        }
        None => {
            chunked::encode_body(&data, out);
            if !data.is_empty() {
                want.push(Seen::Data(data.to_vec()));
            }
        }
    }
    want.push(Seen::End(BodyEnd::default()));
    want
}

fuzz_target!(|input: Input| {
    let scheme = if input.tls {
        Scheme::Icaps
    } else {
        Scheme::Icap
    };
    let fields = headers(&input.fields);
    let http_req = http_request(&input.http_request);
    let http_res = http_response(&input.http_response);
    let kind = input.body.as_ref().map(|b| b.0);
    let mut out = BytesMut::new();
    match &input.response {
        None => {
            let Ok(uri) = Uri::new(scheme, &input.host, input.port, &input.service) else {
                return;
            };
            let mut head = RequestHead::new(input.method, uri);
            head.headers = fields;
            head.http_request = http_req;
            head.http_response = http_res;
            head.body = kind;
            let preview = input.body.as_ref().and_then(|b| b.2).map(u64::from);
            head.headers.remove("Preview");
            if let Some(p) = preview {
                head.headers
                    .push(HeaderName::from_static("Preview"), HeaderValue::from_u64(p));
            }
            if head.encode(&mut out).is_err() {
                return;
            }
            let mut want = vec![Seen::Head(head)];
            want.extend(body(&input, preview, &mut out));
            let got = run(&mut RequestDecoder::new(no_limits()), &out, &[]);
            check(
                got.result,
                got.events,
                want,
                &got.leftover,
                &out,
                |h: &mut RequestHead| {
                    h.headers = without_encapsulated(&h.headers);
                },
            );
        }
        Some((status, reason)) => {
            let Ok(status) = StatusCode::new(*status) else {
                return;
            };
            let Ok(mut head) = ResponseHead::new(status).with_reason(reason.clone()) else {
                return;
            };
            head.headers = fields;
            head.http_request = http_req;
            head.http_response = http_res;
            head.body = kind;
            if head.encode(input.method, &mut out).is_err() {
                return;
            }
            let mut want = vec![Seen::Head(head)];
            want.extend(body(&input, None, &mut out));
            let got = run(
                &mut ResponseDecoder::new(input.method, no_limits()),
                &out,
                &[],
            );
            check(
                got.result,
                got.events,
                want,
                &got.leftover,
                &out,
                |h: &mut ResponseHead| {
                    h.headers = without_encapsulated(&h.headers);
                },
            );
        }
    }
});

fn check<H: PartialEq + std::fmt::Debug>(
    result: Result<(), icap_proto::DecodeError>,
    mut got: Vec<Seen<H>>,
    mut want: Vec<Seen<H>>,
    leftover: &[u8],
    bytes: &[u8],
    strip: impl Fn(&mut H),
) {
    let text = String::from_utf8_lossy(bytes);
    assert_eq!(result, Ok(()), "encoded: {text:?}");
    assert!(leftover.is_empty(), "encoded: {text:?}");
    for e in got.iter_mut().chain(want.iter_mut()) {
        if let Seen::Head(h) = e {
            strip(h);
        }
    }
    assert_eq!(got, want, "encoded: {text:?}");
}
