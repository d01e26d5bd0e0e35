//! The `Encapsulated` header (RFC 3507 section 4.4).

use crate::error::EncapsulatedError;
use crate::types::Method;

/// One entry name of `Encapsulated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Section {
    /// `req-hdr`: an embedded HTTP request head.
    ReqHdr,
    /// `res-hdr`: an embedded HTTP response head.
    ResHdr,
    /// `req-body`: a chunked HTTP request body.
    ReqBody,
    /// `res-body`: a chunked HTTP response body.
    ResBody,
    /// `opt-body`: a chunked OPTIONS body.
    OptBody,
    /// `null-body`: no body; its offset is the length of the heads.
    NullBody,
}

impl Section {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::ReqHdr => "req-hdr",
            Section::ResHdr => "res-hdr",
            Section::ReqBody => "req-body",
            Section::ResBody => "res-body",
            Section::OptBody => "opt-body",
            Section::NullBody => "null-body",
        }
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        // By length first: each arm then compares one fixed-size array.
        Some(match (b.len(), b) {
            (7, _) => match b {
                b"req-hdr" => Section::ReqHdr,
                b"res-hdr" => Section::ResHdr,
                _ => return None,
            },
            (8, _) => match b {
                b"req-body" => Section::ReqBody,
                b"res-body" => Section::ResBody,
                b"opt-body" => Section::OptBody,
                _ => return None,
            },
            (9, b"null-body") => Section::NullBody,
            _ => return None,
        })
    }

    /// The entry whose name and `=` start `b`, and their length: a few fixed-size
    /// comparisons instead of a scan for the `=`.
    fn prefix(b: &[u8]) -> Option<(Self, usize)> {
        const NAMES: [(&[u8], Section); 6] = [
            (b"req-hdr=", Section::ReqHdr),
            (b"res-hdr=", Section::ResHdr),
            (b"req-body=", Section::ReqBody),
            (b"res-body=", Section::ResBody),
            (b"opt-body=", Section::OptBody),
            (b"null-body=", Section::NullBody),
        ];
        NAMES
            .iter()
            .find(|(name, _)| b.starts_with(name))
            .map(|&(name, section)| (section, name.len()))
    }

    /// Whether this is one of the four body entries.
    pub fn is_body(self) -> bool {
        matches!(
            self,
            Section::ReqBody | Section::ResBody | Section::OptBody | Section::NullBody
        )
    }
}

/// Which chunked body follows the heads, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum BodyKind {
    /// `req-body`.
    Request,
    /// `res-body`.
    Response,
    /// `opt-body`.
    Options,
}

impl BodyKind {
    /// The `Encapsulated` entry name.
    pub fn section(self) -> Section {
        match self {
            BodyKind::Request => Section::ReqBody,
            BodyKind::Response => Section::ResBody,
            BodyKind::Options => Section::OptBody,
        }
    }
}

/// Whether a message is a request or a response, for the rules of section 4.4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}

/// A parsed, validated `Encapsulated` header: the entries with their offsets, in order.
///
/// ```
/// use icap_proto::{Direction, Encapsulated, Method, Section};
/// let e = Encapsulated::parse(b"req-hdr=0, res-hdr=137, res-body=296").unwrap();
/// e.validate(Method::Respmod, Direction::Request).unwrap();
/// assert_eq!(e.offset(Section::ResHdr), Some(137));
/// assert_eq!(e.body(), (Section::ResBody, 296));
/// assert_eq!(e.to_string(), "req-hdr=0, res-hdr=137, res-body=296");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    entries: Entries,
}

/// At most [`MAX_ENTRIES`] entries kept in place: a decoded head needs no allocation for
/// them. Slots past `len` keep their initial value, so the derived equality compares only
/// what was pushed.
#[derive(Clone, PartialEq, Eq)]
struct Entries {
    len: usize,
    items: [(Section, u64); MAX_ENTRIES],
}

/// Room kept per list. A valid list has at most three entries (`req-hdr`, `res-hdr`, a
/// body); `parse` refuses any list before it would store a fifth.
const MAX_ENTRIES: usize = 4;

impl Entries {
    const fn new() -> Self {
        Entries {
            len: 0,
            items: [(Section::NullBody, 0); MAX_ENTRIES],
        }
    }

    /// Appends an entry read from the wire, after the checks of section 4.4.1 that one
    /// entry at a time can fail.
    fn push_checked(&mut self, section: Section, offset: u64) -> Result<(), EncapsulatedError> {
        if self.len >= MAX_ENTRIES {
            return Err(EncapsulatedError::SectionOrder);
        }
        match self.last() {
            None if offset != 0 => return Err(EncapsulatedError::OffsetOrder),
            Some(&(prev_section, prev)) => {
                if prev_section.is_body() {
                    return Err(EncapsulatedError::BodyPlacement);
                }
                if section <= prev_section {
                    return Err(EncapsulatedError::SectionOrder);
                }
                if offset <= prev {
                    return Err(EncapsulatedError::OffsetOrder);
                }
            }
            None => {}
        }
        self.push((section, offset));
        Ok(())
    }

