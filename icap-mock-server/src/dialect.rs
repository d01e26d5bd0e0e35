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
    let v =
        HeaderValue::new(clean_text(value).into_bytes()).expect("control characters were replaced");
    head.headers.push(HeaderName::from_static(name), v);
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
    push(&mut head, "ISTag", &format!("\"{istag}\""));
    for (n, v) in extra {
        if let (Ok(n), Ok(v)) = (
            HeaderName::new(n.clone().into_bytes()),
            HeaderValue::new(clean_text(v).into_bytes()),
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
    head
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
        push(head, "X-Virus-ID", "no threats");
    }
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
