//! The field types: the owned, validated [`HeaderName`] and [`HeaderValue`] that heads are
//! built from, the borrowed views [`HeaderNameRef`] and [`HeaderValueRef`] that a
//! [`Headers`](super::Headers) hands out, and the checks and trims of names and values.
//! Their representations are visible to the parent module only, which makes the views.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::digits::{decimal, parse_u64};
use crate::error::EncodeError;

/// RFC 7230 `tchar`: the characters of a token.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Whether `s` holds a byte that is not visible (`VCHAR` or obs-text: SP and below, or
/// DEL). Without early exit, so that the compiler vectorises it: request targets and URIs
/// are checked on every decoded head.
pub(crate) fn has_invisible(s: &[u8]) -> bool {
    s.iter().fold(0u8, |bad, &b| {
        bad | u8::from(b <= b' ') | u8::from(b == 0x7f)
    }) != 0
}

/// Whether `s` is a token. A `const fn`, for the literals of [`HeaderName::from_static`];
/// the decoder reads field names through [`TCHAR`] instead.
pub(crate) const fn is_token(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if !is_tchar(s[i]) {
            return false;
        }
        i += 1;
    }
    !s.is_empty()
}

/// Whether `s` is a value [`HeaderValue::new`] keeps as it is: no CR, LF or NUL, and no
/// space or tab at either end. For constants ([`HeaderValue::from_static`]).
const fn is_plain_value_const(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if matches!(s[i], b'\r' | b'\n' | 0) {
            return false;
        }
        i += 1;
    }
    !matches!(s.first(), Some(b' ' | b'\t')) && !matches!(s.last(), Some(b' ' | b'\t'))
}

/// [`is_tchar`] as a table: one load per byte, for the decoder's field names and for
/// checking the names heads are built with.
pub(crate) static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = is_tchar(b as u8);
        b += 1;
    }
    t
};

/// A header field name: a non-empty token, compared case-insensitively.
#[derive(Clone)]
pub struct HeaderName(pub(super) Bytes);

impl HeaderName {
    /// Validates `name` as a token.
    ///
    /// ```
    /// use icap_proto::HeaderName;
    /// assert!(HeaderName::new("X-Client-IP").is_ok());
    /// assert!(HeaderName::new("Bad Name").is_err());
    /// ```
    pub fn new(name: impl Into<Bytes>) -> Result<Self, EncodeError> {
        let name = name.into();
        if is_token(&name) {
            Ok(HeaderName(name))
        } else {
            Err(EncodeError::InvalidHeaderName)
        }
    }

    /// A name from a literal known to be a token.
    ///
    /// # Panics
    /// If `name` is not a token: this is for literals in source code.
    ///
    /// A `const fn`: a constant (`const HOST: HeaderName = HeaderName::from_static("Host");`)
    /// is checked when it is compiled, not each time it is used.
    #[track_caller]
    pub const fn from_static(name: &'static str) -> Self {
        assert!(
            is_token(name.as_bytes()),
            "header name literal must be a token"
        );
        HeaderName(Bytes::from_static(name.as_bytes()))
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        self.as_view().as_str()
    }

    /// The name's bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Case-insensitive comparison with `other`, without allocating.
    pub fn is(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.as_bytes())
    }

    /// A borrowed view of this name, as [`Headers`](crate::Headers) hands out.
    pub fn as_view(&self) -> HeaderNameRef<'_> {
        HeaderNameRef {
            bytes: &self.0,
            src: &self.0,
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for HeaderName {}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for HeaderName {
    type Error = EncodeError;
    fn try_from(s: &str) -> Result<Self, EncodeError> {
        HeaderName::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// A borrowed header name, as [`Headers::iter`](crate::Headers::iter) hands it out: a view of the bytes the map
/// holds (a decoded head's buffer or an owned [`HeaderName`]). `Copy`, compared
/// case-insensitively like [`HeaderName`]; [`HeaderNameRef::to_owned`] makes an owned one.
#[derive(Clone, Copy)]
pub struct HeaderNameRef<'a> {
    pub(super) bytes: &'a [u8],
    /// The `Bytes` that `bytes` lies in.
    pub(super) src: &'a Bytes,
}

impl<'a> HeaderNameRef<'a> {
    /// The name as sent.
    pub fn as_str(self) -> &'a str {
        // Every name in a map was checked to be a token (ASCII) when it was decoded or built.
        std::str::from_utf8(self.bytes).unwrap_or_default()
    }

    /// The name's bytes as sent.
    pub fn as_bytes(self) -> &'a [u8] {
        self.bytes
    }

    /// Case-insensitive comparison with `other`, without allocating.
    pub fn is(self, other: &str) -> bool {
        self.bytes.eq_ignore_ascii_case(other.as_bytes())
    }

    /// An owned name with the same bytes (sharing the map's buffer: no copy).
    pub fn to_owned(self) -> HeaderName {
        HeaderName(self.src.slice_ref(self.bytes))
    }
}

