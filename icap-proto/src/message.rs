//! ICAP request and response heads, and their encoding.

use bytes::{BufMut, Bytes, BytesMut};

use crate::encapsulated::{BodyKind, Direction, Encapsulated};
use crate::error::{DecodeError, EncodeError};
use crate::header::{Headers, Single};
use crate::http::{HttpRequestHead, HttpResponseHead, status_digits};
use crate::types::{Method, StatusCode, Uri, VERSION};

/// The head of an ICAP request: request line, ICAP headers, embedded HTTP heads and which
/// body follows.
///
/// The encoder computes `Encapsulated` from the embedded heads and `body`; a decoded head
/// keeps the received `Encapsulated` field in `headers` (at its position), and the encoder
/// rewrites its value in place.
///
/// ```
/// use bytes::BytesMut;
/// use icap_proto::{BodyKind, HttpResponseHead, Method, RequestHead};
/// let mut head = RequestHead::new(Method::Respmod, "icap://127.0.0.1/avscan".parse().unwrap());
/// head.headers.append("Host", "127.0.0.1").unwrap();
/// head.headers.append("Allow", "204").unwrap();
/// head.http_response = Some(HttpResponseHead::new(200, "OK").unwrap());
/// head.body = Some(BodyKind::Response);
/// let mut out = BytesMut::new();
/// head.encode(&mut out).unwrap();
/// assert!(out.starts_with(b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\n"));
/// assert!(std::str::from_utf8(&out).unwrap().contains("Encapsulated: res-hdr=0, res-body=19\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request URI.
    pub uri: Uri,
    /// ICAP header fields in order.
    pub headers: Headers,
    /// The embedded HTTP request head (`req-hdr`).
    pub http_request: Option<HttpRequestHead>,
    /// The embedded HTTP response head (`res-hdr`).
    pub http_response: Option<HttpResponseHead>,
    /// The chunked body that follows, or `None` for `null-body`.
    pub body: Option<BodyKind>,
}

/// The head of an ICAP response: status line, ICAP headers, embedded HTTP heads and which
/// body follows. Encoding works as for [`RequestHead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    reason: Bytes,
    /// ICAP header fields in order.
    pub headers: Headers,
    /// The embedded HTTP request head (`req-hdr`).
    pub http_request: Option<HttpRequestHead>,
    /// The embedded HTTP response head (`res-hdr`).
    pub http_response: Option<HttpResponseHead>,
    /// The chunked body that follows, or `None` for `null-body`.
    pub body: Option<BodyKind>,
}

const ENCAPSULATED: &str = "Encapsulated";

impl RequestHead {
    /// A copy that shares no memory with the buffer the head was decoded from: every
    /// shared piece (long field values, the URI, the embedded request targets, ...) is
    /// copied into one new allocation of exactly their total size. A decoded head is a set
    /// of views into the reader's buffer; keep this copy instead when the head outlives
    /// the exchange (a journal, a log), so that it does not hold that buffer alive.
    #[must_use]
    pub fn detached(&self) -> RequestHead {
        let mut copy = self.clone();
        let mut visit = |f: &mut dyn FnMut(&mut Bytes)| {
            f(copy.uri.raw_mut());
            copy.headers.for_each_shared(f);
            if let Some(r) = &mut copy.http_request {
                r.for_each_shared(f);
            }
            if let Some(r) = &mut copy.http_response {
                r.for_each_shared(f);
            }
        };
        let mut total = 0usize;
        visit(&mut |b| total = total.saturating_add(b.len()));
        let mut all = BytesMut::with_capacity(total);
        visit(&mut |b| all.extend_from_slice(b));
        let all = all.freeze();
        let mut at = 0;
        visit(&mut |b| {
            let end = at + b.len();
            *b = all.slice(at..end);
            at = end;
        });
        copy
    }

    /// A request with no headers, no embedded heads and no body.
    pub fn new(method: Method, uri: Uri) -> Self {
        RequestHead {
            method,
            uri,
            headers: Headers::new(),
            http_request: None,
            http_response: None,
            body: None,
        }
    }

