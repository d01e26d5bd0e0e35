//! Header names, values and the ordered header map.
//!
//! A decoded [`Headers`] is one shared buffer (the decoded head) plus a table of spans
//! into it: decoding writes two pairs of integers per field and touches no reference count,
//! and reading hands out borrowed views ([`HeaderNameRef`], [`HeaderValueRef`]). Fields added
//! afterwards ([`Headers::append`], [`Headers::push`], [`Headers::set`]) are owned
//! [`HeaderName`]/[`HeaderValue`] pairs kept beside the table.
//!
//! The field types and their checks are in [`field`]; this file is the map (its spans,
//! entries and views). The two share representations that stay inside this module.

mod digits;
mod field;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::EncodeError;

pub(crate) use digits::{decimal, parse_u64, parse_u64_saturating};
pub use field::{HeaderName, HeaderNameRef, HeaderValue, HeaderValueRef};
pub(crate) use field::{
    TCHAR, encoded_field_len, has_invisible, is_tchar, is_token, trim_folded, trim_ows,
};

/// Whether two copies of a single-valued field say the same ([`Headers::get_single`]'s
/// rule, which the decoder's and the encoder's `Preview` checks follow too): equal once
/// their outer whitespace is trimmed.
pub(crate) fn same_value(a: &[u8], b: &[u8]) -> bool {
    trim_ows(a) == trim_ows(b)
}

/// What [`Headers::get_single`] found for a single-valued header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single<'a> {
    /// Not present.
    Absent,
    /// Present once, or several times with the same value.
    One(HeaderValueRef<'a>),
    /// Present several times with different values.
    Conflict,
}

impl<'a> Single<'a> {
    /// The value when there is exactly one; `None` when absent or conflicting.
    pub fn value(self) -> Option<HeaderValueRef<'a>> {
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

/// Where a part of a decoded field lies in the map's buffer: `buf[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(self, buf: &Bytes) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// One field of a [`Headers`]: spans into its buffer (decoded), or the index of an owned
/// pair (added by `append`, `push` or `set`). 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Decoded { name: Span, value: Span },
    Owned(usize),
}

impl Entry {
    /// A decoded field of a buffer of `len` bytes: `name` and `value` are `start..end`
    /// ranges of it, already checked (a token, a field value). `None` if a range does not
    /// lie in the buffer or the buffer is longer than [`MAX_DECODED`].
    pub(crate) fn decoded(
        len: usize,
        name: std::ops::Range<usize>,
        value: std::ops::Range<usize>,
    ) -> Option<Self> {
        let span = |r: std::ops::Range<usize>| {
            let ok = r.start <= r.end && r.end <= len;
            Some(Span {
                start: u32::try_from(r.start).ok().filter(|_| ok)?,
                end: u32::try_from(r.end).ok()?,
            })
        };
        Some(Entry::Decoded {
            name: span(name)?,
            value: span(value)?,
        })
    }
}

/// Header fields in the order received; repeated names are all kept.
///
/// A decoded map is one shared buffer (the decoded head) and a table of where each name
/// and value lies in it; cloning one costs one reference count and a copy of the table.
/// Reading hands out borrowed views ([`HeaderNameRef`], [`HeaderValueRef`]).
///
/// ```
/// use icap_proto::Headers;
/// let mut h = Headers::new();
/// h.append("X-Client-IP", "10.0.0.1").unwrap();
/// h.append("x-client-ip", "10.0.0.2").unwrap();
/// assert_eq!(h.get("X-CLIENT-IP").unwrap().as_bytes(), b"10.0.0.1");
/// assert_eq!(h.get_all("X-Client-IP").count(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// The decoded head the `Entry::Decoded` spans point into (empty when built by hand).
    buf: Bytes,
    entries: Vec<Entry>,
    /// The fields of `Entry::Owned`, by index.
    owned: Vec<(HeaderName, HeaderValue)>,
}

/// The bytes a [`Headers`] can hold decoded fields of: spans are `u32`.
pub(crate) const MAX_DECODED: usize = u32::MAX as usize;

impl Headers {
    /// The decoded fields `entries` (made by [`Entry::decoded`] for `buf`'s length) of
    /// `buf`, which the map keeps.
    pub(crate) fn decoded(buf: Bytes, entries: Vec<Entry>) -> Self {
        Headers {
            buf,
            entries,
            owned: Vec::new(),
        }
    }

