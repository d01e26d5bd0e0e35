//! Response heads in the shapes real antivirus products send.

use bytes::Bytes;
use icap_proto::verdict::{InfectionFound, Violation, ViolationsFound};
use icap_proto::{BodyKind, HeaderName, HeaderValue, HttpResponseHead, ResponseHead, StatusCode};

use crate::service::Dialect;

/// Header values must not carry CR, LF or NUL; threat names from rules are sanitised.
fn clean_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn push(head: &mut ResponseHead, name: &'static str, value: &str) {
    head.headers
        .push(HeaderName::from_static(name), text_value(value.to_owned()));
}

/// A literal header value: no copy, no allocation (every clean answer has some).
fn push_static(head: &mut ResponseHead, name: &'static str, value: &'static str) {
    debug_assert!(!value.chars().any(char::is_control));
    let v = HeaderValue::new(value.as_bytes()).expect("literal values are valid");
    head.headers.push(HeaderName::from_static(name), v);
}

/// `text` with its control characters replaced (copied only when it has some).
fn cleaned(text: String) -> String {
    if text.chars().any(char::is_control) {
        clean_text(&text)
    } else {
        text
    }
}

/// `text` as a header value, its control characters replaced.
fn text_value(text: String) -> HeaderValue {
    HeaderValue::new(cleaned(text).into_bytes()).expect("control characters were replaced")
}

/// The `ISTag` value: the tag in quotes.
fn push_istag(head: &mut ResponseHead, istag: &str) {
    let mut v = String::with_capacity(istag.len().saturating_add(2));
    v.push('"');
    v.push_str(istag);
    v.push('"');
    head.headers
        .push(HeaderName::from_static("ISTag"), text_value(v));
}

/// A head with `ISTag` and the extra headers of a rule.
pub(crate) fn base(status: u16, istag: &str, extra: &[(String, String)]) -> ResponseHead {
    let code = StatusCode::new(status).unwrap_or(StatusCode::SERVER_ERROR);
    let mut head = ResponseHead::new(code);
    if code.canonical_reason().is_empty() {
        head = head
            .with_reason("Mock Status")
            .expect("static reason is valid");
    }
    push_istag(&mut head, istag);
    apply_extra(&mut head, extra);
    head
}

/// The extra headers of a rule, after the dialect's own.
fn apply_extra(head: &mut ResponseHead, extra: &[(String, String)]) {
    for (n, v) in extra {
        if let (Ok(n), Ok(v)) = (
            HeaderName::new(n.clone().into_bytes()),
            HeaderValue::new(cleaned(v.clone()).into_bytes()),
        ) {
            // A rule's ISTag replaces the server's: a head with two would have none for a
            // client that (rightly) refuses a single-valued header given twice.
            if n.is("ISTag") {
                head.headers.set(n, v);
            } else {
                head.headers.push(n, v);
            }
        }
    }
}

fn block_page(status: u16, reason: &str, version: &str, threat: &str) -> (HttpResponseHead, Bytes) {
    let body = format!(
        "<html><head><title>Access denied</title></head><body><h1>Virus found</h1>\
         <p>The requested content contains the threat <b>{}</b> and was blocked by \
         icap-mock-server.</p></body></html>\n",
        html_escape(threat)
    );
    let mut res = HttpResponseHead::new(status, reason)
        .expect("static status line is valid")
        .with_version(version)
        .expect("static version is valid");
    res.headers
        .append("Content-Type", "text/html; charset=utf-8")
        .expect("static header is valid");
    res.headers.push(
        HeaderName::from_static("Content-Length"),
        HeaderValue::from_u64(body.len() as u64),
    );
    res.headers
        .append("Connection", "close")
        .expect("static header is valid");
    (res, Bytes::from(body))
}

