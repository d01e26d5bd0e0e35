//! What a scan found: a verdict, never a guess.

use std::time::Duration;

use icap_proto::verdict::{self, ThreatSource};
use icap_proto::{Method, ResponseHead};
use serde::Serialize;

use crate::connection::ExchangeOutcome;
use crate::error::{Error, ErrorKind};

/// One threat the server reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Threat {
    /// The threat name as the server reported it.
    pub name: String,
    /// Where it was reported; serialized as `x-infection-found`, `x-violations-found`,
    /// `x-virus-id` or `http-block` (an embedded 403 block page or vendor headers).
    #[serde(serialize_with = "ser_threat_source")]
    pub source: ThreatSource,
    /// The file inside the scanned object, when the server names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl From<verdict::Threat> for Threat {
    fn from(t: verdict::Threat) -> Self {
        Threat {
            name: t.name,
            source: t.source,
            file: t.file.filter(|f| f != "-"),
        }
    }
}

/// The word the JSON output has always used for a threat's source.
pub(crate) fn threat_source_label(s: ThreatSource) -> &'static str {
    match s {
        ThreatSource::InfectionFound => "x-infection-found",
        ThreatSource::ViolationsFound => "x-violations-found",
        ThreatSource::VirusId => "x-virus-id",
        ThreatSource::HttpBlock => "http-block",
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's serialize_with passes a reference
fn ser_threat_source<S: serde::Serializer>(s: &ThreatSource, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(threat_source_label(*s))
}

/// Why a file was not scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotScannedReason {
    /// The file is larger than the configured size limit; nothing was sent.
    TooLarge {
        /// The file size (or the bytes read before the limit was passed).
        size: u64,
        /// The configured [`max_size`](crate::ClientBuilder::max_size) it exceeded.
        limit: u64,
    },
    /// The server could not scan the content (encrypted archive, ...): `X-Error-Code`.
    Unscannable {
        /// The server's code, for example `password_protected`.
        code: String,
        /// The ICAP status it came with.
        status: u16,
    },
    /// The service lists the file's extension in `Transfer-Ignore`.
    IgnoredByServer {
        /// The extension, without its dot, as the service's `Transfer-Ignore` lists it.
        extension: String,
    },
}

/// The result of a scan.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The server found nothing (`204`, or a `200` echoing the body unchanged).
    Clean,
    /// The server found threats.
    Infected {
        /// Each threat once.
        threats: Vec<Threat>,
    },
    /// The server answered `200` with content different from what was sent and without
    /// naming a threat: the file was changed (cleaned, replaced by a notice, ...). Not clean.
    Modified {
        /// Status of the embedded HTTP response (RESPMOD), if any.
        http_status: Option<u16>,
        /// Length of the body the server sent back.
        body_len: u64,
    },
    /// The file was not scanned.
    NotScanned {
        /// Why: too large, unscannable for the server, or an extension it ignores.
        reason: NotScannedReason,
    },
    /// The scan failed: refused, timeout, TLS, protocol violation, `5xx`...
    Failed {
        /// What went wrong.
        error: Error,
    },
}

impl Verdict {
    /// Whether the server vouched for exactly these bytes (the only outcome that lets a
    /// file through unconditionally).
    pub fn is_clean(&self) -> bool {
        matches!(self, Verdict::Clean)
    }
    /// Whether the server named at least one threat.
    pub fn is_infected(&self) -> bool {
        matches!(self, Verdict::Infected { .. })
    }
    /// Whether the scan failed, so nothing is known about the file.
    pub fn is_failed(&self) -> bool {
        matches!(self, Verdict::Failed { .. })
    }
    /// The threats, empty unless infected.
    pub fn threats(&self) -> &[Threat] {
        match self {
            Verdict::Infected { threats } => threats,
            _ => &[],
        }
    }
    /// The error, if failed.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Verdict::Failed { error } => Some(error),
            _ => None,
        }
    }
    /// Which of the five outcomes this is, without its details.
    pub fn kind(&self) -> VerdictKind {
        match self {
            Verdict::Clean => VerdictKind::Clean,
            Verdict::Infected { .. } => VerdictKind::Infected,
            Verdict::Modified { .. } => VerdictKind::Modified,
            Verdict::NotScanned { .. } => VerdictKind::NotScanned,
            Verdict::Failed { .. } => VerdictKind::Failed,
        }
    }
    /// A short word for logs and the CLI: `clean`, `infected`, `modified`, `not_scanned`,
    /// `failed`.
    pub fn label(&self) -> &'static str {
        self.kind().label()
    }
}

