//! Methods, versions, status codes and ICAP URIs.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::EncodeError;

/// An ICAP method (RFC 3507 section 4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Method {
    /// `OPTIONS`: ask a service what it supports.
    Options,
    /// `REQMOD`: request modification.
    Reqmod,
    /// `RESPMOD`: response modification.
    Respmod,
}

impl Method {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Reqmod => "REQMOD",
            Method::Respmod => "RESPMOD",
        }
    }

    /// Parses the exact (case-sensitive) method token.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        match b {
            b"OPTIONS" => Some(Method::Options),
            b"REQMOD" => Some(Method::Reqmod),
            b"RESPMOD" => Some(Method::Respmod),
            _ => None,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = EncodeError;
    fn from_str(s: &str) -> Result<Self, EncodeError> {
        Method::from_bytes(s.as_bytes()).ok_or(EncodeError::InvalidToken)
    }
}

/// The protocol version every message carries; only `ICAP/1.0` exists.
pub const VERSION: &str = "ICAP/1.0";

/// An ICAP status code, any three digits (real servers send non-RFC ones such as 201 or 539).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// `100 Continue`.
    pub const CONTINUE: StatusCode = StatusCode(100);
    /// `200 OK`.
    pub const OK: StatusCode = StatusCode(200);
    /// `204 No Content` (unmodified).
    pub const NO_CONTENT: StatusCode = StatusCode(204);
    /// `400 Bad Request`.
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// `404 ICAP Service Not Found`.
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    /// `405 Method Not Allowed For Service`.
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode(405);
    /// `500 Server Error`.
    pub const SERVER_ERROR: StatusCode = StatusCode(500);
    /// `501 Method Not Implemented`.
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    /// `503 Service Overloaded`.
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);
    /// `505 ICAP Version Not Supported`.
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);

    /// A status code in `100..=999`.
    pub fn new(code: u16) -> Result<Self, EncodeError> {
        if (100..=999).contains(&code) {
            Ok(StatusCode(code))
        } else {
            Err(EncodeError::InvalidStatus)
        }
    }

    /// The number.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub fn is_informational(self) -> bool {
        self.0 < 200
    }
    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
    /// 4xx.
    pub fn is_client_error(self) -> bool {
        (400..500).contains(&self.0)
    }
    /// 5xx and above.
    pub fn is_server_error(self) -> bool {
        self.0 >= 500
    }

    /// The RFC 3507 reason phrase, or a generic one.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            206 => "Partial Content",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "ICAP Service Not Found",
            405 => "Method Not Allowed For Service",
            408 => "Request Timeout",
            500 => "Server Error",
            501 => "Method Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Overloaded",
            505 => "ICAP Version Not Supported",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `icap` or `icaps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `icap://`, plain TCP, default port 1344.
    Icap,
    /// `icaps://`, ICAP over TLS, default port 11344.
    Icaps,
}

impl Scheme {
    /// The scheme name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Icap => "icap",
            Scheme::Icaps => "icaps",
        }
    }
    /// The port used when the URI names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Icap => 1344,
            Scheme::Icaps => 11344,
        }
    }
}

/// An ICAP URI: `icap[s]://host[:port][/path][?query]`.
///
/// ```
/// use icap_proto::{Scheme, Uri};
/// let uri: Uri = "icap://av.example.net/avscan?mode=fast".parse().unwrap();
/// assert_eq!(uri.scheme(), Scheme::Icap);
/// assert_eq!(uri.host(), "av.example.net");
/// assert_eq!(uri.port(), 1344);
/// assert_eq!(uri.service(), "avscan");
/// assert_eq!(uri.to_string(), "icap://av.example.net/avscan?mode=fast");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Uri {
    raw: Bytes,
    scheme: Scheme,
    host: (usize, usize),
    port: Option<u16>,
    path_start: usize,
}

/// Where [`Uri::check`] found a URI's parts in its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UriParts {
    scheme: Scheme,
    host: (usize, usize),
    port: Option<u16>,
    path_start: usize,
}

impl Uri {
    /// The URI's bytes, for [`RequestHead::detached`](crate::RequestHead::detached).
    pub(crate) fn raw_mut(&mut self) -> &mut Bytes {
        &mut self.raw
    }

    /// Parses and validates a URI.
    pub fn parse(raw: impl Into<Bytes>) -> Result<Self, EncodeError> {
        let raw: Bytes = raw.into();
        let parts = Self::check(&raw)?;
        Ok(Self::from_checked(raw, parts))
    }

