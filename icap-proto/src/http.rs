//! Embedded HTTP request and response heads (RFC 3507 section 4.4).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::header::{Headers, is_token};
use crate::limits::Limits;
use crate::parse;

/// An embedded HTTP request head: `GET /path HTTP/1.1` and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestHead {
    method: Bytes,
    target: Bytes,
    version: Bytes,
    /// The HTTP header fields in order.
    pub headers: Headers,
}

/// An embedded HTTP response head: `HTTP/1.1 200 OK` and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponseHead {
    version: Bytes,
    status: u16,
    reason: Bytes,
    /// The HTTP header fields in order.
    pub headers: Headers,
}

fn check_version(v: &[u8]) -> bool {
    v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
}

fn check_target(t: &[u8]) -> bool {
    !t.is_empty() && t.iter().all(|&b| b > b' ' && b != 0x7f)
}

fn check_reason(r: &[u8]) -> bool {
    memchr::memchr3(b'\r', b'\n', 0, r).is_none()
}

impl HttpRequestHead {
    /// Calls `f` on every piece of the head that is a view of shared bytes.
    pub(crate) fn for_each_shared(&mut self, f: &mut dyn FnMut(&mut Bytes)) {
        f(&mut self.method);
        f(&mut self.target);
        f(&mut self.version);
        self.headers.for_each_shared(f);
    }

    /// `method target HTTP/1.1` with no headers. The method must be a token and the target
    /// visible characters without spaces.
    ///
    /// ```
    /// use icap_proto::HttpRequestHead;
    /// let mut req = HttpRequestHead::new("POST", "/upload/report.pdf").unwrap();
    /// req.headers.append("Host", "files.example.com").unwrap();
    /// assert!(HttpRequestHead::new("GET", "/a b").is_err());
    /// ```
    pub fn new(method: &str, target: &str) -> Result<Self, EncodeError> {
        if !is_token(method.as_bytes()) {
            return Err(EncodeError::InvalidToken);
        }
        if !check_target(target.as_bytes()) {
            return Err(EncodeError::InvalidText);
        }
        Ok(HttpRequestHead {
            method: Bytes::copy_from_slice(method.as_bytes()),
            target: Bytes::copy_from_slice(target.as_bytes()),
            version: Bytes::from_static(b"HTTP/1.1"),
            headers: Headers::new(),
        })
    }

    /// Sets the version (`HTTP/1.0` or `HTTP/1.1`).
    pub fn with_version(mut self, version: &str) -> Result<Self, EncodeError> {
        if !check_version(version.as_bytes()) {
            return Err(EncodeError::InvalidToken);
        }
        self.version = Bytes::copy_from_slice(version.as_bytes());
        Ok(self)
    }

    /// The method.
    pub fn method(&self) -> &[u8] {
        &self.method
    }
    /// The request target (usually a URL or path).
    pub fn target(&self) -> &[u8] {
        &self.target
    }
    /// The version.
    pub fn version(&self) -> &[u8] {
        &self.version
    }

    /// Bytes [`HttpRequestHead::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len_with(self.headers.encoded_len())
    }

    /// [`HttpRequestHead::encoded_len`] with the fields' share already known.
    fn encoded_len_with(&self, fields: usize) -> usize {
        // Saturating: sizes of values in memory, but no sum here may wrap.
        [
            self.method.len(),
            self.target.len(),
            self.version.len(),
            4,
            fields,
            2,
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }

    /// Writes the head with its terminating empty line.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        out.put_slice(&self.method);
        out.put_u8(b' ');
        out.put_slice(&self.target);
        out.put_u8(b' ');
        out.put_slice(&self.version);
        out.put_slice(b"\r\n");
        self.headers.encode(out);
        out.put_slice(b"\r\n");
    }

    /// Parses a complete head (ending with the empty line) from `section`.
    pub(crate) fn decode(
        section: Bytes,
        limits: &Limits,
        obs_fold: bool,
    ) -> Result<Self, DecodeError> {
        let (rest, (method, target, version)) =
            parse::parse_request_line(&section).map_err(|_| DecodeError::InvalidHttpHead)?;
        if !check_version(version) {
            return Err(DecodeError::InvalidHttpHead);
        }
        let (method, target, version) = (
            parse::share(&section, method),
            section.slice_ref(target),
            parse::share(&section, version),
        );
        let from = section.len() - rest.len();
        let (headers, rest, fields_len) = parse::parse_fields(
            section,
            from,
            limits,
            parse::FieldRules {
                obs_fold,
                icap: false,
            },
        )?;
        if rest != 2 {
            return Err(DecodeError::EncapsulatedMismatch);
        }
        let head = HttpRequestHead {
            method,
            target,
            version,
            headers,
        };
        check_encoded_len(head.encoded_len_with(fields_len), limits)?;
        Ok(head)
    }
}