/// The outcome of a scan without its details: what the audit log records. Serializes as
/// its [`label`](VerdictKind::label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerdictKind {
    /// See [`Verdict::Clean`].
    Clean,
    /// See [`Verdict::Infected`].
    Infected,
    /// See [`Verdict::Modified`].
    Modified,
    /// See [`Verdict::NotScanned`].
    NotScanned,
    /// See [`Verdict::Failed`].
    Failed,
}

impl VerdictKind {
    /// `clean`, `infected`, `modified`, `not_scanned` or `failed`.
    pub fn label(self) -> &'static str {
        match self {
            VerdictKind::Clean => "clean",
            VerdictKind::Infected => "infected",
            VerdictKind::Modified => "modified",
            VerdictKind::NotScanned => "not_scanned",
            VerdictKind::Failed => "failed",
        }
    }
}

/// A verdict with what is known about how it came about.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// What the scan found; flattened into the report's JSON (`"verdict": "clean"`, ...).
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The server URL that answered (or was last tried).
    pub server: Option<String>,
    /// The service name of that server (the URL's path).
    pub service: Option<String>,
    /// The `ISTag` of the answer.
    pub istag: Option<String>,
    /// The ICAP status of the answer.
    pub status: Option<u16>,
    /// Size of the body (bytes read from the source).
    pub size: u64,
    /// Body bytes sent to the server (less than `size` after an early answer).
    pub sent: u64,
    /// SHA-256 of the body, hex, when computed.
    pub sha256: Option<String>,
    /// The preview size announced, if a preview was sent.
    pub preview: Option<u64>,
    /// The server answered before the whole body was sent.
    pub early_response: bool,
    /// Attempts made (a stale pooled connection or a failover adds one).
    pub attempts: u32,
    /// Wall time of the scan.
    #[serde(serialize_with = "ser_duration_ms", rename = "duration_ms")]
    pub duration: Duration,
}

