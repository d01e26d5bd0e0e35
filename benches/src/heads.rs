//! The RESPMOD heads the codec benchmarks decode, shared by `benches/proto.rs` and the
//! counting example and tests.

use icap_proto::{BodyKind, Headers, HttpRequestHead, HttpResponseHead, Method, RequestHead};

/// A typical RESPMOD request from a proxy: a few ICAP headers and both embedded heads.
pub fn small_head() -> RequestHead {
    let mut head = RequestHead::new(
        Method::Respmod,
        "icap://icap.example.net:1344/avscan"
            .parse()
            .expect("valid URI"),
    );
    for (n, v) in [
        ("Host", "icap.example.net"),
        ("Allow", "204"),
        ("Preview", "1024"),
        ("X-Client-IP", "192.0.2.17"),
        (
            "X-Authenticated-User",
            "Q049YWxpY2UsREM9ZXhhbXBsZSxEQz1jb20=",
        ),
    ] {
        head.headers.append(n, v).expect("valid field");
    }
    let mut req = HttpRequestHead::new("GET", "http://www.example.com/downloads/report.pdf")
        .expect("valid request line");
    for (n, v) in [
        ("Host", "www.example.com"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Cookie", "session=8f3a2c1d9e7b4a6f; theme=dark"),
    ] {
        req.headers.append(n, v).expect("valid field");
    }
    let mut res = HttpResponseHead::new(200, "OK").expect("valid status line");
    for (n, v) in [
        ("Date", "Mon, 24 Nov 2025 16:00:00 GMT"),
        ("Server", "nginx/1.26.2"),
        ("Content-Type", "application/pdf"),
        ("Content-Length", "1048576"),
        ("Last-Modified", "Fri, 21 Nov 2025 09:12:44 GMT"),
        ("ETag", "\"5f3e-1a2b3c4d\""),
    ] {
        res.headers.append(n, v).expect("valid field");
    }
    head.http_request = Some(req);
    head.http_response = Some(res);
    head.body = Some(BodyKind::Response);
    head
}

/// The same shape with many long fields: about 12 KiB, under the default field count limit.
pub fn large_head() -> RequestHead {
    let mut head = small_head();
    let long = |i: usize| {
        format!(
            "{i:04}-{}",
            "abcdefghijklmnopqrstuvwxyz0123456789".repeat(2)
        )
    };
    let add = |h: &mut Headers, prefix: &str, n: usize| {
        for i in 0..n {
            h.append(format!("X-{prefix}-Field-{i}").as_str(), long(i).as_str())
                .expect("valid field");
        }
    };
    add(&mut head.headers, "Icap", 40);
    add(
        &mut head.http_request.as_mut().expect("set").headers,
        "Req",
        40,
    );
    add(
        &mut head.http_response.as_mut().expect("set").headers,
        "Res",
        40,
    );
    head
}