    /// The `Preview` header as a number, if present. Copies that differ
    /// ([`Headers::get_single`]) are an error: client and server would disagree on where
    /// the preview ends.
    pub fn preview(&self) -> Result<Option<u64>, DecodeError> {
        match self.headers.get_single("Preview") {
            Single::Absent => Ok(None),
            Single::Conflict => Err(DecodeError::InvalidHeaderValue("Preview")),
            Single::One(v) => v
                .to_u64()
                .map(Some)
                .ok_or(DecodeError::InvalidHeaderValue("Preview")),
        }
    }

    /// Whether the client allows a `204` answer (`Allow: 204`).
    pub fn allows_204(&self) -> bool {
        allow_lists(&self.headers, b"204")
    }

    /// The `Encapsulated` value this head encodes with.
    pub fn encapsulated(&self) -> Encapsulated {
        Encapsulated::from_lengths(
            self.http_request.as_ref().map(HttpRequestHead::encoded_len),
            self.http_response
                .as_ref()
                .map(HttpResponseHead::encoded_len),
            self.body,
        )
    }

    /// Writes the request line, the headers with a computed `Encapsulated`, the empty line
    /// and the embedded HTTP heads. The body is written with [`crate::chunked`].
    ///
    /// `Encapsulated` is always written except for an `OPTIONS` request with nothing
    /// encapsulated, where it is written only if `headers` carries one. A `Preview` header
    /// that is not a decimal number is refused ([`EncodeError::InvalidHeaderValue`]): a
    /// decoder could not read the request back.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let enc = self.encapsulated();
        enc.validate(self.method, Direction::Request)
            .map_err(|_| EncodeError::InvalidEncapsulation)?;
        if self.preview().is_err() {
            return Err(EncodeError::InvalidHeaderValue);
        }
        // A request decoder refuses obs-fold (strict, as a security server should be), so a
        // request is never written with one: what this encoder accepts, the decoder reads.
        if folded(&self.headers)
            || self
                .http_request
                .as_ref()
                .is_some_and(|r| folded(&r.headers))
            || self
                .http_response
                .as_ref()
                .is_some_and(|r| folded(&r.headers))
        {
            return Err(EncodeError::FoldedRequestHeader);
        }
        let write_enc = self.method != Method::Options
            || self.body.is_some()
            || self.headers.contains(ENCAPSULATED);
        out.reserve(self.headers.encoded_len().saturating_add(64));
        put_request_line(self.method, &self.uri, out);
        encode_rest(
            &self.headers,
            write_enc.then_some(&enc),
            self.http_request.as_ref(),
            self.http_response.as_ref(),
            out,
        );
        Ok(())
    }
}

/// The start of a request head encoded once: the request line and the fields that every
/// request of a series shares (a client's `Host`, `User-Agent`, `Allow`). Each request is
/// then [`RequestStart::encode`]d from it, its own fields and its embedded heads: the bytes
/// [`RequestHead::encode`] writes for the head with the start's fields first, under the
/// same checks, without building and encoding the shared part again.
///
/// ```
/// use bytes::BytesMut;
/// use icap_proto::{BodyKind, Headers, HttpResponseHead, Method, RequestHead, RequestStart};
/// let uri = "icap://av/scan".parse().unwrap();
/// let mut shared = Headers::new();
/// shared.append("Host", "av").unwrap();
/// let start = RequestStart::new(Method::Respmod, &uri, &shared).unwrap();
/// let mut own = Headers::new();
/// own.append("Preview", "0").unwrap();
/// let res = HttpResponseHead::new(200, "OK").unwrap();
/// let mut out = BytesMut::new();
/// start.encode(&own, None, Some(&res), Some(BodyKind::Response), &mut out).unwrap();
///
/// let mut head = RequestHead::new(Method::Respmod, uri);
/// head.headers = shared;
/// head.headers.append("Preview", "0").unwrap();
/// head.http_response = Some(res);
/// head.body = Some(BodyKind::Response);
/// let mut same = BytesMut::new();
/// head.encode(&mut same).unwrap();
/// assert_eq!(out, same);
/// ```
#[derive(Debug, Clone)]
pub struct RequestStart {
    method: Method,
    /// The shared fields' `Preview` value (their copies agree), for the check over a whole
    /// head's.
    preview: Option<Bytes>,
    /// The request line and the shared fields, encoded.
    bytes: Bytes,
}

