//! `verify-dialect`: a recording's requests against a built-in dialect, field by field.
//!
//! Each recorded request is sent to an in-process mock answering in the dialect, and its
//! answer is compared with what the real server sent: status, reason, ICAP header names and
//! their order, the verdict headers' values, what is encapsulated and the embedded HTTP
//! status. A recording without bodies (the default) gets a stand-in body of the recorded
//! length (at most 1 MiB): EICAR when the real server reported a threat, plain text
//! otherwise, so the dialect is asked the same question the real server answered.

use std::fmt::Write as _;
use std::path::Path;

use bytes::BytesMut;
use icap_proto::{Event, Limits, Method, RequestDecoder, ResponseDecoder, ResponseHead, chunked};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::replay::{Replay, ReplayError, decode_answer};
use crate::scan::EICAR;
use crate::server::MockServer;
use crate::service::{Dialect, ServiceConfig};

/// Headers that carry a verdict: their values are compared, not only their names.
const VERDICT_HEADERS: [&str; 6] = [
    "X-Infection-Found",
    "X-Violations-Found",
    "X-Virus-ID",
    "X-Blocked",
    "X-Response-Info",
    "X-Response-Desc",
];

/// The findings of [`verify_dialect`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// Exchanges compared.
    pub compared: usize,
    /// One line per difference: `stem METHOD file: field: recorded ..., dialect ...`.
    pub differences: Vec<String>,
    /// Exchanges that could not be compared, and why.
    pub skipped: Vec<String>,
}

impl Report {
    /// Whether the dialect answered every request as the recorded server did.
    pub fn is_match(&self) -> bool {
        self.differences.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.differences {
            writeln!(f, "DIFF {d}")?;
        }
        for s in &self.skipped {
            writeln!(f, "SKIP {s}")?;
        }
        writeln!(
            f,
            "{} exchanges compared, {} differences, {} skipped",
            self.compared,
            self.differences.len(),
            self.skipped.len()
        )
    }
}

/// Why [`verify_dialect`] could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The recording did not load.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The in-process mock did not start.
    #[error(transparent)]
    Start(#[from] crate::StartError),
}

/// Replays the recording in `dir` against `dialect` and reports the differences.
pub async fn verify_dialect(dir: &Path, dialect: Dialect) -> Result<Report, VerifyError> {
    let replay = Replay::load(dir)?;
    let mut services: Vec<String> = replay.metas().map(|m| m.service.clone()).collect();
    services.sort();
    services.dedup();
    let mut builder = MockServer::builder().triggers(false);
    for s in services.iter().filter(|s| !s.is_empty()) {
        builder = builder.service(ServiceConfig::new(s).dialect(dialect));
    }
    let server = builder.try_start().await?;
    let mut report = Report::default();
    let limits = Limits::default();
    for entry in replay.entries() {
        let m = &entry.meta;
        let label = format!(
            "{} {} {}",
            m.stem,
            m.method,
            m.filename.as_deref().unwrap_or("-")
        );
        let Some(method) = Method::from_bytes(m.method.as_bytes()) else {
            report.skipped.push(format!("{label}: unknown method"));
            continue;
        };
        let recorded = match std::fs::read(&entry.res) {
            Ok(b) => decode_answer(&b, method, limits),
            Err(e) => Err(e.to_string()),
        };
        let recorded = match recorded {
            Ok(a) => a.head,
            Err(e) => {
                report.skipped.push(format!("{label}: {e}"));
                continue;
            }
        };
        let request = match std::fs::read(&entry.req) {
            Ok(b) => build_request(&b, m, &recorded, &server.url_for(&m.service), limits),
            Err(e) => Err(e.to_string()),
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                report.skipped.push(format!("{label}: request: {e}"));
                continue;
            }
        };
        let answer = match ask(server.addr(), &request, method, limits).await {
            Ok(h) => h,
            Err(e) => {
                report.skipped.push(format!("{label}: the dialect: {e}"));
                continue;
            }
        };
        report.compared += 1;
        compare(&label, &recorded, &answer, &mut report.differences);
    }
    server.shutdown().await;
    Ok(report)
}