    /// Calls `f` on every piece of shared bytes the map holds (its buffer and the owned
    /// values), so that [`crate::RequestHead::detached`] can copy them.
    pub(crate) fn for_each_shared(&mut self, f: &mut dyn FnMut(&mut Bytes)) {
        self.drop_unused();
        if self
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Decoded { .. }))
        {
            f(&mut self.buf);
        } else {
            self.buf = Bytes::new();
        }
        for (n, v) in &mut self.owned {
            f(&mut n.0);
            v.for_each_shared(f);
        }
    }

    /// No headers, with room for `n` without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            buf: Bytes::new(),
            entries: Vec::with_capacity(n),
            owned: Vec::with_capacity(n),
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

    fn name_of(&self, e: Entry) -> HeaderNameRef<'_> {
        match e {
            Entry::Decoded { name, .. } => HeaderNameRef {
                bytes: name.of(&self.buf),
                src: &self.buf,
            },
            Entry::Owned(i) => self.owned.get(i).map_or(
                HeaderNameRef {
                    bytes: &[],
                    src: &self.buf,
                },
                |(n, _)| n.as_view(),
            ),
        }
    }

    fn value_of(&self, e: Entry) -> HeaderValueRef<'_> {
        match e {
            Entry::Decoded { value, .. } => HeaderValueRef {
                bytes: value.of(&self.buf),
                src: Some(&self.buf),
            },
            Entry::Owned(i) => self.owned.get(i).map_or(
                HeaderValueRef {
                    bytes: &[],
                    src: None,
                },
                |(_, v)| v.as_view(),
            ),
        }
    }

    fn is_named(&self, e: Entry, name: &str) -> bool {
        self.name_of(e).is(name)
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<HeaderValueRef<'_>> {
        self.entries
            .iter()
            .find(|&&e| self.is_named(e, name))
            .map(|&e| self.value_of(e))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = HeaderValueRef<'a>> + 'a {
        self.entries
            .iter()
            .filter(move |&&e| self.is_named(e, name))
            .map(|&e| self.value_of(e))
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
        let mut first: Option<HeaderValueRef<'_>> = None;
        for &e in &self.entries {
            if !self.is_named(e, name) {
                continue;
            }
            let v = self.value_of(e);
            match first {
                None => first = Some(v),
                Some(f) if !same_value(f.as_bytes(), v.as_bytes()) => {
                    return Single::Conflict;
                }
                Some(_) => {}
            }
        }
        first.map_or(Single::Absent, Single::One)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|&e| self.is_named(e, name))
    }

    /// Every field in order.
    pub fn iter(&self) -> HeadersIter<'_> {
        HeadersIter {
            headers: self,
            entries: self.entries.iter(),
        }
    }

    /// Adds a field after the others, validating name and value.
    pub fn append<N, V>(&mut self, name: N, value: V) -> Result<(), EncodeError>
    where
        N: TryInto<HeaderName, Error = EncodeError>,
        V: TryInto<HeaderValue, Error = EncodeError>,
    {
        self.push(name.try_into()?, value.try_into()?);
        Ok(())
    }

    /// Adds an already validated field after the others.
    pub fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.entries.push(Entry::Owned(self.owned.len()));
        self.owned.push((name, value));
    }

    /// Sets `name` to `value`: replaces the first field of that name in place (keeping the
    /// name as it was written there) and removes the others, or appends when absent.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        let Some(first) = self.entries.iter().position(|&e| self.name_of(e) == name) else {
            self.push(name, value);
            return;
        };
        let mut i = 0;
        let (buf, owned) = (&self.buf, &self.owned);
        self.entries.retain(|&e| {
            let keep = i <= first || name_in(buf, owned, e) != name;
            i += 1;
            keep
        });
        match self.entries[first] {
            Entry::Owned(k) => {
                if let Some(slot) = self.owned.get_mut(k) {
                    slot.1 = value;
                }
            }
            Entry::Decoded { name: n, .. } => {
                let kept = HeaderName(self.buf.slice_ref(n.of(&self.buf)));
                self.entries[first] = Entry::Owned(self.owned.len());
                self.owned.push((kept, value));
            }
        }
        self.drop_unused();
    }

    /// Removes every field named `name`; returns how many.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        let (buf, owned) = (&self.buf, &self.owned);
        self.entries.retain(|&e| !name_in(buf, owned, e).is(name));
        self.drop_unused();
        before - self.entries.len()
    }

    /// Forgets owned fields that no entry refers to any more (after `set` or `remove`), so
    /// that a map edited in a loop does not grow.
    fn drop_unused(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        let used = self
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Owned(_)))
            .count();
        if used == self.owned.len() {
            return;
        }
        let mut old = std::mem::take(&mut self.owned);
        let mut owned = Vec::with_capacity(used);
        for e in &mut self.entries {
            if let Entry::Owned(k) = e
                && let Some(slot) = old.get_mut(*k)
            {
                owned.push(std::mem::replace(
                    slot,
                    (HeaderName(Bytes::new()), HeaderValue::default()),
                ));
                *k = owned.len() - 1;
            }
        }
        self.owned = owned;
    }

    /// Writes `name: value\r\n` for each field.
    pub fn encode(&self, out: &mut BytesMut) {
        for (n, v) in self {
            out.put_slice(n.as_bytes());
            out.put_slice(b": ");
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
    }

    /// Bytes [`Headers::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        self.iter()
            .map(|(n, v)| encoded_field_len(n.as_bytes().len(), v.as_bytes().len()))
            .fold(0, usize::saturating_add)
    }
}

