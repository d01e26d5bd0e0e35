//! Header names, values and the ordered header map.
//!
//! One file of about 600 lines on purpose: the inline small-field representation, the
//! validation of names and values and the map share private invariants (what `Repr` may
//! hold, which bytes were checked) that a split would have to make crate-visible.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

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

pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().copied().all(is_tchar)
}

/// Bytes of a decoded name or value no longer than this are copied next to it instead of
/// shared with the head they came from.
const INLINE: usize = 38;

/// The bytes of a [`HeaderName`] or [`HeaderValue`].
///
/// A decoded head's short parts (most names and values) are copied inline: a copy of a few
/// bytes costs less than sharing them, since every `Bytes` slice of the head increments its
/// atomic reference count when made and decrements it when dropped (that pair was about 40 %
/// of decoding a head). Longer parts stay views into the one buffer of the head, and
/// literals are `Bytes::from_static` (no count either).
#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Shared(Bytes),
}

impl Repr {
    /// The shared bytes of this field, if it is a view (inline fields own their bytes).
    fn shared_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Repr::Inline { .. } => None,
            Repr::Shared(b) => Some(b),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Shared(b) => b,
        }
    }

    fn to_bytes(&self) -> Bytes {
        match self {
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            Repr::Shared(b) => b.clone(),
        }
    }

    /// `part`, a slice of `head`: inline when short, else a view of `head`.
    fn share(head: &Bytes, part: &[u8]) -> Self {
        if part.len() > INLINE {
            return Repr::Shared(head.slice_ref(part));
        }
        // A copy of a fixed INLINE bytes compiles to a few vector moves, where a copy of
        // `part.len()` bytes is a call to `memcpy`; the bytes past `len` are never read.
        // Where `part` starts in `head`, if its bytes lie inside `head`'s (then the window
        // starting there begins with exactly `part`).
        let start = (part.as_ptr() as usize)
            .checked_sub(head.as_ptr() as usize)
            .filter(|s| s.checked_add(part.len()).is_some_and(|e| e <= head.len()));
        let window = start.and_then(|s| head.get(s..)?.get(..INLINE)?.try_into().ok());
        let buf: [u8; INLINE] = window.unwrap_or_else(|| {
            let mut buf = [0; INLINE];
            buf[..part.len()].copy_from_slice(part);
            buf
        });
        let len = u8::try_from(part.len()).expect("part.len() <= INLINE, which fits in u8");
        Repr::Inline { len, buf }
    }

    fn inline(part: &[u8]) -> Option<Self> {
        let len = u8::try_from(part.len())
            .ok()
            .filter(|&l| usize::from(l) <= INLINE)?;
        let mut buf = [0; INLINE];
        buf[..part.len()].copy_from_slice(part);
        Some(Repr::Inline { len, buf })
    }
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Shared(Bytes::new())
    }
}

impl From<Bytes> for Repr {
    fn from(b: Bytes) -> Self {
        Repr::Shared(b)
    }
}

