//! The request heads, as pure functions of the configuration and the file's metadata:
//! the scan request (`RESPMOD` or `REQMOD` with its embedded HTTP heads, `Preview`,
//! `Allow: 204`, identity and extra headers, the file name percent-encoded in the request
//! line) and the `OPTIONS` request.

use bytes::{Bytes, BytesMut};
use icap_proto::{
    BodyKind, HeaderName, HeaderValue, Headers, HttpRequestHead, HttpResponseHead, Method,
    RequestHead, RequestStart, Uri,
};

use super::cfg::ClientConfig;
use super::meta::ScanMeta;
use crate::error::Error;

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("icap-client/", env!("CARGO_PKG_VERSION"));

// The names and literal values of the heads, checked once when compiled (not per scan).
const HOST: HeaderName = HeaderName::from_static("Host");
const PREVIEW: HeaderName = HeaderName::from_static("Preview");
const CONTENT_TYPE: HeaderName = HeaderName::from_static("Content-Type");
const CONTENT_LENGTH: HeaderName = HeaderName::from_static("Content-Length");
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// The start of every scan head to one server, encoded once (by the builder): the request
/// line, `Host`, `User-Agent` and, when asked, `Allow: 204`.
pub(crate) fn scan_head_start(cfg: &ClientConfig, uri: &Uri) -> Result<RequestStart, Error> {
    let mut h = Headers::with_capacity(3);
    h.push(HOST, host_value(uri)?);
    h.push(
        HeaderName::from_static("User-Agent"),
        HeaderValue::from_static(USER_AGENT),
    );
    if cfg.allow_204 {
        h.push(
            HeaderName::from_static("Allow"),
            HeaderValue::from_static("204"),
        );
    }
    RequestStart::new(cfg.method, uri, &h).map_err(|e| Error::config(format!("ICAP request: {e}")))
}

/// The encoded head of a scan request: `size` is the body's declared length (`None`: not
/// known, no `Content-Length`), `preview` the preview size announced, if any. `start` is
/// [`scan_head_start`] of the same configuration: icap-proto writes the head from it, this
/// request's own fields (`Preview`, identity and extra headers) and its embedded HTTP heads.
pub(super) fn scan_head(
    cfg: &ClientConfig,
    static_headers: &Headers,
    start: &RequestStart,
    meta: &ScanMeta,
    size: Option<u64>,
    preview: Option<u64>,
) -> Result<Bytes, Error> {
    let mut own = Headers::with_capacity(1);
    if let Some(p) = preview {
        own.push(PREVIEW, HeaderValue::from_u64(p));
    }
    extra_headers(cfg, static_headers, meta, &mut own)?;
    let (req, res, body) = embedded_heads(cfg, meta, size)?;
    let mut out = BytesMut::with_capacity(512);
    start
        .encode(&own, Some(&req), res.as_ref(), Some(body), &mut out)
        .map_err(|e| Error::config(format!("ICAP request: {e}")))?;
    Ok(out.freeze())
}

/// The embedded HTTP heads of a scan: `POST` with the file as its body (`REQMOD`), or a
/// `GET` and the `200` that carries the file (`RESPMOD`); the file name percent-encoded in
/// the request line.
fn embedded_heads(
    cfg: &ClientConfig,
    meta: &ScanMeta,
    size: Option<u64>,
) -> Result<(HttpRequestHead, Option<HttpResponseHead>, BodyKind), Error> {
    // Pieces pushed one by one: `format!` cost more than the rest of the head's fields.
    let name = meta.filename.as_deref().unwrap_or("upload");
    let mut target = String::with_capacity(name.len() + 1);
    target.push('/');
    target.extend(percent_encode(name));
    let bad = |e: icap_proto::EncodeError| Error::config(format!("embedded HTTP head: {e}"));
    let ctype = match &meta.content_type {
        Some(t) => HeaderValue::new(Bytes::copy_from_slice(t.as_bytes())).map_err(bad)?,
        None => OCTET_STREAM,
    };
    let http_host = HeaderValue::new(cfg.http_host.clone()).map_err(bad)?;
    let length = |h: &mut Headers| {
        if let Some(n) = size {
            h.push(CONTENT_LENGTH, HeaderValue::from_u64(n));
        }
    };
    if cfg.method == Method::Reqmod {
        let mut req = HttpRequestHead::new("POST", &target).map_err(bad)?;
        req.headers = Headers::with_capacity(3);
        req.headers.push(HOST, http_host);
        req.headers.push(CONTENT_TYPE, ctype);
        length(&mut req.headers);
        Ok((req, None, BodyKind::Request))
    } else {
        let mut req = HttpRequestHead::new("GET", &target).map_err(bad)?;
        req.headers = Headers::with_capacity(1);
        req.headers.push(HOST, http_host);
        let mut res = HttpResponseHead::new(200, "OK").map_err(bad)?;
        res.headers = Headers::with_capacity(2);
        res.headers.push(CONTENT_TYPE, ctype);
        length(&mut res.headers);
        Ok((req, Some(res), BodyKind::Response))
    }
}

