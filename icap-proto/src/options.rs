//! The typed answer to `OPTIONS` (RFC 3507 section 4.10).

use std::time::Duration;

use crate::error::EncodeError;
use crate::header::{HeaderName, HeaderValue, Headers};
use crate::message::{ResponseHead, allow_lists, unquote};
use crate::types::{Method, StatusCode};

/// What a service says about itself in its `OPTIONS` response.
///
/// ```
/// use icap_proto::{Method, OptionsResponse};
/// let mut o = OptionsResponse::new(vec![Method::Respmod], "\"av-1\"");
/// o.preview = Some(1024);
/// o.allow_204 = true;
/// let head = o.to_head().unwrap();
/// let back = OptionsResponse::from_head(&head).unwrap();
/// assert_eq!(back.preview, Some(1024));
/// assert_eq!(back.istag.as_deref(), Some("av-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptionsResponse {
    /// `Methods`: what the service supports (unknown methods are dropped).
    pub methods: Vec<Method>,
    /// `Service`: a description of the service.
    pub service: Option<String>,
    /// `ISTag` without quotes (unquoted values are tolerated).
    pub istag: Option<String>,
    /// `Max-Connections`.
    pub max_connections: Option<u32>,
    /// `Options-TTL`: how long this answer stays valid.
    pub options_ttl: Option<Duration>,
    /// `Preview`: how many bytes the service wants in a preview.
    pub preview: Option<u64>,
    /// `Transfer-Preview`: file extensions to send with a preview (`*` for all).
    pub transfer_preview: Vec<String>,
    /// `Transfer-Ignore`: file extensions not to send.
    pub transfer_ignore: Vec<String>,
    /// `Transfer-Complete`: file extensions to send whole.
    pub transfer_complete: Vec<String>,
    /// `Allow: 204`: the service may answer 204 outside a preview.
    pub allow_204: bool,
    /// `Allow: 206`.
    pub allow_206: bool,
    /// `Allow: trailers`.
    pub allow_trailers: bool,
    /// `Service-ID`.
    pub service_id: Option<String>,
    /// Every header as received.
    pub headers: Headers,
}

/// Why a response is not a usable `OPTIONS` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// The status was not 200.
    #[error("OPTIONS answered with status {0}")]
    Status(u16),
    /// A header the answer needs has a value that does not parse.
    #[error("invalid value in OPTIONS header {0}")]
    InvalidValue(&'static str),
}

/// What to do with a file of a given extension, from the `Transfer-*` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Send with a preview.
    Preview,
    /// Do not send.
    Ignore,
    /// Send whole, without a preview.
    Complete,
}

const TYPED: &[&str] = &[
    "Methods",
    "Service",
    "ISTag",
    "Max-Connections",
    "Options-TTL",
    "Preview",
    "Transfer-Preview",
    "Transfer-Ignore",
    "Transfer-Complete",
    "Allow",
    "Service-ID",
    "Encapsulated",
];

impl OptionsResponse {
    /// An answer offering `methods` with the given `ISTag` (quoted or not).
    pub fn new(methods: Vec<Method>, istag: &str) -> Self {
        OptionsResponse {
            methods,
            istag: Some(istag.trim_matches('"').to_owned()),
            ..OptionsResponse::default()
        }
    }