    /// The list read, if it ends with its one body entry.
    fn finish(self) -> Result<Encapsulated, EncapsulatedError> {
        match self.last() {
            Some((s, _)) if s.is_body() => Ok(Encapsulated { entries: self }),
            _ => Err(EncapsulatedError::BodyPlacement),
        }
    }

    fn push(&mut self, entry: (Section, u64)) {
        // Callers push at most MAX_ENTRIES (parse checks before each push).
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = entry;
            self.len += 1;
        }
    }
}

/// Prints as the list it holds, as the `Vec` it replaced did.
impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl std::ops::Deref for Entries {
    type Target = [(Section, u64)];
    fn deref(&self) -> &Self::Target {
        &self.items[..self.len]
    }
}

impl Encapsulated {
    /// `encapsulated-list = entry *( "," OWS entry )`, `entry = name "=" 1*DIGIT`
    /// (RFC 3507 section 4.4.1). Checks names and offsets, and that exactly one body entry
    /// comes last; [`Encapsulated::validate`] checks the combination.
    pub fn parse(value: &[u8]) -> Result<Self, EncapsulatedError> {
        Self::parse_plain(value).unwrap_or_else(|| Self::parse_general(value))
    }

    /// Any list the grammar allows, with whitespace and folds around the items.
    fn parse_general(value: &[u8]) -> Result<Self, EncapsulatedError> {
        let mut entries = Entries::new();
        for item in value.split(|&b| b == b',') {
            // A folded Encapsulated value (obs-fold after a comma) is still one list.
            let item = crate::header::trim_folded(item);
            // Items are a dozen bytes: a plain loop beats a `memchr` call's setup.
            let eq = item
                .iter()
                .position(|&b| b == b'=')
                .ok_or(EncapsulatedError::Syntax)?;
            let name = crate::header::trim_ows(&item[..eq]);
            let num = crate::header::trim_ows(&item[eq + 1..]);
            let section = Section::from_bytes(name).ok_or(if name.is_empty() {
                EncapsulatedError::Syntax
            } else {
                EncapsulatedError::UnknownSection
            })?;
            let offset = crate::header::parse_u64(num).ok_or(EncapsulatedError::BadOffset)?;
            entries.push_checked(section, offset)?;
        }
        entries.finish()
    }

    /// [`Encapsulated::parse`] of the shape every sender writes, `name=digits` items
    /// joined by `,` and at most one space, in one pass; `None` for anything else (spaces
    /// elsewhere, folds, an unknown name, a bad number), which the general loop then reads
    /// and reports on. Both push through the same checks, item by item, so they give the
    /// same list or the same error.
    fn parse_plain(value: &[u8]) -> Option<Result<Self, EncapsulatedError>> {
        let mut entries = Entries::new();
        let mut i = 0;
        loop {
            let (section, name_len) = Section::prefix(&value[i..])?;
            i += name_len;
            let digits = i;
            let mut offset = 0u64;
            while let Some(&d @ b'0'..=b'9') = value.get(i) {
                offset = offset.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                i += 1;
            }
            if i == digits || i - digits > 20 {
                return None;
            }
            // The item must end here, as the general loop splits it, before its checks.
            let last = match value.get(i) {
                None => true,
                Some(b',') => false,
                Some(_) => return None,
            };
            if let Err(e) = entries.push_checked(section, offset) {
                return Some(Err(e));
            }
            if last {
                return Some(entries.finish());
            }
            i += if value.get(i + 1) == Some(&b' ') {
                2
            } else {
                1
            };
        }
    }

    /// Builds the list for the given heads and body, computing offsets from head lengths.
    pub fn from_lengths(
        req_hdr: Option<usize>,
        res_hdr: Option<usize>,
        body: Option<BodyKind>,
    ) -> Self {
        let mut entries = Entries::new();
        let mut at = 0u64;
        if let Some(n) = req_hdr {
            entries.push((Section::ReqHdr, at));
            at = at.saturating_add(n as u64);
        }
        if let Some(n) = res_hdr {
            entries.push((Section::ResHdr, at));
            at = at.saturating_add(n as u64);
        }
        entries.push((body.map_or(Section::NullBody, BodyKind::section), at));
        Encapsulated { entries }
    }