/// A header field name: a non-empty token, compared case-insensitively.
#[derive(Clone)]
pub struct HeaderName(Repr);

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
            Ok(HeaderName(name.into()))
        } else {
            Err(EncodeError::InvalidHeaderName)
        }
    }

    /// A name from a literal known to be a token.
    ///
    /// # Panics
    /// If `name` is not a token: this is for literals in source code.
    pub fn from_static(name: &'static str) -> Self {
        assert!(
            is_token(name.as_bytes()),
            "header name literal must be a token: {name:?}"
        );
        HeaderName(Bytes::from_static(name.as_bytes()).into())
    }

    /// A name decoded from `head`: `part` is a slice of it, already checked to be a token.
    pub(crate) fn decoded(head: &Bytes, part: &[u8]) -> Self {
        debug_assert!(is_token(part));
        HeaderName(Repr::share(head, part))
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.0.as_slice()).expect("tokens are ASCII")
    }

    /// The name's bytes as sent.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Case-insensitive comparison with `other`, without allocating.
    pub fn is(&self, other: &str) -> bool {
        self.0.as_slice().eq_ignore_ascii_case(other.as_bytes())
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().eq_ignore_ascii_case(other.0.as_slice())
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

/// A header field value: bytes (non-ASCII allowed), never CR, LF or NUL except inside an
/// obs-fold (`CRLF` followed by a space or tab), which some antivirus headers use to carry
/// one item per line (see [`HeaderValue::lines`]).
#[derive(Clone, Default)]
pub struct HeaderValue(Repr);

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
            Ok(HeaderValue(value.into()))
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
        Ok(HeaderValue(out.freeze().into()))
    }

    /// A value from a number.
    pub fn from_u64(n: u64) -> Self {
        // At most 20 digits: always inline, no allocation.
        let mut buf = [0u8; 20];
        HeaderValue(Repr::inline(decimal(n, &mut buf)).expect("20 digits fit inline"))
    }

    /// A value decoded from `head`: `part` is a slice of it, already checked.
    pub(crate) fn decoded(head: &Bytes, part: &[u8]) -> Self {
        HeaderValue(Repr::share(head, part))
    }

    /// The raw bytes, folds included.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// The raw bytes as `Bytes` (a copy when the value is short).
    pub fn to_bytes(&self) -> Bytes {
        self.0.to_bytes()
    }

    /// The value as UTF-8 text, if it is.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }

    /// The value as text with invalid UTF-8 replaced.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    /// The lines of a folded value, each trimmed of spaces and tabs. An unfolded value is one
    /// line.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.as_bytes()
            .split(|&b| b == b'\n')
            .map(|l| trim_ows(l.strip_suffix(b"\r").unwrap_or(l)))
    }

    /// The value as a decimal number, if it is one.
    pub fn to_u64(&self) -> Option<u64> {
        parse_u64(trim_ows(self.as_bytes()))
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

/// Decimal digits only, any number of them; values past `u64::MAX` saturate to it. For
/// advisory numbers that are clamped anyway (`Options-TTL`, `Preview` in OPTIONS).
pub(crate) fn parse_u64_saturating(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Decimal digits only, checked, at most 20 digits.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// What [`Headers::get_single`] found for a single-valued header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single<'a> {
    /// Not present.
    Absent,
    /// Present once, or several times with the same value.
    One(&'a HeaderValue),
    /// Present several times with different values.
    Conflict,
}

impl<'a> Single<'a> {
    /// The value when there is exactly one; `None` when absent or conflicting.
    pub fn value(self) -> Option<&'a HeaderValue> {
        match self {
            Single::One(v) => Some(v),
            Single::Absent | Single::Conflict => None,
        }
    }

    /// Whether the copies disagree.
    pub fn is_conflict(self) -> bool {
        self == Single::Conflict
    }
}

/// Header fields in the order received; repeated names are all kept.
///
/// ```
/// use icap_proto::Headers;
/// let mut h = Headers::new();
/// h.append("X-Client-IP", "10.0.0.1").unwrap();
/// h.append("x-client-ip", "10.0.0.2").unwrap();
/// assert_eq!(h.get("X-CLIENT-IP").unwrap().as_bytes(), b"10.0.0.1");
/// assert_eq!(h.get_all("X-Client-IP").count(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(HeaderName, HeaderValue)>,
}

impl Headers {
    /// Calls `f` on every field name and value that is a view of shared bytes.
    pub(crate) fn for_each_shared(&mut self, f: &mut dyn FnMut(&mut Bytes)) {
        for (n, v) in &mut self.entries {
            if let Some(b) = n.0.shared_mut() {
                f(b);
            }
            if let Some(b) = v.0.shared_mut() {
                f(b);
            }
        }
    }