/// The answer reporting `threat`, with its body (a block page) if any.
#[allow(clippy::too_many_lines)] // one arm per vendor dialect, each a captured report format; a table reads best whole
pub(crate) fn infected(
    dialect: Dialect,
    threat: &str,
    filename: Option<&str>,
    istag: &str,
    extra: &[(String, String)],
) -> (ResponseHead, Option<Bytes>) {
    let threat = clean_text(threat);
    let violation = |resolution: &str, id: &str| {
        ViolationsFound(vec![Violation {
            filename: clean_text(filename.unwrap_or("-")),
            threat: threat.clone(),
            problem_id: id.to_owned(),
            resolution: resolution.to_owned(),
        }])
    };
    let status = if dialect == Dialect::Symantec {
        201
    } else {
        200
    };
    let mut head = base(status, istag, extra);
    let (page_status, page_reason, version) = match dialect {
        Dialect::CIcap => (403, "Forbidden", "HTTP/1.0"),
        Dialect::McAfee => (403, "VirusFound", "HTTP/1.1"),
        _ => (403, "Forbidden", "HTTP/1.1"),
    };
    let (mut res, page) = block_page(page_status, page_reason, version, &threat);
    match dialect {
        Dialect::CIcap => {
            let found = InfectionFound {
                kind: Some(0),
                resolution: Some(2),
                threat: Bytes::from(threat.clone().into_bytes()),
            };
            head.headers.push(
                HeaderName::from_static("X-Infection-Found"),
                found.to_header_value().expect("threat was sanitised"),
            );
            head.headers.push(
                HeaderName::from_static("X-Violations-Found"),
                violation("0", "0")
                    .to_header_value()
                    .expect("violation fields were sanitised"),
            );
        }
        Dialect::Symantec => {
            // Symantec Protection Engine 8.0 sends both (a public capture in
            // Baekalfen/ICAP-avscan issue 19): X-Infection-Found with Resolution=1, then
            // X-Violations-Found.
            let found = InfectionFound {
                kind: Some(0),
                resolution: Some(1),
                threat: Bytes::from(threat.clone().into_bytes()),
            };
            head.headers.push(
                HeaderName::from_static("X-Infection-Found"),
                found.to_header_value().expect("threat was sanitised"),
            );
            head.headers.push(
                HeaderName::from_static("X-Violations-Found"),
                violation("2", "1001")
                    .to_header_value()
                    .expect("violation fields were sanitised"),
            );
        }
        Dialect::Kaspersky => push(&mut head, "X-Virus-ID", &threat),
        Dialect::Sophos => {
            push(&mut head, "X-Virus-ID", &threat);
            res.headers
                .append("X-Blocked", "Virus found during virus scan")
                .expect("static header is valid");
            res.headers.push(
                HeaderName::from_static("X-Blocked-Reason"),
                HeaderValue::new(threat.clone().into_bytes()).expect("threat was sanitised"),
            );
        }
        Dialect::McAfee => {}
        Dialect::Eset => {
            // ESET Server Security for Linux (nextcloud/files_antivirus issue 303):
            // ISTag, Encapsulated, X-Infection-Found with Resolution=0, X-Virus-ID,
            // X-Response-Info, X-Response-Description (German in the capture), and an
            // embedded `HTTP/1.1 403 Forbidden` with an empty body.
            let mut head = ResponseHead::new(StatusCode::OK);
            push_istag(&mut head, istag);
            push_static(&mut head, "Encapsulated", "res-hdr=0, res-body=0");
            let found = InfectionFound {
                kind: Some(0),
                resolution: Some(0),
                threat: Bytes::from(threat.clone().into_bytes()),
            };
            head.headers.push(
                HeaderName::from_static("X-Infection-Found"),
                found.to_header_value().expect("threat was sanitised"),
            );
            push(&mut head, "X-Virus-ID", &threat);
            push_static(&mut head, "X-Response-Info", "Blocked");
            push_static(&mut head, "X-Response-Description", "Gel\u{f6}scht");
            apply_extra(&mut head, extra);
            let mut res = HttpResponseHead::new(403, "Forbidden").expect("static status line");
            res.headers
                .append("Content-Type", "text/html")
                .expect("static header is valid");
            res.headers
                .append("Content-Length", "0")
                .expect("static header is valid");
            head.http_response = Some(res);
            head.body = Some(BodyKind::Response);
            return (head, Some(Bytes::new()));
        }
        Dialect::Plain => {
            push(&mut head, "X-Virus-ID", &threat);
            let bare = HttpResponseHead::new(403, "Forbidden").expect("static status line");
            head.http_response = Some(bare);
            head.body = None;
            return (head, None);
        }
    }
    head.http_response = Some(res);
    head.body = Some(BodyKind::Response);
    (head, Some(page))
}

/// Extra ICAP headers a dialect puts on clean answers.
pub(crate) fn clean_headers(dialect: Dialect, head: &mut ResponseHead) {
    if dialect == Dialect::Kaspersky {
        push_static(head, "X-Virus-ID", "no threats");
    }
}

/// The dialect's `Encapsulated` on a bodyless `204`, `500` or `503` (see
/// [`Dialect::frames_bodyless_answers`]); other answers are left alone.
pub(crate) fn frame_bodyless(dialect: Dialect, head: &mut ResponseHead) {
    let status = head.status.as_u16();
    if dialect.frames_bodyless_answers()
        && matches!(status, 204 | 500 | 503)
        && head.body.is_none()
        && head.http_response.is_none()
        && head.http_request.is_none()
        && !head.headers.contains("Encapsulated")
    {
        // The encoder writes the computed value (`null-body=0`) in this place.
        push_static(head, "Encapsulated", "null-body=0");
    }
}

/// The clean `204` of a dialect. c-icap's is the captured one, byte for byte:
/// `ICAP/1.0 204 Unmodified`, `Server`, `Connection: keep-alive`, then `ISTag`.
pub(crate) fn no_content(
    dialect: Dialect,
    istag: &str,
    extra: &[(String, String)],
) -> ResponseHead {
    let mut head = if dialect == Dialect::CIcap {
        let mut h = ResponseHead::new(StatusCode::NO_CONTENT)
            .with_reason("Unmodified")
            .expect("static reason is valid");
        push_static(&mut h, "Server", "C-ICAP/0.5.10");
        push_static(&mut h, "Connection", "keep-alive");
        push_istag(&mut h, istag);
        apply_extra(&mut h, extra);
        h
    } else {
        base(204, istag, extra)
    };
    clean_headers(dialect, &mut head);
    frame_bodyless(dialect, &mut head);
    head
}

/// `500`-style error with `X-Error-Code`.
pub(crate) fn error(
    status: u16,
    code: &str,
    istag: &str,
    extra: &[(String, String)],
) -> ResponseHead {
    let mut head = base(status, istag, extra);
    push(&mut head, "X-Error-Code", code);
    head
}