impl PartialEq for HeaderNameRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.eq_ignore_ascii_case(other.bytes)
    }
}
impl Eq for HeaderNameRef<'_> {}

impl PartialEq<HeaderName> for HeaderNameRef<'_> {
    fn eq(&self, other: &HeaderName) -> bool {
        self.bytes.eq_ignore_ascii_case(&other.0)
    }
}
impl PartialEq<HeaderNameRef<'_>> for HeaderName {
    fn eq(&self, other: &HeaderNameRef<'_>) -> bool {
        other == self
    }
}

impl fmt::Debug for HeaderNameRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for HeaderNameRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<HeaderNameRef<'_>> for HeaderName {
    fn from(n: HeaderNameRef<'_>) -> Self {
        n.to_owned()
    }
}

/// The bytes of a [`HeaderValue`]: shared `Bytes`, or the digits of
/// [`HeaderValue::from_u64`] kept in place (a client writes a `Preview` or a length on
/// every request; they need no allocation).
#[derive(Clone)]
pub(super) enum Repr {
    Bytes(Bytes),
    Digits { len: u8, buf: [u8; 20] },
}

impl Repr {
    fn as_slice(&self) -> &[u8] {
        match self {
            Repr::Bytes(b) => b,
            Repr::Digits { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
        }
    }
}

/// A header field value: bytes (non-ASCII allowed), never CR, LF or NUL except inside an
/// obs-fold (`CRLF` followed by a space or tab), which some antivirus headers use to carry
/// one item per line (see [`HeaderValue::lines`]).
#[derive(Clone)]
pub struct HeaderValue(pub(super) Repr);

impl Default for HeaderValue {
    fn default() -> Self {
        HeaderValue(Repr::Bytes(Bytes::new()))
    }
}

impl PartialEq for HeaderValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for HeaderValue {}

impl HeaderValue {
    /// Validates `value`: no CR, LF or NUL. Leading and trailing spaces and tabs are
    /// trimmed, as they carry no meaning in a header field.
    ///
    /// ```
    /// use icap_proto::HeaderValue;
    /// assert!(HeaderValue::new("alice@example.com").is_ok());
    /// assert!(HeaderValue::new("alice\r\nX-Evil: 1").is_err());
    /// ```
    pub fn new(value: impl Into<Bytes>) -> Result<Self, EncodeError> {
        let value = trim_bytes(value.into());
        if is_field_text(&value) {
            Ok(HeaderValue(Repr::Bytes(value)))
        } else {
            Err(EncodeError::InvalidHeaderValue)
        }
    }