    /// No headers, with room for `n` without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.entries
            .iter()
            .find(|(n, _)| n.is(name))
            .map(|(_, v)| v)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderValue> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.is(name))
            .map(|(_, v)| v)
    }

    /// A header that may appear only once, read by the one rule the codec uses for every
    /// single-valued header: copies whose values are equal (after trimming spaces and tabs)
    /// count as one; copies that differ are a [`Single::Conflict`], which the caller treats
    /// as an error or as absent, never as "the first one wins".
    ///
    /// ```
    /// use icap_proto::{Headers, Single};
    /// let mut h = Headers::new();
    /// h.append("Preview", "1024").unwrap();
    /// h.append("preview", "1024").unwrap();
    /// assert!(matches!(h.get_single("Preview"), Single::One(v) if v.as_bytes() == b"1024"));
    /// h.append("Preview", "0").unwrap();
    /// assert_eq!(h.get_single("Preview"), Single::Conflict);
    /// assert_eq!(h.get_single("ISTag"), Single::Absent);
    /// ```
    pub fn get_single(&self, name: &str) -> Single<'_> {
        let mut all = self
            .entries
            .iter()
            .filter(|(n, _)| n.is(name))
            .map(|(_, v)| v);
        let Some(first) = all.next() else {
            return Single::Absent;
        };
        let want = trim_ows(first.as_bytes());
        if all.all(|v| trim_ows(v.as_bytes()) == want) {
            Single::One(first)
        } else {
            Single::Conflict
        }
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n.is(name))
    }

    /// Every field in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.entries.iter().map(|(n, v)| (n, v))
    }

    /// Adds a field after the others, validating name and value.
    pub fn append<N, V>(&mut self, name: N, value: V) -> Result<(), EncodeError>
    where
        N: TryInto<HeaderName, Error = EncodeError>,
        V: TryInto<HeaderValue, Error = EncodeError>,
    {
        self.entries.push((name.try_into()?, value.try_into()?));
        Ok(())
    }

    /// Adds an already validated field after the others.
    pub fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.entries.push((name, value));
    }

    /// Sets `name` to `value`: replaces the first field of that name in place and removes
    /// the others, or appends when absent.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        let mut slot = None;
        let mut i = 0;
        self.entries.retain(|(n, _)| {
            let keep = if *n == name {
                if slot.is_none() {
                    slot = Some(i);
                    true
                } else {
                    false
                }
            } else {
                true
            };
            if keep {
                i += 1;
            }
            keep
        });
        match slot {
            Some(i) => self.entries[i].1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Removes every field named `name`; returns how many.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.is(name));
        before - self.entries.len()
    }

    /// Writes `name: value\r\n` for each field.
    pub fn encode(&self, out: &mut BytesMut) {
        for (n, v) in &self.entries {
            out.put_slice(n.as_bytes());
            out.put_slice(b": ");
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
    }

    /// Bytes [`Headers::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|(n, v)| encoded_field_len(n.as_bytes().len(), v.as_bytes().len()))
            .fold(0, usize::saturating_add)
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a (HeaderName, HeaderValue);
    type IntoIter = std::slice::Iter<'a, (HeaderName, HeaderValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// `n` in decimal, written into `buf` (no allocation): the digits are the slice returned.
pub(crate) fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut rest = n;
    loop {
        at -= 1;
        buf[at] = b'0' + u8::try_from(rest % 10).expect("a digit");
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_parts_read_back_and_compare_by_bytes() {
        let head = Bytes::from_static(
            b"x-a: short\r\nX-Long: 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd\r\n",
        );
        let rows = [
            (0..3, true),
            (5..10, true),
            (20..20 + INLINE, true),
            (20..21 + INLINE, false),
            (20..70, false),
            (0..0, true),
        ];
        for (range, inline) in rows {
            let part = &head[range];
            let v = HeaderValue::decoded(&head, part);
            assert_eq!(v.as_bytes(), part);
            assert_eq!(matches!(v.0, Repr::Inline { .. }), inline, "{part:?}");
            assert_eq!(v.to_bytes(), part);
            // A decoded value equals the same bytes built by hand, whatever the storage.
            assert_eq!(v, HeaderValue::new(Bytes::copy_from_slice(part)).unwrap());
        }
        // Near the end of the head the fixed-size window does not fit; a part that is not
        // a slice of the head at all (never so in the codec) is still copied right.
        let end = head.len();
        let tail = HeaderValue::decoded(&head, &head[end - 6..end - 2]);
        assert_eq!(tail.as_bytes(), b"abcd");
        assert!(matches!(tail.0, Repr::Inline { .. }));
        let elsewhere = HeaderValue::decoded(&head, b"not from the head");
        assert_eq!(elsewhere.as_bytes(), b"not from the head");
        let n = HeaderName::decoded(&head, &head[0..3]);
        assert!(n.is("X-A"));
        assert_eq!(n, HeaderName::from_static("X-a"));
        assert_eq!(n.as_str(), "x-a");
        assert_eq!(HeaderValue::from_u64(u64::MAX).to_u64(), Some(u64::MAX));
    }

    #[test]
    fn a_field_is_no_larger_than_with_bytes() {
        assert!(std::mem::size_of::<HeaderValue>() <= 40);
        assert!(std::mem::size_of::<HeaderName>() <= 40);
    }
}
