//! The journal: what the server received and what it answered.

use std::net::SocketAddr;

use icap_proto::{Headers, HttpRequestHead, HttpResponseHead, Method};
use serde_json::{Value, json};

/// One received request and the server's answer.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // independent facts of one message
pub struct Transaction {
    /// Sequence number, from 1.
    pub id: u64,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The ICAP method.
    pub method: Method,
    /// The service name.
    pub service: String,
    /// The ICAP request URI.
    pub uri: String,
    /// The ICAP header fields as received.
    pub icap_headers: Headers,
    /// The embedded HTTP request head.
    pub http_request: Option<HttpRequestHead>,
    /// The embedded HTTP response head.
    pub http_response: Option<HttpResponseHead>,
    /// Body bytes received (preview included).
    pub body_len: u64,
    /// SHA-256 of the received body, lowercase hex (of the empty string for no body).
    pub body_sha256: String,
    /// The announced `Preview` size, if a preview was sent.
    pub preview: Option<u64>,
    /// Body bytes that came in the preview.
    pub preview_bytes: u64,
    /// The preview ended with `ieof`.
    pub ieof: bool,
    /// Whether the client sent `Allow: 204`.
    pub allow_204: bool,
    /// The final status sent (`None` when a fault sent none). `100 Continue` is not counted.
    pub status: Option<u16>,
    /// Whether a `100 Continue` was sent.
    pub continued: bool,
    /// The threat reported, if any.
    pub threat: Option<String>,
    /// The fault applied, if any (its name, as in [`FaultKind::name`](crate::FaultKind::name)).
    pub fault: Option<String>,
    /// The id of the rule that applied, if any.
    pub rule: Option<u64>,
    /// Whether the whole request was received.
    pub complete: bool,
}

impl Transaction {
    /// The first value of an ICAP header as text.
    pub fn icap_header(&self, name: &str) -> Option<String> {
        self.icap_headers
            .get(name)
            .map(|v| v.to_str_lossy().into_owned())
    }

    /// The transaction as JSON (the admin API's journal format).
    pub fn to_json(&self) -> Value {
        fn headers(h: &Headers) -> Value {
            Value::Array(
                h.iter()
                    .map(|(n, v)| json!([n.as_str(), v.to_str_lossy()]))
                    .collect(),
            )
        }
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        json!({
            "id": self.id,
            "peer": self.peer.map(|p| p.to_string()),
            "method": self.method.as_str(),
            "service": self.service,
            "uri": self.uri,
            "icap_headers": headers(&self.icap_headers),
            "http_request": self.http_request.as_ref().map(|r| json!({
                "method": lossy(r.method()),
                "target": lossy(r.target()),
                "version": lossy(r.version()),
                "headers": headers(&r.headers),
            })),
            "http_response": self.http_response.as_ref().map(|r| json!({
                "status": r.status(),
                "reason": lossy(r.reason()),
                "version": lossy(r.version()),
                "headers": headers(&r.headers),
            })),
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "preview": self.preview,
            "preview_bytes": self.preview_bytes,
            "ieof": self.ieof,
            "allow_204": self.allow_204,
            "status": self.status,
            "continued": self.continued,
            "threat": self.threat,
            "fault": self.fault,
            "rule": self.rule,
            "complete": self.complete,
        })
    }
}