    /// A value written as several lines joined by obs-folds (`CRLF TAB`), the shape of
    /// `X-Violations-Found`. Each line is validated and trimmed like [`HeaderValue::new`].
    /// Empty lines are not allowed, except a single empty line for an empty value: a fold
    /// at either end of a value is whitespace that a decoder trims, so the value would not
    /// read back the same.
    ///
    /// ```
    /// use icap_proto::HeaderValue;
    /// let v = HeaderValue::from_lines(["1", "-", "Eicar-Test-Signature", "0", "0"]).unwrap();
    /// assert_eq!(v.as_bytes(), b"1\r\n\t-\r\n\tEicar-Test-Signature\r\n\t0\r\n\t0");
    /// assert_eq!(v.lines().count(), 5);
    /// ```
    pub fn from_lines<I, L>(lines: I) -> Result<Self, EncodeError>
    where
        I: IntoIterator<Item = L>,
        L: AsRef<[u8]>,
    {
        let mut out = BytesMut::new();
        let mut first_empty = false;
        for (i, line) in lines.into_iter().enumerate() {
            let line = trim_ows(line.as_ref());
            if !is_field_text(line) || (i > 0 && (line.is_empty() || first_empty)) {
                return Err(EncodeError::InvalidHeaderValue);
            }
            first_empty = i == 0 && line.is_empty();
            if i > 0 {
                out.put_slice(b"\r\n\t");
            }
            out.put_slice(line);
        }
        Ok(HeaderValue(Repr::Bytes(out.freeze())))
    }

    /// A value from a literal in source code, as [`HeaderValue::new`] would keep it.
    /// A `const fn`, like [`HeaderName::from_static`].
    ///
    /// ```
    /// use icap_proto::HeaderValue;
    /// const NO_CONTENT: HeaderValue = HeaderValue::from_static("204");
    /// assert_eq!(NO_CONTENT, HeaderValue::new("204").unwrap());
    /// ```
    ///
    /// # Panics
    /// If `value` holds CR, LF or NUL, or starts or ends with a space or tab (which
    /// [`HeaderValue::new`] would trim): this is for literals in source code.
    #[track_caller]
    pub const fn from_static(value: &'static str) -> Self {
        assert!(
            is_plain_value_const(value.as_bytes()),
            "header value literal must hold no CR, LF or NUL and no space or tab at its ends"
        );
        HeaderValue(Repr::Bytes(Bytes::from_static(value.as_bytes())))
    }

    /// A value from a number (no allocation).
    pub fn from_u64(n: u64) -> Self {
        let mut digits = [0u8; 20];
        let d = decimal(n, &mut digits);
        let mut buf = [0u8; 20];
        buf[..d.len()].copy_from_slice(d);
        // At most 20 digits.
        let len = u8::try_from(d.len()).unwrap_or(20);
        HeaderValue(Repr::Digits { len, buf })
    }

    /// The raw bytes, folds included.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// The raw bytes as `Bytes` (no copy, except for a value made by
    /// [`HeaderValue::from_u64`]).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Bytes(b) => b.clone(),
            Repr::Digits { .. } => Bytes::copy_from_slice(self.as_bytes()),
        }
    }

    /// The value as UTF-8 text, if it is.
    pub fn to_str(&self) -> Option<&str> {
        self.as_view().to_str()
    }

    /// The value as text with invalid UTF-8 replaced.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        self.as_view().to_str_lossy()
    }

    /// The lines of a folded value, each trimmed of spaces and tabs. An unfolded value is one
    /// line.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.as_view().lines()
    }

    /// The value as a decimal number, if it is one.
    pub fn to_u64(&self) -> Option<u64> {
        self.as_view().to_u64()
    }

    /// A borrowed view of this value, as [`Headers`](crate::Headers) hands out.
    pub fn as_view(&self) -> HeaderValueRef<'_> {
        HeaderValueRef {
            bytes: self.as_bytes(),
            src: match &self.0 {
                Repr::Bytes(b) => Some(b),
                Repr::Digits { .. } => None,
            },
        }
    }

    /// Calls `f` on the shared bytes of this value, if it has any.
    pub(super) fn for_each_shared(&mut self, f: &mut dyn FnMut(&mut Bytes)) {
        if let Repr::Bytes(b) = &mut self.0 {
            f(b);
        }
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_str_lossy(), f)
    }
}