impl RequestStart {
    /// The start of `method` requests for `uri` with the shared `fields`: refused with
    /// what [`RequestHead::encode`] would refuse them for (a folded value, a `Preview` that
    /// is not one decimal number), and for an `Encapsulated` field, which each request
    /// computes.
    pub fn new(method: Method, uri: &Uri, fields: &Headers) -> Result<Self, EncodeError> {
        if fields.contains(ENCAPSULATED) {
            return Err(EncodeError::InvalidEncapsulation);
        }
        if folded(fields) {
            return Err(EncodeError::FoldedRequestHeader);
        }
        preview_of(values(fields, "Preview"))?;
        let preview = fields
            .get("Preview")
            .map(crate::header::HeaderValueRef::to_bytes);
        let mut out = BytesMut::with_capacity(fields.encoded_len().saturating_add(64));
        put_request_line(method, uri, &mut out);
        fields.encode(&mut out);
        Ok(RequestStart {
            method,
            preview,
            bytes: out.freeze(),
        })
    }

    /// Writes the whole head: the start, `fields` with the computed `Encapsulated` (in
    /// place of one `fields` carries, else after them), the empty line and the embedded
    /// heads, as [`RequestHead::encode`] does, and with its checks.
    pub fn encode(
        &self,
        fields: &Headers,
        http_request: Option<&HttpRequestHead>,
        http_response: Option<&HttpResponseHead>,
        body: Option<BodyKind>,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let enc = Encapsulated::from_lengths(
            http_request.map(HttpRequestHead::encoded_len),
            http_response.map(HttpResponseHead::encoded_len),
            body,
        );
        enc.validate(self.method, Direction::Request)
            .map_err(|_| EncodeError::InvalidEncapsulation)?;
        preview_of(
            self.preview
                .as_deref()
                .into_iter()
                .chain(values(fields, "Preview")),
        )?;
        if folded(fields)
            || http_request.is_some_and(|r| folded(&r.headers))
            || http_response.is_some_and(|r| folded(&r.headers))
        {
            return Err(EncodeError::FoldedRequestHeader);
        }
        let write_enc =
            self.method != Method::Options || body.is_some() || fields.contains(ENCAPSULATED);
        out.reserve(
            self.bytes
                .len()
                .saturating_add(fields.encoded_len())
                .saturating_add(64),
        );
        out.put_slice(&self.bytes);
        encode_rest(
            fields,
            write_enc.then_some(&enc),
            http_request,
            http_response,
            out,
        );
        Ok(())
    }
}

/// Whether a field of `h` is folded (a request is never written with one).
fn folded(h: &Headers) -> bool {
    h.iter().any(|(_, v)| v.as_bytes().contains(&b'\n'))
}

/// The values of the fields `name` of `h`.
fn values<'a>(h: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    h.get_all(name).map(crate::header::HeaderValueRef::as_bytes)
}

/// The `Preview` of a head whose `Preview` values are `all`, under [`Headers::get_single`]'s
/// rule: refused when it is given twice with different values or is not a number.
fn preview_of<'a>(mut all: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, EncodeError> {
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if !all.all(|v| crate::header::same_value(first, v)) {
        return Err(EncodeError::InvalidHeaderValue);
    }
    crate::header::parse_u64(crate::header::trim_ows(first))
        .map(Some)
        .ok_or(EncodeError::InvalidHeaderValue)
}

fn put_request_line(method: Method, uri: &Uri, out: &mut BytesMut) {
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(uri.as_bytes());
    out.put_u8(b' ');
    out.put_slice(VERSION.as_bytes());
    out.put_slice(b"\r\n");
}

impl ResponseHead {
    /// A response with the canonical reason phrase, no headers and nothing encapsulated.
    pub fn new(status: StatusCode) -> Self {
        ResponseHead {
            status,
            reason: Bytes::from_static(status.canonical_reason().as_bytes()),
            headers: Headers::new(),
            http_request: None,
            http_response: None,
            body: None,
        }
    }