impl HttpResponseHead {
    /// Calls `f` on every piece of the head that is a view of shared bytes.
    pub(crate) fn for_each_shared(&mut self, f: &mut dyn FnMut(&mut Bytes)) {
        f(&mut self.version);
        f(&mut self.reason);
        self.headers.for_each_shared(f);
    }

    /// `HTTP/1.1 status reason` with no headers.
    ///
    /// ```
    /// use icap_proto::HttpResponseHead;
    /// let res = HttpResponseHead::new(200, "OK").unwrap();
    /// assert_eq!(res.status(), 200);
    /// ```
    pub fn new(status: u16, reason: &str) -> Result<Self, EncodeError> {
        if !(100..=999).contains(&status) {
            return Err(EncodeError::InvalidStatus);
        }
        if !check_reason(reason.as_bytes()) {
            return Err(EncodeError::InvalidText);
        }
        Ok(HttpResponseHead {
            version: Bytes::from_static(b"HTTP/1.1"),
            status,
            reason: Bytes::copy_from_slice(reason.as_bytes()),
            headers: Headers::new(),
        })
    }

    /// Sets the version (`HTTP/1.0` or `HTTP/1.1`).
    pub fn with_version(mut self, version: &str) -> Result<Self, EncodeError> {
        if !check_version(version.as_bytes()) {
            return Err(EncodeError::InvalidToken);
        }
        self.version = Bytes::copy_from_slice(version.as_bytes());
        Ok(self)
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }
    /// The reason phrase.
    pub fn reason(&self) -> &[u8] {
        &self.reason
    }
    /// The version.
    pub fn version(&self) -> &[u8] {
        &self.version
    }

    /// Bytes [`HttpResponseHead::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len_with(self.headers.encoded_len())
    }

    /// [`HttpResponseHead::encoded_len`] with the fields' share already known.
    fn encoded_len_with(&self, fields: usize) -> usize {
        [self.version.len(), 5, self.reason.len(), 2, fields, 2]
            .into_iter()
            .fold(0, usize::saturating_add)
    }

    /// Writes the head with its terminating empty line.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        out.put_slice(&self.version);
        out.put_u8(b' ');
        out.put_slice(&status_digits(self.status));
        out.put_u8(b' ');
        out.put_slice(&self.reason);
        out.put_slice(b"\r\n");
        self.headers.encode(out);
        out.put_slice(b"\r\n");
    }

    pub(crate) fn decode(
        section: Bytes,
        limits: &Limits,
        obs_fold: bool,
    ) -> Result<Self, DecodeError> {
        let (rest, (version, status, reason)) =
            parse::parse_status_line(&section).map_err(|_| DecodeError::InvalidHttpHead)?;
        if !check_version(version) {
            return Err(DecodeError::InvalidHttpHead);
        }
        let (version, reason) = (
            parse::share(&section, version),
            parse::share(&section, reason),
        );
        let from = section.len() - rest.len();
        let (headers, rest, fields_len) = parse::parse_fields(
            section,
            from,
            limits,
            parse::FieldRules {
                obs_fold,
                icap: false,
            },
        )?;
        if rest != 2 {
            return Err(DecodeError::EncapsulatedMismatch);
        }
        let head = HttpResponseHead {
            version,
            status,
            reason,
            headers,
        };
        check_encoded_len(head.encoded_len_with(fields_len), limits)?;
        Ok(head)
    }
}

/// A decoded head must also fit [`Limits::max_http_head`] as the encoder writes it (a field
/// received as `name:value` is written `name: value`), so that what decodes under a limit
/// decodes again, under the same limit, once encoded.
fn check_encoded_len(len: usize, limits: &Limits) -> Result<(), DecodeError> {
    if len > limits.max_http_head {
        return Err(DecodeError::limit(
            crate::error::Limit::HttpHead,
            limits.max_http_head,
        ));
    }
    Ok(())
}

pub(crate) fn status_digits(code: u16) -> [u8; 3] {
    [
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]
}