    /// Checks the combination against RFC 3507 section 4.4.1 for this method and direction:
    ///
    /// ```text
    /// REQMOD  request   [req-hdr] req-body|null-body
    /// REQMOD  response  [req-hdr] req-body|null-body  or  [res-hdr] res-body|null-body
    /// RESPMOD request   [req-hdr] [res-hdr] res-body|null-body
    /// RESPMOD response  [res-hdr] res-body|null-body
    /// OPTIONS both      opt-body|null-body
    /// ```
    pub fn validate(&self, method: Method, direction: Direction) -> Result<(), EncapsulatedError> {
        let has = |s| self.offset(s).is_some();
        let body = self.body().0;
        let ok = match (method, direction) {
            (Method::Options, _) => {
                self.entries.len() == 1 && matches!(body, Section::OptBody | Section::NullBody)
            }
            (Method::Reqmod, Direction::Request) => {
                !has(Section::ResHdr) && matches!(body, Section::ReqBody | Section::NullBody)
            }
            (Method::Reqmod, Direction::Response) => {
                (!has(Section::ResHdr) && matches!(body, Section::ReqBody | Section::NullBody))
                    || (!has(Section::ReqHdr)
                        && matches!(body, Section::ResBody | Section::NullBody))
            }
            (Method::Respmod, Direction::Request) => {
                matches!(body, Section::ResBody | Section::NullBody)
            }
            (Method::Respmod, Direction::Response) => {
                !has(Section::ReqHdr) && matches!(body, Section::ResBody | Section::NullBody)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(EncapsulatedError::NotAllowed)
        }
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(Section, u64)] {
        &self.entries
    }

    /// The offset of `section`, if present.
    pub fn offset(&self, section: Section) -> Option<u64> {
        self.entries
            .iter()
            .find(|(s, _)| *s == section)
            .map(|&(_, o)| o)
    }

    /// The body entry (always last) and its offset, which is the length of all heads.
    pub fn body(&self) -> (Section, u64) {
        *self
            .entries
            .last()
            .expect("parse and from_lengths always add a body entry")
    }

    /// The body kind, or `None` for `null-body`.
    pub fn body_kind(&self) -> Option<BodyKind> {
        match self.body().0 {
            Section::ReqBody => Some(BodyKind::Request),
            Section::ResBody => Some(BodyKind::Response),
            Section::OptBody => Some(BodyKind::Options),
            _ => None,
        }
    }

    /// The length of the section starting at entry `i` (to the next entry).
    pub(crate) fn section_len(&self, i: usize) -> u64 {
        // `parse` makes offsets strictly increasing; saturating all the same, so that no
        // list, however built, can make this wrap.
        self.entries[i + 1].1.saturating_sub(self.entries[i].1)
    }
}

impl Encapsulated {
    /// Appends the value (`req-hdr=0, res-body=120`) to `out`, without a temporary string.
    pub(crate) fn put_value(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        for (i, (sec, off)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.put_slice(b", ");
            }
            out.put_slice(sec.as_str().as_bytes());
            out.put_u8(b'=');
            out.put_slice(crate::header::decimal(*off, &mut [0u8; 20]));
        }
    }
}

impl std::fmt::Display for Encapsulated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (sec, off)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={off}", sec.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass reading of the usual shape agrees with the general one on lists
        /// made of names, numbers, separators and stray bytes, valid or not.
        #[test]
        fn plain_and_general_readings_agree(parts in proptest::collection::vec(
            prop_oneof![
                Just("req-hdr="), Just("res-hdr="), Just("req-body="), Just("res-body="),
                Just("opt-body="), Just("null-body="), Just("req-hdr"), Just("bogus="),
                Just("0"), Just("7"), Just("137"), Just("99999999999999999999"),
                Just("184467440737095516150"), Just(","), Just(", "), Just(",  "),
                Just(" "), Just("\t"), Just("="), Just("\r\n "), Just("x"),
            ],
            0..12,
        )) {
            let value = parts.concat();
            let general = Encapsulated::parse_general(value.as_bytes());
            if let Some(plain) = Encapsulated::parse_plain(value.as_bytes()) {
                prop_assert_eq!(plain, general, "{:?}", value);
            }
        }
    }

    #[test]
    fn entries_in_place_compare_and_print_as_the_list() {
        let parsed = Encapsulated::parse(b"req-hdr=0, res-hdr=10, res-body=25").unwrap();
        let built = Encapsulated::from_lengths(Some(10), Some(15), Some(BodyKind::Response));
        assert_eq!(parsed, built);
        assert_ne!(
            parsed,
            Encapsulated::from_lengths(Some(10), None, Some(BodyKind::Response))
        );
        assert_eq!(
            format!("{parsed:?}"),
            "Encapsulated { entries: [(ReqHdr, 0), (ResHdr, 10), (ResBody, 25)] }"
        );
        // Past the body entry nothing more is stored: the list is refused first.
        assert_eq!(
            Encapsulated::parse(b"req-hdr=0, res-hdr=1, null-body=2, null-body=3, null-body=4"),
            Err(EncapsulatedError::BodyPlacement)
        );
    }
}