/// The recorded request, re-aimed at the mock, without a preview, with its body or a
/// stand-in.
fn build_request(
    req: &[u8],
    meta: &crate::record::RecordMeta,
    recorded: &ResponseHead,
    url: &str,
    limits: Limits,
) -> Result<Vec<u8>, String> {
    let mut buf = BytesMut::from(req);
    let mut dec = RequestDecoder::new(limits);
    let mut head = None;
    let mut body = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(Event::Head(h))) => head = Some(h),
            Ok(Some(Event::Data(d))) => body.extend_from_slice(&d),
            Ok(Some(Event::End(_) | Event::PreviewEnd { .. }) | None) | Err(_) => break,
        }
        if head.is_some() && !meta.body_kept {
            break;
        }
    }
    let mut head = head.ok_or("no request head in the .req file")?;
    head.uri = icap_proto::Uri::parse(url.to_owned()).map_err(|e| e.to_string())?;
    head.headers.remove("Preview");
    if !meta.body_kept && head.body.is_some() {
        let threat = VERDICT_HEADERS[..3]
            .iter()
            .any(|h| recorded.headers.contains(h));
        let len = usize::try_from(meta.body_len.min(1024 * 1024)).unwrap_or(0);
        body = if threat {
            EICAR.to_vec()
        } else {
            b"stand-in body for a clean file\n"
                .iter()
                .copied()
                .cycle()
                .take(len)
                .collect()
        };
    }
    let mut out = BytesMut::new();
    head.encode(&mut out).map_err(|e| e.to_string())?;
    if head.body.is_some() {
        chunked::encode_body(&body, &mut out);
    }
    Ok(out.to_vec())
}

async fn ask(
    addr: std::net::SocketAddr,
    request: &[u8],
    method: Method,
    limits: Limits,
) -> Result<ResponseHead, String> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(request).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::new();
        let mut dec = ResponseDecoder::new(method, limits);
        loop {
            match dec.decode(&mut buf).map_err(|e| e.to_string())? {
                Some(Event::Head(h)) if h.status.as_u16() != 100 => return Ok(*h),
                Some(_) => {}
                None => {
                    if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                        return Err("closed without an answer".to_owned());
                    }
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), work)
        .await
        .map_err(|_| "no answer in 30 s".to_owned())?
}

fn names(h: &ResponseHead) -> Vec<String> {
    h.headers
        .iter()
        .map(|(n, _)| n.as_str().to_owned())
        .collect()
}

fn compare(label: &str, recorded: &ResponseHead, dialect: &ResponseHead, out: &mut Vec<String>) {
    let mut diff = |field: &str, r: String, d: String| {
        if r != d {
            let mut line = String::new();
            let _ = write!(line, "{label}: {field}: recorded {r}, dialect {d}");
            out.push(line);
        }
    };
    diff(
        "status",
        recorded.status.as_u16().to_string(),
        dialect.status.as_u16().to_string(),
    );
    diff(
        "reason",
        format!("{:?}", String::from_utf8_lossy(recorded.reason())),
        format!("{:?}", String::from_utf8_lossy(dialect.reason())),
    );
    diff(
        "header names in order",
        names(recorded).join(", "),
        names(dialect).join(", "),
    );
    for h in VERDICT_HEADERS {
        let v = |x: &ResponseHead| {
            x.headers.get(h).map_or_else(
                || "(absent)".to_owned(),
                |v| format!("{:?}", v.to_str_lossy()),
            )
        };
        diff(h, v(recorded), v(dialect));
    }
    diff(
        "encapsulated",
        recorded.encapsulated().to_string(),
        dialect.encapsulated().to_string(),
    );
    let http = |x: &ResponseHead| {
        x.http_response
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), |r| r.status().to_string())
    };
    diff("embedded HTTP status", http(recorded), http(dialect));
}
