//! Embedded HTTP request and response heads (RFC 3507 section 4.4).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::header::{Entry, Headers, is_token};
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
            method: common_or_copy(method.as_bytes()),
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
        self.version = common_or_copy(version.as_bytes());
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

    /// Reads a complete head (ending with the empty line) from `section`, all of it, into
    /// positions: [`HttpRequestHead::build`] makes the head once the bytes are shared.
    pub(crate) fn read(
        section: &[u8],
        limits: &Limits,
        obs_fold: bool,
    ) -> Result<SectionRead<RequestLine>, DecodeError> {
        let (rest, (method, target, version)) =
            parse::parse_request_line(section).map_err(|_| DecodeError::InvalidHttpHead)?;
        if !check_version(version) {
            return Err(DecodeError::InvalidHttpHead);
        }
        let from = section.len() - rest.len();
        let (entries, fields_len) = read_fields(section, from, limits, obs_fold)?;
        // `method SP target SP version CRLF`
        let target_at = method.len() + 1;
        let line = RequestLine {
            method: 0..method.len(),
            target: target_at..target_at + target.len(),
            version: from - 2 - version.len()..from - 2,
        };
        let len = [method.len(), target.len(), version.len(), 4, fields_len, 2]
            .into_iter()
            .fold(0, usize::saturating_add);
        check_encoded_len(len, limits)?;
        Ok(SectionRead { line, entries })
    }

    /// The head [`HttpRequestHead::read`] read from `section`.
    pub(crate) fn build(section: Bytes, read: SectionRead<RequestLine>) -> Self {
        let RequestLine {
            method,
            target,
            version,
        } = read.line;
        HttpRequestHead {
            method: parse::share(&section, &section[method]),
            target: section.slice(target),
            version: parse::share(&section, &section[version]),
            headers: Headers::decoded(section, read.entries),
        }
    }
}

/// An embedded head read from its section: its start line's parts `L` and its fields'
/// table, as positions in the section.
pub(crate) struct SectionRead<L> {
    line: L,
    entries: Vec<Entry>,
}

/// Where the parts of an embedded request line lie in its section.
pub(crate) struct RequestLine {
    method: std::ops::Range<usize>,
    target: std::ops::Range<usize>,
    version: std::ops::Range<usize>,
}

/// Where the parts of an embedded status line lie in its section, and its status.
pub(crate) struct StatusLine {
    version: std::ops::Range<usize>,
    status: u16,
    reason: std::ops::Range<usize>,
}

/// The fields of a section from `from` on, which must end the section, and the bytes they
/// encode to.
fn read_fields(
    section: &[u8],
    from: usize,
    limits: &Limits,
    obs_fold: bool,
) -> Result<(Vec<Entry>, usize), DecodeError> {
    let rules = parse::FieldRules {
        obs_fold,
        icap: false,
    };
    let (entries, rest, fields_len) = parse::field_table(section, from, limits, rules)?;
    if rest != 2 {
        return Err(DecodeError::EncapsulatedMismatch);
    }
    Ok((entries, fields_len))
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
            reason: common_or_copy(reason.as_bytes()),
            headers: Headers::new(),
        })
    }

    /// Sets the version (`HTTP/1.0` or `HTTP/1.1`).
    pub fn with_version(mut self, version: &str) -> Result<Self, EncodeError> {
        if !check_version(version.as_bytes()) {
            return Err(EncodeError::InvalidToken);
        }
        self.version = common_or_copy(version.as_bytes());
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

    /// Reads a complete head from `section` into positions, as
    /// [`HttpRequestHead::read`] does.
    pub(crate) fn read(
        section: &[u8],
        limits: &Limits,
        obs_fold: bool,
    ) -> Result<SectionRead<StatusLine>, DecodeError> {
        let (rest, (version, status, reason)) =
            parse::parse_status_line(section).map_err(|_| DecodeError::InvalidHttpHead)?;
        if !check_version(version) {
            return Err(DecodeError::InvalidHttpHead);
        }
        let from = section.len() - rest.len();
        let (entries, fields_len) = read_fields(section, from, limits, obs_fold)?;
        // `version SP 3DIGIT [SP reason] CRLF`: the reason ends the line.
        let line = StatusLine {
            version: 0..version.len(),
            status,
            reason: from - 2 - reason.len()..from - 2,
        };
        let len = [version.len(), 5, reason.len(), 2, fields_len, 2]
            .into_iter()
            .fold(0, usize::saturating_add);
        check_encoded_len(len, limits)?;
        Ok(SectionRead { line, entries })
    }

    /// The head [`HttpResponseHead::read`] read from `section`.
    pub(crate) fn build(section: Bytes, read: SectionRead<StatusLine>) -> Self {
        let StatusLine {
            version,
            status,
            reason,
        } = read.line;
        HttpResponseHead {
            version: parse::share(&section, &section[version]),
            status,
            reason: parse::share(&section, &section[reason]),
            headers: Headers::decoded(section, read.entries),
        }
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

/// `b` as `Bytes`: the static copy of a common string (`GET`, `OK`, `HTTP/1.1`, ...), which
/// allocates nothing, or else a copy.
fn common_or_copy(b: &[u8]) -> Bytes {
    crate::parse::interned(b).map_or_else(|| Bytes::copy_from_slice(b), Bytes::from_static)
}