pub(crate) fn ser_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// The `X-Error-Code` of a response, if any (c-icap, `Symantec`: why a file could not be scanned).
fn error_code(head: &ResponseHead) -> Option<String> {
    head.headers
        .get("X-Error-Code")
        .map(|v| v.to_str_lossy().trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Maps a response to a verdict. An infection signalled anywhere wins over everything
/// else, so an error status can never hide it.
pub(crate) fn from_exchange(method: Method, ex: &ExchangeOutcome) -> Verdict {
    let head = &ex.head;
    let threats: Vec<Threat> = verdict::threats(head)
        .into_iter()
        .map(Threat::from)
        .collect();
    if !threats.is_empty() {
        return Verdict::Infected { threats };
    }
    let status = head.status.as_u16();
    if let Some(code) = error_code(head) {
        return Verdict::NotScanned {
            reason: NotScannedReason::Unscannable { code, status },
        };
    }
    match status {
        // The server vouches for the file only if it saw all of it, or chose to decide on
        // the preview (RFC 3507 section 4.5). A 204 that ends the exchange while the body
        // is still going out says nothing about the bytes it never read.
        204 if ex.body_complete || ex.answered_in_preview => Verdict::Clean,
        204 => Verdict::Failed {
            error: Error::protocol(format!(
                "the server answered 204 after {} bytes, before the whole file was sent: \
                 not a verdict about the file",
                ex.sent
            )),
        },
        200 => {
            let http_status = head
                .http_response
                .as_ref()
                .map(icap_proto::HttpResponseHead::status);
            // An echo is clean only if it is provably the same content with the same meaning.
            let same_meaning = match method {
                Method::Respmod => http_status == Some(200),
                _ => head.http_request.is_some() && head.http_response.is_none(),
            };
            let same_body = match (ex.sent_sha256, ex.body_sha256) {
                (Some(a), Some(b)) => a == b && ex.body_complete,
                // Nothing encapsulated back and nothing sent: nothing changed.
                (_, None) => ex.sent == 0 && head.body.is_none() && ex.body_complete,
                _ => false,
            };
            if same_meaning && same_body {
                Verdict::Clean
            } else {
                Verdict::Modified {
                    http_status,
                    body_len: ex.body_len,
                }
            }
        }
        s => Verdict::Failed {
            error: status_error(s, head),
        },
    }
}

pub(crate) fn status_error(status: u16, head: &ResponseHead) -> Error {
    let reason = String::from_utf8_lossy(head.reason()).into_owned();
    let hint = match status {
        404 => " (wrong service name?)",
        405 => " (method not offered by this service)",
        503 => " (server overloaded)",
        _ => "",
    };
    Error::new(
        ErrorKind::Status(status),
        format!("ICAP server answered {status} {reason}{hint}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use icap_proto::{Event, Limits, ResponseDecoder};

    #[test]
    fn threat_sources_serialize_as_they_always_did() {
        let cases = [
            (ThreatSource::InfectionFound, "x-infection-found"),
            (ThreatSource::ViolationsFound, "x-violations-found"),
            (ThreatSource::VirusId, "x-virus-id"),
            (ThreatSource::HttpBlock, "http-block"),
        ];
        for (source, word) in cases {
            let t = Threat {
                name: "Eicar".into(),
                source,
                file: None,
            };
            assert_eq!(
                serde_json::to_string(&t).expect("serialises"),
                format!(r#"{{"name":"Eicar","source":"{word}"}}"#)
            );
        }
        let t = Threat {
            name: "W".into(),
            source: ThreatSource::ViolationsFound,
            file: Some("a.zip/b.exe".into()),
        };
        assert_eq!(
            serde_json::to_string(&t).expect("serialises"),
            r#"{"name":"W","source":"x-violations-found","file":"a.zip/b.exe"}"#
        );
    }

    fn head(raw: &str) -> ResponseHead {
        let mut dec = ResponseDecoder::new(Method::Respmod, Limits::default());
        let mut buf = BytesMut::from(raw.as_bytes());
        match dec.decode(&mut buf).unwrap() {
            Some(Event::Head(h)) => *h,
            other => panic!("{other:?}"),
        }
    }

    fn ex(h: ResponseHead, sent: &[u8], back: Option<&[u8]>) -> ExchangeOutcome {
        use sha2::Digest;
        ExchangeOutcome {
            head: Box::new(h),
            body_len: back.map_or(0, |b| b.len() as u64),
            body_sha256: back.map(|b| sha2::Sha256::digest(b).into()),
            sent: sent.len() as u64,
            sent_sha256: Some(sha2::Sha256::digest(sent).into()),
            body_complete: true,
            early: false,
            answered_in_preview: false,
            continued: false,
            ieof: true,
            reusable: true,
        }
    }

    type Row<'a> = (&'a str, &'a [u8], Option<&'a [u8]>, &'a str);

    #[test]
    fn table() {
        let r200 = "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        let r403 = "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n";
        let rows: Vec<Row> = vec![
            ("ICAP/1.0 204 No Content\r\n\r\n", b"abc", None, "clean"),
            (r200, b"abc", Some(b"abc"), "clean"),
            (r200, b"abc", Some(b"abd"), "modified"),
            (r403, b"abc", Some(b"blocked"), "infected"),
            (
                "ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=EICAR;\r\nEncapsulated: null-body=0\r\n\r\n",
                b"x",
                None,
                "infected",
            ),
            (
                "ICAP/1.0 500 Server Error\r\nX-Error-Code: password_protected\r\n\r\n",
                b"x",
                None,
                "not_scanned",
            ),
            (
                "ICAP/1.0 503 Service Overloaded\r\n\r\n",
                b"x",
                None,
                "failed",
            ),
            (
                "ICAP/1.0 503 Service Overloaded\r\nX-Virus-ID: Worm.X\r\n\r\n",
                b"x",
                None,
                "infected",
            ),
        ];
        for (raw, sent, back, want) in rows {
            let v = from_exchange(Method::Respmod, &ex(head(raw), sent, back));
            assert_eq!(v.label(), want, "{raw}");
        }
    }

    #[test]
    fn early_204_is_not_clean_unless_it_answers_the_preview() {
        let mut e = ex(head("ICAP/1.0 204 No Content\r\n\r\n"), b"abc", None);
        e.body_complete = false;
        e.early = true;
        let v = from_exchange(Method::Respmod, &e);
        assert!(v.is_failed(), "{v:?}");
        e.answered_in_preview = true;
        assert!(from_exchange(Method::Respmod, &e).is_clean());
    }

    #[test]
    fn echo_of_incomplete_body_is_not_clean() {
        let r200 = "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        let mut e = ex(head(r200), b"abc", Some(b"abc"));
        e.body_complete = false;
        assert_eq!(from_exchange(Method::Respmod, &e).label(), "modified");
    }
}