/// The name of `e` in a map made of `buf` and `owned` (for closures that hold the entries
/// mutably).
fn name_in<'a>(
    buf: &'a Bytes,
    owned: &'a [(HeaderName, HeaderValue)],
    e: Entry,
) -> HeaderNameRef<'a> {
    match e {
        Entry::Decoded { name, .. } => HeaderNameRef {
            bytes: name.of(buf),
            src: buf,
        },
        Entry::Owned(i) => owned.get(i).map_or(
            HeaderNameRef {
                bytes: &[],
                src: buf,
            },
            |(n, _)| n.as_view(),
        ),
    }
}

/// Same fields in the same order: names compared case-insensitively, values by bytes.
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The fields of a [`Headers`] in order, as borrowed views.
#[derive(Clone)]
pub struct HeadersIter<'a> {
    headers: &'a Headers,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (HeaderNameRef<'a>, HeaderValueRef<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let &e = self.entries.next()?;
        Some((self.headers.name_of(e), self.headers.value_of(e)))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for HeadersIter<'_> {}

impl fmt::Debug for HeadersIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (HeaderNameRef<'a>, HeaderValueRef<'a>);
    type IntoIter = HeadersIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(
        head: &'static [u8],
        fields: &[(std::ops::Range<usize>, std::ops::Range<usize>)],
    ) -> Headers {
        let entries = fields
            .iter()
            .map(|(n, v)| Entry::decoded(head.len(), n.clone(), v.clone()).unwrap())
            .collect();
        Headers::decoded(Bytes::from_static(head), entries)
    }

    #[test]
    fn decoded_fields_are_views_of_one_buffer() {
        let head: &'static [u8] = b"x-a: short\r\nX-Long: 0123456789abcdef\r\n";
        let h = decoded(head, &[(0..3, 5..10), (12..18, 20..36)]);
        let got: Vec<(&str, &[u8])> = h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        assert_eq!(
            got,
            [("x-a", &b"short"[..]), ("X-Long", b"0123456789abcdef")]
        );
        let v = h.get("x-long").unwrap();
        assert_eq!(v.as_bytes().as_ptr(), head[20..].as_ptr());
        // `to_bytes` shares the buffer, and so does a clone of the map.
        assert_eq!(v.to_bytes().as_ptr(), head[20..].as_ptr());
        let c = h.clone();
        assert_eq!(
            c.get("X-A").unwrap().as_bytes().as_ptr(),
            head[5..].as_ptr()
        );
        assert_eq!(c, h);
        // Equal to the same fields built by hand, names compared case-insensitively.
        let mut built = Headers::new();
        built.append("X-A", "short").unwrap();
        built.append("x-long", "0123456789abcdef").unwrap();
        assert_eq!(built, h);
        assert_eq!(
            format!("{built:?}"),
            r#"[("X-A", "short"), ("x-long", "0123456789abcdef")]"#
        );
        built.append("X-B", "1").unwrap();
        assert_ne!(built, h);
        // A view equals owned values and names by bytes.
        assert_eq!(v, HeaderValue::new("0123456789abcdef").unwrap());
        assert_eq!(h.iter().next().unwrap().0, HeaderName::from_static("X-A"));
        assert_eq!(v.to_owned().as_bytes(), b"0123456789abcdef");
    }

    #[test]
    fn ranges_outside_the_buffer_are_refused() {
        assert!(Entry::decoded(6, 0..1, 3..7).is_none());
        #[allow(
            clippy::reversed_empty_ranges,
            reason = "the reversed range is the case tested"
        )]
        let reversed = 2..1;
        assert!(Entry::decoded(6, reversed, 3..4).is_none());
        assert!(Entry::decoded(6, 0..1, 3..4).is_some());
        assert!(Entry::decoded(MAX_DECODED + 1, 0..1, 3..MAX_DECODED + 1).is_none());
    }

    #[test]
    fn set_and_remove_mix_decoded_and_owned_fields() {
        let head: &'static [u8] = b"Host: a\r\nX-A: 1\r\nx-a: 2\r\n";
        let mut h = decoded(head, &[(0..4, 6..7), (9..12, 14..15), (17..20, 22..23)]);
        h.set(HeaderName::from_static("X-A"), HeaderValue::from_u64(3));
        let got: Vec<(&str, &[u8])> = h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        assert_eq!(got, [("Host", &b"a"[..]), ("X-A", b"3")]);
        for i in 0..100 {
            h.append("X-Loop", "x").unwrap();
            h.set(HeaderName::from_static("X-A"), HeaderValue::from_u64(i));
            assert_eq!(h.remove("x-loop"), 1);
        }
        assert_eq!(h.owned.len(), 1, "owned fields no entry uses are dropped");
        assert_eq!(h.get("X-A").unwrap().to_u64(), Some(99));
        assert_eq!(h.remove("HOST"), 1);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn an_entry_is_small() {
        assert!(std::mem::size_of::<Entry>() <= 24);
        assert!(std::mem::size_of::<HeaderValue>() <= 32);
        assert_eq!(HeaderValue::from_u64(u64::MAX).to_u64(), Some(u64::MAX));
        assert_eq!(HeaderValue::from_u64(0).as_bytes(), b"0");
        assert_eq!(HeaderValue::from_u64(1024).as_view().to_bytes(), "1024");
    }
}