    /// Sets the reason phrase (any bytes but CR, LF and NUL).
    pub fn with_reason(mut self, reason: impl Into<Bytes>) -> Result<Self, EncodeError> {
        let reason = reason.into();
        if memchr::memchr3(b'\r', b'\n', 0, &reason).is_some() {
            return Err(EncodeError::InvalidText);
        }
        self.reason = reason;
        Ok(self)
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, EncodeError> {
        self.headers.append(name, value)?;
        Ok(self)
    }

    pub(crate) fn from_parts(status: StatusCode, reason: Bytes, headers: Headers) -> Self {
        ResponseHead {
            status,
            reason,
            headers,
            http_request: None,
            http_response: None,
            body: None,
        }
    }

    /// The reason phrase.
    pub fn reason(&self) -> &[u8] {
        &self.reason
    }

    /// The `ISTag` value, quotes removed. Copies that differ count as none
    /// ([`Headers::get_single`]).
    pub fn istag(&self) -> Option<&[u8]> {
        self.headers
            .get_single("ISTag")
            .value()
            .map(|v| unquote(v.as_bytes()))
    }

    /// The `Encapsulated` value this head encodes with.
    pub fn encapsulated(&self) -> Encapsulated {
        Encapsulated::from_lengths(
            self.http_request.as_ref().map(HttpRequestHead::encoded_len),
            self.http_response
                .as_ref()
                .map(HttpResponseHead::encoded_len),
            self.body,
        )
    }

    /// Writes the status line, headers, computed `Encapsulated`, the empty line and the
    /// embedded heads, after checking the combination against `method` (the request's).
    ///
    /// `Encapsulated` is written when something is encapsulated, for `2xx` other than
    /// `204`, or when `headers` carries one; so `100 Continue` and `204` go without it
    /// unless asked, as c-icap sends them.
    pub fn encode(&self, method: Method, out: &mut BytesMut) -> Result<(), EncodeError> {
        let enc = self.encapsulated();
        enc.validate(method, Direction::Response)
            .map_err(|_| EncodeError::InvalidEncapsulation)?;
        let something =
            self.body.is_some() || self.http_request.is_some() || self.http_response.is_some();
        let write_enc = something
            || (self.status.is_success() && self.status != StatusCode::NO_CONTENT)
            || self.headers.contains(ENCAPSULATED);
        out.reserve(self.headers.encoded_len().saturating_add(64));
        out.put_slice(VERSION.as_bytes());
        out.put_u8(b' ');
        out.put_slice(&status_digits(self.status.as_u16()));
        out.put_u8(b' ');
        out.put_slice(&self.reason);
        out.put_slice(b"\r\n");
        encode_rest(
            &self.headers,
            write_enc.then_some(&enc),
            self.http_request.as_ref(),
            self.http_response.as_ref(),
            out,
        );
        Ok(())
    }
}

fn encode_rest(
    headers: &Headers,
    enc: Option<&Encapsulated>,
    req: Option<&HttpRequestHead>,
    res: Option<&HttpResponseHead>,
    out: &mut BytesMut,
) {
    let put_enc = |out: &mut BytesMut, name: &[u8], e: &Encapsulated| {
        out.put_slice(name);
        out.put_slice(b": ");
        e.put_value(out);
        out.put_slice(b"\r\n");
    };
    let mut written = false;
    for (name, value) in headers {
        if name.is(ENCAPSULATED) {
            // The computed value replaces the first received one in place; repeats go.
            match enc {
                Some(e) if !written => put_enc(out, name.as_str().as_bytes(), e),
                Some(_) => {}
                None => put_field(out, name.as_str().as_bytes(), value.as_bytes()),
            }
            written = true;
        } else {
            put_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if let (Some(e), false) = (enc, written) {
        put_enc(out, ENCAPSULATED.as_bytes(), e);
    }
    out.put_slice(b"\r\n");
    if let Some(r) = req {
        r.encode(out);
    }
    if let Some(r) = res {
        r.encode(out);
    }
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Whether a comma-separated `Allow` list contains `what`.
pub(crate) fn allow_lists(headers: &Headers, what: &[u8]) -> bool {
    headers
        .get_all("Allow")
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|item| crate::header::trim_ows(item).eq_ignore_ascii_case(what))
}

pub(crate) fn unquote(v: &[u8]) -> &[u8] {
    v.strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v)
}