/// The identity headers of the uploader, the configured extra headers and the scan's own,
/// in that order, each validated; none when identity headers are off.
fn extra_headers(
    cfg: &ClientConfig,
    static_headers: &Headers,
    meta: &ScanMeta,
    h: &mut Headers,
) -> Result<(), Error> {
    if cfg.identity.enabled {
        if let Some(u) = &meta.uploader {
            cfg.identity.apply(u, h)?;
        }
        for (n, v) in static_headers {
            h.push(n.to_owned(), v.to_owned());
        }
        for (n, v) in &meta.headers {
            push_header(h, n, v)?;
        }
    }
    Ok(())
}

/// The encoded head of an `OPTIONS` request for `uri`.
pub(super) fn options_head(uri: &Uri) -> Result<Bytes, Error> {
    let mut head = RequestHead::new(Method::Options, uri.clone());
    head.headers
        .append("Host", host_header(uri).as_str())
        .map_err(|e| Error::config(format!("host header: {e}")))?;
    head.headers
        .append("User-Agent", USER_AGENT)
        .expect("static header is valid");
    let mut bytes = BytesMut::new();
    head.encode(&mut bytes)
        .map_err(|e| Error::config(format!("OPTIONS request: {e}")))?;
    Ok(bytes.freeze())
}

/// Appends a header given as text; a configuration error if the name is not a token or
/// the value holds CR, LF or NUL (no header injection).
pub(super) fn push_header(h: &mut Headers, name: &str, value: &str) -> Result<(), Error> {
    let n = HeaderName::new(name.to_owned().into_bytes())
        .map_err(|e| Error::config(format!("invalid header name {name:?}: {e}")))?;
    let v = HeaderValue::new(value.to_owned().into_bytes()).map_err(|_| {
        Error::config(format!(
            "refused header {name}: value {value:?} contains CR, LF or NUL"
        ))
    })?;
    h.push(n, v);
    Ok(())
}

/// The `Host` header value for `uri`, built in one allocation.
fn host_value(u: &Uri) -> Result<HeaderValue, Error> {
    HeaderValue::new(host_header(u).into_bytes())
        .map_err(|e| Error::config(format!("host header: {e}")))
}

/// The `Host` header for `uri`: an IPv6 address in brackets, the port only if the URL
/// names one.
fn host_header(u: &Uri) -> String {
    let host = u.host();
    let v6 = host.contains(':');
    let mut out = String::with_capacity(host.len() + 8);
    if v6 {
        out.push('[');
    }
    out.push_str(host);
    if v6 {
        out.push(']');
    }
    if let Some(p) = u.explicit_port() {
        use std::fmt::Write as _;
        let _ = write!(out, ":{p}");
    }
    out
}