    /// A URI of bytes that [`Uri::check`] accepted with `parts`.
    pub(crate) fn from_checked(raw: Bytes, parts: UriParts) -> Self {
        Uri {
            raw,
            scheme: parts.scheme,
            host: parts.host,
            port: parts.port,
            path_start: parts.path_start,
        }
    }

    /// Validates a URI's bytes and finds its parts, without keeping the bytes.
    pub(crate) fn check(s: &[u8]) -> Result<UriParts, EncodeError> {
        if crate::header::has_invisible(s) {
            return Err(EncodeError::InvalidUri);
        }
        Uri::check_visible(s)
    }

    /// [`Uri::check`] of bytes already known to be visible (the decoder's request target,
    /// which the request line's parser checked): the same answer without the second pass.
    pub(crate) fn check_visible(s: &[u8]) -> Result<UriParts, EncodeError> {
        debug_assert!(!crate::header::has_invisible(s));
        if s.is_empty() {
            return Err(EncodeError::InvalidUri);
        }
        let (scheme, rest_at) = if s.len() >= 7 && s[..7].eq_ignore_ascii_case(b"icap://") {
            (Scheme::Icap, 7)
        } else if s.len() >= 8 && s[..8].eq_ignore_ascii_case(b"icaps://") {
            (Scheme::Icaps, 8)
        } else {
            return Err(EncodeError::InvalidUri);
        };
        let rest = &s[rest_at..];
        // One pass over the authority: where it ends, any userinfo, the first colon.
        let (mut auth_len, mut userinfo, mut colon) = (rest.len(), false, None);
        for (i, &b) in rest.iter().enumerate() {
            match b {
                b'/' | b'?' => {
                    auth_len = i;
                    break;
                }
                b'@' => userinfo = true,
                b':' if colon.is_none() => colon = Some(i),
                _ => {}
            }
        }
        let auth = &rest[..auth_len];
        if userinfo {
            return Err(EncodeError::InvalidUri);
        }
        // IPv6 literals are bracketed; their colons are not the port separator.
        let (host_len, port) = if auth.first() == Some(&b'[') {
            let close = auth
                .iter()
                .position(|&b| b == b']')
                .ok_or(EncodeError::InvalidUri)?;
            match &auth[close + 1..] {
                [] => (close + 1, None),
                [b':', p @ ..] => (close + 1, Some(parse_port(p)?)),
                _ => return Err(EncodeError::InvalidUri),
            }
        } else {
            match colon {
                Some(c) => (c, Some(parse_port(&auth[c + 1..])?)),
                None => (auth.len(), None),
            }
        };
        if host_len == 0 {
            return Err(EncodeError::InvalidUri);
        }
        Ok(UriParts {
            scheme,
            host: (rest_at, rest_at + host_len),
            port,
            path_start: rest_at + auth_len,
        })
    }

    /// Builds `scheme://host[:port]/service`.
    pub fn new(
        scheme: Scheme,
        host: &str,
        port: Option<u16>,
        service: &str,
    ) -> Result<Self, EncodeError> {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let service = service.trim_start_matches('/');
        Uri::parse(format!("{}://{host}{port}/{service}", scheme.as_str()))
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host as written (IPv6 literals without their brackets).
    pub fn host(&self) -> &str {
        let h = self.str_at(self.host.0, self.host.1);
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
    }

    /// The explicit port, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.scheme.default_port())
    }

    /// The port if the URI names one.
    pub fn explicit_port(&self) -> Option<u16> {
        self.port
    }

    /// The path and query (`/avscan?x=1`), possibly empty.
    pub fn path_and_query(&self) -> &str {
        self.str_at(self.path_start, self.raw.len())
    }

    /// The service name: the path without its leading `/` and without the query.
    pub fn service(&self) -> &str {
        let p = self.path_and_query();
        let p = p.split('?').next().unwrap_or("");
        p.strip_prefix('/').unwrap_or(p)
    }

    /// The URI as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn str_at(&self, a: usize, b: usize) -> &str {
        // Validation rejected everything below 0x21; non-ASCII bytes may split UTF-8,
        // which only happens on hostile input, so an empty answer is fine there.
        std::str::from_utf8(&self.raw[a..b]).unwrap_or("")
    }
}

fn parse_port(p: &[u8]) -> Result<u16, EncodeError> {
    crate::header::parse_u64(p)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(EncodeError::InvalidUri)
}

impl FromStr for Uri {
    type Err = EncodeError;
    fn from_str(s: &str) -> Result<Self, EncodeError> {
        Uri::parse(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.raw))
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({self})")
    }
}