impl TryFrom<&str> for HeaderValue {
    type Error = EncodeError;
    fn try_from(s: &str) -> Result<Self, EncodeError> {
        HeaderValue::new(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<String> for HeaderValue {
    type Error = EncodeError;
    fn try_from(s: String) -> Result<Self, EncodeError> {
        HeaderValue::new(Bytes::from(s))
    }
}

/// A borrowed header value, as [`Headers::get`](crate::Headers::get) and [`Headers::iter`](crate::Headers::iter) hand it out: a view
/// of the bytes the map holds, with the reading methods of [`HeaderValue`]. `Copy`;
/// [`HeaderValueRef::to_bytes`] shares the map's buffer instead of copying, and
/// [`HeaderValueRef::to_owned`] makes an owned value.
#[derive(Clone, Copy)]
pub struct HeaderValueRef<'a> {
    pub(super) bytes: &'a [u8],
    /// The `Bytes` that `bytes` lies in, when there is one (not for
    /// [`HeaderValue::from_u64`] digits).
    pub(super) src: Option<&'a Bytes>,
}

impl<'a> HeaderValueRef<'a> {
    /// The raw bytes, folds included.
    pub fn as_bytes(self) -> &'a [u8] {
        self.bytes
    }

    /// The raw bytes as `Bytes`: a slice of the buffer the map shares (no copy), or a copy
    /// of a value made by [`HeaderValue::from_u64`].
    pub fn to_bytes(self) -> Bytes {
        match self.src {
            Some(src) => src.slice_ref(self.bytes),
            None => Bytes::copy_from_slice(self.bytes),
        }
    }

    /// The value as UTF-8 text, if it is.
    pub fn to_str(self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes).ok()
    }

    /// The value as text with invalid UTF-8 replaced.
    pub fn to_str_lossy(self) -> std::borrow::Cow<'a, str> {
        String::from_utf8_lossy(self.bytes)
    }

    /// The lines of a folded value, each trimmed of spaces and tabs. An unfolded value is one
    /// line.
    pub fn lines(self) -> impl Iterator<Item = &'a [u8]> {
        self.bytes
            .split(|&b| b == b'\n')
            .map(|l| trim_ows(l.strip_suffix(b"\r").unwrap_or(l)))
    }

    /// The value as a decimal number, if it is one.
    pub fn to_u64(self) -> Option<u64> {
        parse_u64(trim_ows(self.bytes))
    }

    /// An owned value with the same bytes (sharing the map's buffer, as
    /// [`HeaderValueRef::to_bytes`] does).
    pub fn to_owned(self) -> HeaderValue {
        HeaderValue(Repr::Bytes(self.to_bytes()))
    }
}

impl PartialEq for HeaderValueRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for HeaderValueRef<'_> {}

impl PartialEq<HeaderValue> for HeaderValueRef<'_> {
    fn eq(&self, other: &HeaderValue) -> bool {
        self.bytes == other.as_bytes()
    }
}
impl PartialEq<HeaderValueRef<'_>> for HeaderValue {
    fn eq(&self, other: &HeaderValueRef<'_>) -> bool {
        self.as_bytes() == other.bytes
    }
}
impl PartialEq<&HeaderValue> for HeaderValueRef<'_> {
    fn eq(&self, other: &&HeaderValue) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl fmt::Debug for HeaderValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_str_lossy(), f)
    }
}

impl From<HeaderValueRef<'_>> for HeaderValue {
    fn from(v: HeaderValueRef<'_>) -> Self {
        v.to_owned()
    }
}

fn is_field_text(v: &[u8]) -> bool {
    memchr::memchr3(b'\r', b'\n', 0, v).is_none()
}

fn trim_bytes(b: Bytes) -> Bytes {
    let t = trim_ows(&b);
    if t.len() == b.len() {
        b
    } else {
        b.slice_ref(t)
    }
}

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Trims spaces, tabs and whole obs-folds from both ends of a raw field value.
///
/// Inside a value every CR is followed by LF and then SP or HTAB (that is how
/// the field parser found its end), so removing CR and LF at the ends removes only folds.
/// Trimming just spaces would leave a value such as `1\r\n` from `X: 1\r\n \r\n`, which
/// the encoder would write back as `X: 1\r\n\r\n` and so end the head early.
pub(crate) fn trim_folded(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = v {
        v = rest;
    }
    v
}

/// Bytes of `name: value CRLF`, the one shape [`Headers::encode`] writes a field in (folds
/// are part of the value). The decoder measures fields with it too (see
/// `parse::parse_fields`).
pub(crate) fn encoded_field_len(name: usize, value: usize) -> usize {
    name.saturating_add(value).saturating_add(4)
}