/// What the file name encoder escapes: everything but RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) and `/`. One set, so the rule lives in one place.
const FILE_NAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a file name for the embedded HTTP request line.
fn percent_encode(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{IdentityHeaders, Uploader};

    fn uri(s: &str) -> Uri {
        s.parse().expect("valid test URI")
    }

    /// [`scan_head`] as the client calls it, with the start its builder makes.
    fn scan(
        cfg: &ClientConfig,
        statics: &Headers,
        uri: &Uri,
        meta: &ScanMeta,
        size: Option<u64>,
        preview: Option<u64>,
    ) -> Result<Bytes, Error> {
        let start = scan_head_start(cfg, uri)?;
        scan_head(cfg, statics, &start, meta, size, preview)
    }

    /// Every scan head decodes as a valid request (its `Encapsulated` checked against the
    /// sections by the decoder) and says what was configured, over methods, previews,
    /// sizes, `Allow`, identity and extra headers, content types, file names and hosts.
    #[test]
    fn every_scan_head_decodes_as_configured() {
        let mut statics = Headers::new();
        push_header(&mut statics, "X-Tenant", "acme").expect("valid header");
        let metas = [
            ScanMeta::new("report.pdf"),
            ScanMeta::default(),
            ScanMeta::new("dir/ü b%.exe").with_content_type("text/plain; charset=utf-8"),
            ScanMeta::new("a")
                .with_uploader(Uploader::new("alice"))
                .with_header("X-Trace", "7"),
        ];
        let mut n = 0;
        for method in [Method::Respmod, Method::Reqmod] {
            for allow_204 in [true, false] {
                for identity in [IdentityHeaders::disabled(), IdentityHeaders::filecloud()] {
                    for u in ["icap://av.example.net/avscan", "icap://[::1]:1345/s?x=1"] {
                        let cfg = ClientConfig {
                            method,
                            allow_204,
                            identity: identity.clone(),
                            ..ClientConfig::default()
                        };
                        let u = uri(u);
                        for meta in &metas {
                            for (size, preview) in
                                [(Some(68), None), (None, Some(1024)), (Some(0), Some(0))]
                            {
                                let b = scan(&cfg, &statics, &u, meta, size, preview)
                                    .expect("valid head");
                                let mut buf = BytesMut::from(&b[..]);
                                let got =
                                    icap_proto::RequestDecoder::new(icap_proto::Limits::default())
                                        .decode(&mut buf);
                                let Ok(Some(icap_proto::Event::Head(h))) = got else {
                                    panic!("{got:?}");
                                };
                                assert!(buf.is_empty(), "the head is all that was written");
                                assert_eq!(h.method, method);
                                assert_eq!(h.allows_204(), allow_204);
                                assert_eq!(h.preview().ok().flatten(), preview);
                                assert_eq!(
                                    h.headers.contains("X-Tenant"),
                                    identity.enabled,
                                    "{h:?}"
                                );
                                let length = if method == Method::Reqmod {
                                    h.http_request.as_ref().map(|r| &r.headers)
                                } else {
                                    h.http_response.as_ref().map(|r| &r.headers)
                                }
                                .and_then(|hs| hs.get("Content-Length"))
                                .and_then(icap_proto::HeaderValueRef::to_u64);
                                assert_eq!(length, size);
                                n += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(n, 2 * 2 * 2 * 2 * 4 * 3);
    }

    /// A `Preview` among the extra headers that disagrees with the announced one is
    /// refused (icap-proto's single-value rule), and one that agrees is kept once more.
    #[test]
    fn a_preview_among_the_extra_headers_follows_the_single_value_rule() {
        let cfg = ClientConfig {
            identity: IdentityHeaders::filecloud(),
            ..ClientConfig::default()
        };
        let meta = ScanMeta::new("a").with_header("Preview", "5");
        let u = uri("icap://h/s");
        let refused = scan(&cfg, &Headers::new(), &u, &meta, Some(1), Some(0));
        assert!(refused.is_err(), "{refused:?}");
        let kept = scan(&cfg, &Headers::new(), &u, &meta, Some(1), None).expect("one Preview");
        assert!(lines(&kept).contains(&"Preview: 5".to_owned()));
    }

    /// The head as text, split into its lines (the ICAP head, then the embedded heads).
    fn lines(b: &Bytes) -> Vec<String> {
        String::from_utf8(b.to_vec())
            .expect("heads are ASCII")
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    fn head(
        cfg: &ClientConfig,
        meta: &ScanMeta,
        size: Option<u64>,
        preview: Option<u64>,
    ) -> Vec<String> {
        let b = scan(
            cfg,
            &Headers::new(),
            &uri("icap://av.example.net/avscan"),
            meta,
            size,
            preview,
        )
        .expect("valid head");
        lines(&b)
    }

    #[test]
    fn respmod_wraps_the_file_in_a_get_and_a_200() {
        let got = head(
            &ClientConfig::default(),
            &ScanMeta::new("report.pdf"),
            Some(68),
            None,
        );
        let at = |l: &str| {
            got.iter()
                .position(|x| x == l)
                .unwrap_or_else(|| panic!("no {l:?} in {got:#?}"))
        };
        assert_eq!(got[0], "RESPMOD icap://av.example.net/avscan ICAP/1.0");
        at("Host: av.example.net");
        at(&format!("User-Agent: {USER_AGENT}"));
        at("Allow: 204");
        assert!(
            got.iter()
                .any(|l| l.starts_with("Encapsulated: req-hdr=0, res-hdr=")
                    && l.contains(", res-body=")),
            "{got:#?}"
        );
        let get = at("GET /report.pdf HTTP/1.1");
        let res = at("HTTP/1.1 200 OK");
        assert!(get < res);
        assert!(at("Host: upload.local") > get);
        assert!(at("Content-Type: application/octet-stream") > res);
        assert!(at("Content-Length: 68") > res);
        assert!(
            !got.iter().any(|l| l.starts_with("Preview:")),
            "no preview unless asked"
        );
        assert!(
            got.ends_with(&[String::new(), String::new()]),
            "the head ends in a blank line"
        );
    }

    #[test]
    fn reqmod_sends_the_file_as_a_post_body() {
        let cfg = ClientConfig {
            method: Method::Reqmod,
            ..ClientConfig::default()
        };
        let meta = ScanMeta::new("a.txt").with_content_type("text/plain");
        let got = head(&cfg, &meta, Some(5), None);
        assert_eq!(got[0], "REQMOD icap://av.example.net/avscan ICAP/1.0");
        assert!(
            got.iter()
                .any(|l| l.starts_with("Encapsulated: req-hdr=0, req-body=")),
            "{got:#?}"
        );
        let post = got
            .iter()
            .position(|l| l == "POST /a.txt HTTP/1.1")
            .expect("request line");
        assert!(got[post..].contains(&"Content-Type: text/plain".to_owned()));
        assert!(got[post..].contains(&"Content-Length: 5".to_owned()));
        assert!(
            !got.iter().any(|l| l.starts_with("HTTP/1.1 ")),
            "no embedded response"
        );
    }

    #[test]
    fn preview_allow_204_and_an_unknown_size() {
        let cfg = ClientConfig {
            allow_204: false,
            ..ClientConfig::default()
        };
        let got = head(&cfg, &ScanMeta::default(), None, Some(1024));
        assert!(got.contains(&"Preview: 1024".to_owned()), "{got:#?}");
        assert!(!got.iter().any(|l| l.starts_with("Allow:")), "{got:#?}");
        assert!(
            !got.iter().any(|l| l.starts_with("Content-Length:")),
            "{got:#?}"
        );
        assert!(
            got.contains(&"GET /upload HTTP/1.1".to_owned()),
            "a file without a name: {got:#?}"
        );
    }

    #[test]
    fn identity_and_extra_headers_only_when_enabled() {
        let mut statics = Headers::new();
        push_header(&mut statics, "X-Tenant", "acme").expect("valid header");
        let meta = ScanMeta::new("a")
            .with_uploader(Uploader::new("alice"))
            .with_header("X-Trace", "7");
        let on = ClientConfig {
            identity: IdentityHeaders::filecloud(),
            ..ClientConfig::default()
        };
        let b = scan(&on, &statics, &uri("icap://h/s"), &meta, Some(1), None).expect("valid head");
        let got = lines(&b);
        assert!(got.contains(&"X-Tenant: acme".to_owned()), "{got:#?}");
        assert!(got.contains(&"X-Trace: 7".to_owned()), "{got:#?}");
        assert!(
            got.iter().any(|l| l.ends_with(": alice")),
            "the uploader's name: {got:#?}"
        );
        let off = ClientConfig {
            identity: IdentityHeaders::disabled(),
            ..ClientConfig::default()
        };
        let b = scan(&off, &statics, &uri("icap://h/s"), &meta, Some(1), None).expect("valid head");
        let got = lines(&b);
        assert!(
            !got.iter().any(|l| l.starts_with("X-")),
            "the identity switch turns all off: {got:#?}"
        );
        assert!(!got.iter().any(|l| l.contains("alice")), "{got:#?}");
    }

    #[test]
    fn file_names_are_percent_encoded_in_the_request_line() {
        let cases = [
            ("report.pdf", "/report.pdf"),
            ("a b.txt", "/a%20b.txt"),
            ("dir/x~_-.bin", "/dir/x~_-.bin"),
            ("ü%?#\r\n.exe", "/%C3%BC%25%3F%23%0D%0A.exe"),
        ];
        for (name, target) in cases {
            assert_eq!(percent_encode(name).to_string(), &target[1..], "{name:?}");
            let got = head(
                &ClientConfig::default(),
                &ScanMeta::new(name),
                Some(1),
                None,
            );
            assert!(
                got.contains(&format!("GET {target} HTTP/1.1")),
                "{name:?}: {got:#?}"
            );
        }
    }

    #[test]
    fn host_header_and_options_head() {
        assert_eq!(host_header(&uri("icap://av/s")), "av");
        assert_eq!(host_header(&uri("icap://av:1345/s")), "av:1345");
        assert_eq!(host_header(&uri("icap://[::1]:1344/s")), "[::1]:1344");
        let got = lines(&options_head(&uri("icap://av:1345/s")).expect("valid head"));
        assert_eq!(got[0], "OPTIONS icap://av:1345/s ICAP/1.0");
        assert!(got.contains(&"Host: av:1345".to_owned()), "{got:#?}");
        assert_eq!(got[2], format!("User-Agent: {USER_AGENT}"));
        assert_eq!(got[3..], ["", ""], "nothing else, no body: {got:#?}");
    }

    #[test]
    fn header_values_with_line_breaks_are_refused() {
        let mut h = Headers::new();
        assert!(push_header(&mut h, "X-Ok", "fine").is_ok());
        assert!(push_header(&mut h, "X-Bad", "a\r\nX-Injected: 1").is_err());
        assert!(push_header(&mut h, "Bad Name", "v").is_err());
        assert_eq!(h.len(), 1);
    }
}