    /// Reads the typed fields from a response head.
    pub fn from_head(head: &ResponseHead) -> Result<Self, OptionsError> {
        if head.status != StatusCode::OK {
            return Err(OptionsError::Status(head.status.as_u16()));
        }
        let h = &head.headers;
        let text = |name| h.get(name).map(|v| v.to_str_lossy().into_owned());
        let num = |name: &'static str| -> Result<Option<u64>, OptionsError> {
            h.get(name)
                .map(|v| v.to_u64().ok_or(OptionsError::InvalidValue(name)))
                .transpose()
        };
        let list = |name| -> Vec<String> {
            h.get_all(name)
                .flat_map(|v| {
                    v.to_str_lossy()
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .collect::<Vec<_>>()
                })
                .filter(|s| !s.is_empty())
                .collect()
        };
        let methods = h
            .get_all("Methods")
            .flat_map(|v| {
                v.as_bytes()
                    .split(|&b| b == b',')
                    .map(crate::header::trim_ows)
                    .collect::<Vec<_>>()
            })
            .filter_map(Method::from_bytes)
            .collect();
        Ok(OptionsResponse {
            methods,
            service: text("Service"),
            istag: h
                .get("ISTag")
                .map(|v| String::from_utf8_lossy(unquote(v.as_bytes())).into_owned()),
            max_connections: num("Max-Connections")?
                .map(|n| {
                    u32::try_from(n).map_err(|_| OptionsError::InvalidValue("Max-Connections"))
                })
                .transpose()?,
            options_ttl: num("Options-TTL")?.map(Duration::from_secs),
            preview: num("Preview")?,
            transfer_preview: list("Transfer-Preview"),
            transfer_ignore: list("Transfer-Ignore"),
            transfer_complete: list("Transfer-Complete"),
            allow_204: allow_lists(h, b"204"),
            allow_206: allow_lists(h, b"206"),
            allow_trailers: allow_lists(h, b"trailers"),
            service_id: text("Service-ID"),
            headers: h.clone(),
        })
    }

    /// Whether `method` is offered.
    pub fn supports(&self, method: Method) -> bool {
        self.methods.contains(&method)
    }

    /// How a file with extension `ext` (no dot) should be sent, per RFC 3507 section 4.10.2:
    /// an explicit list wins, then a `*` wildcard, then preview.
    pub fn transfer_for(&self, ext: &str) -> Transfer {
        let has = |l: &[String]| l.iter().any(|e| e.eq_ignore_ascii_case(ext));
        let star = |l: &[String]| l.iter().any(|e| e == "*");
        if has(&self.transfer_ignore) {
            Transfer::Ignore
        } else if has(&self.transfer_complete) {
            Transfer::Complete
        } else if has(&self.transfer_preview) {
            Transfer::Preview
        } else if star(&self.transfer_complete) {
            Transfer::Complete
        } else if star(&self.transfer_ignore) {
            Transfer::Ignore
        } else {
            Transfer::Preview
        }
    }

    /// Builds the `200 OK` head a server sends. Fields in `headers` that the typed fields do
    /// not cover are appended after them.
    pub fn to_head(&self) -> Result<ResponseHead, EncodeError> {
        let mut head = ResponseHead::new(StatusCode::OK);
        let h = &mut head.headers;
        let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        h.append("Methods", methods.join(", ").as_str())?;
        if let Some(s) = &self.service {
            h.append("Service", s.as_str())?;
        }
        if let Some(t) = &self.istag {
            h.append("ISTag", format!("\"{t}\""))?;
        }
        if let Some(n) = self.max_connections {
            h.push(
                HeaderName::from_static("Max-Connections"),
                HeaderValue::from_u64(n.into()),
            );
        }
        if let Some(d) = self.options_ttl {
            h.push(
                HeaderName::from_static("Options-TTL"),
                HeaderValue::from_u64(d.as_secs()),
            );
        }
        if let Some(p) = self.preview {
            h.push(HeaderName::from_static("Preview"), HeaderValue::from_u64(p));
        }
        for (name, l) in [
            ("Transfer-Preview", &self.transfer_preview),
            ("Transfer-Ignore", &self.transfer_ignore),
            ("Transfer-Complete", &self.transfer_complete),
        ] {
            if !l.is_empty() {
                h.append(name, l.join(", "))?;
            }
        }
        let allow: Vec<&str> = [
            (self.allow_204, "204"),
            (self.allow_206, "206"),
            (self.allow_trailers, "trailers"),
        ]
        .into_iter()
        .filter_map(|(on, s)| on.then_some(s))
        .collect();
        if !allow.is_empty() {
            h.append("Allow", allow.join(", ").as_str())?;
        }
        if let Some(s) = &self.service_id {
            h.append("Service-ID", s.as_str())?;
        }
        for (n, v) in &self.headers {
            if !TYPED.iter().any(|t| n.is(t)) {
                h.push(n.clone(), v.clone());
            }
        }
        Ok(head)
    }
}
