//! The private grammar: start lines and header fields of heads, and the search for where a
//! head ends.
//!
//! The rules run on bytes that start with a head and hold all of it, so they use
//! `nom::bytes::complete` where they use nom. They may run on past the head: the fields end
//! at the first empty line, and nothing they accept holds a `CRLF CRLF` earlier or an LF
//! without a CR before it. So the decoder reads a head that arrived whole straight from its
//! buffer, and frames first (finding the end under a size limit, [`find_head_end`]) only a
//! head that did not, or that fails to read.

use std::sync::LazyLock;

use bytes::Bytes;
use nom::IResult;
use nom::Parser;
use nom::bytes::complete::{tag, take_while_m_n};

use crate::encapsulated::Encapsulated;
use crate::error::{DecodeError, EncapsulatedError, Limit};
use crate::header::{
    Entry, Headers, MAX_DECODED, TCHAR, has_invisible, parse_u64, same_value, trim_ows,
};
use crate::limits::Limits;

type PResult<'a, T> = IResult<&'a [u8], T, ()>;

/// Finds the end of a head that starts at `buf[0]`: the index just past `CRLF CRLF`.
///
/// `scanned` is how far an earlier call already looked, so feeding a head in pieces costs
/// linear time. Every LF must follow a CR ([`DecodeError::BareLineFeed`]).
///
/// One substring search for the end and one branch-free pass for bare LFs: a loop over
/// every LF (one `memchr` call per line) cost more than the rest of framing.
pub(crate) fn find_head_end(buf: &[u8], scanned: &mut usize) -> Result<Option<usize>, DecodeError> {
    let start = (*scanned).min(buf.len());
    // Three bytes back: a CRLF CRLF may straddle the end of the last call's bytes.
    let from = start.saturating_sub(3);
    let end = find_empty_line(&buf[from..]).map(|p| from + p + 4);
    if has_bare_lf(buf, start, end.unwrap_or(buf.len())) {
        return Err(DecodeError::BareLineFeed);
    }
    if end.is_none() {
        *scanned = buf.len();
    }
    Ok(end)
}

/// Where the first `CRLF CRLF` in `hay` starts.
pub(crate) fn find_empty_line(hay: &[u8]) -> Option<usize> {
    static FINDER: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    FINDER.find(hay)
}

/// Whether some LF in `buf[from..to]` does not follow a CR (the byte before `from` counts).
/// Written without early exit so that the compiler vectorises it.
pub(crate) fn has_bare_lf(buf: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(buf.len());
    if from >= to {
        return false;
    }
    let first = buf[from] == b'\n' && (from == 0 || buf[from - 1] != b'\r');
    let s = &buf[from..to];
    let rest = s[1..].iter().zip(s).fold(0u8, |bad, (&b, &before)| {
        bad | (u8::from(b == b'\n') & u8::from(before != b'\r'))
    });
    first || rest != 0
}

/// Whether a `CRLF CRLF` may start anywhere in `starts` (the part of it that fits in `buf`).
/// Only for bytes whose every LF follows a CR: then `CRLF CRLF` at `s` is exactly an LF at
/// `s + 1` and at `s + 3`, which one branch-free (vectorised) pass can test.
pub(crate) fn may_hold_empty_line(buf: &[u8], starts: std::ops::Range<usize>) -> bool {
    let end = starts.end.min(buf.len().saturating_sub(3));
    if starts.start >= end {
        return false;
    }
    // The bytes from the first LF of the first start to the second LF of the last.
    let s = &buf[starts.start + 1..end + 3];
    s[2..].iter().zip(s).fold(0u8, |hit, (&second, &first)| {
        hit | (u8::from(first == b'\n') & u8::from(second == b'\n'))
    }) != 0
}

/// The first LF in `buf[from..]` that does not follow a CR, if any.
pub(crate) fn first_bare_lf(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf.get(from..)?)
        .map(|i| i + from)
        .find(|&i| i == 0 || buf[i - 1] != b'\r')
}

/// Whether every byte of `s` is a `tchar`: one table load per byte, without branches.
fn all_tchar(s: &[u8]) -> bool {
    s.iter().fold(true, |ok, &b| ok & TCHAR[usize::from(b)])
}

/// `token = 1*tchar`
fn parse_token(i: &[u8]) -> PResult<'_, &[u8]> {
    take_run(i, &TCHAR)
}

/// One or more bytes of `class`, as `take_while1` would, with one table load per byte.
fn take_run<'a>(i: &'a [u8], class: &[bool; 256]) -> PResult<'a, &'a [u8]> {
    let n = i
        .iter()
        .position(|&b| !class[usize::from(b)])
        .unwrap_or(i.len());
    if n == 0 {
        return Err(nom::Err::Error(()));
    }
    Ok((&i[n..], &i[..n]))
}

/// One or more visible bytes (`VCHAR` and obs-text: above SP, not DEL) up to, not
/// including, the first `stop`, which must follow them: what `take_while1` of visible
/// bytes then `tag(stop)` accepts, found with one `memchr` and checked in one branch-free
/// pass (request targets are long; a closure per byte through nom cost several times more).
fn visible_until(i: &[u8], stop: u8) -> PResult<'_, &[u8]> {
    let n = memchr::memchr(stop, i).ok_or(nom::Err::Error(()))?;
    if n == 0 || has_invisible(&i[..n]) {
        return Err(nom::Err::Error(()));
    }
    Ok((&i[n..], &i[..n]))
}

/// Everything up to (not including) the next CRLF, and the CRLF.
fn parse_line_rest(i: &[u8]) -> PResult<'_, &[u8]> {
    let n = memchr::memchr(b'\r', i).unwrap_or(i.len());
    let (i, text) = (&i[n..], &i[..n]);
    let (i, _) = tag(&b"\r\n"[..]).parse(i)?;
    Ok((i, text))
}

/// `request-line = method SP request-target SP version CRLF`; the target is any run of
/// visible characters (validated by the caller).
pub(crate) fn parse_request_line(i: &[u8]) -> PResult<'_, (&[u8], &[u8], &[u8])> {
    let (i, method) = parse_token(i)?;
    let (i, _) = tag(&b" "[..]).parse(i)?;
    let (i, target) = visible_until(i, b' ')?;
    let (i, _) = tag(&b" "[..]).parse(i)?;
    let (i, version) = visible_until(i, b'\r')?;
    let (i, _) = tag(&b"\r\n"[..]).parse(i)?;
    Ok((i, (method, target, version)))
}

/// `status-line = version SP 3DIGIT [SP reason-phrase] CRLF`. The reason is optional and
/// may hold any bytes but CR, LF and NUL (vendors localise it). Like the field parser, this
/// refuses a bare LF itself.
pub(crate) fn parse_status_line(i: &[u8]) -> PResult<'_, (&[u8], u16, &[u8])> {
    let (i, version) = visible_until(i, b' ')?;
    let (i, _) = tag(&b" "[..]).parse(i)?;
    let (i, digits) = take_while_m_n(3, 3, |b: u8| b.is_ascii_digit()).parse(i)?;
    let code = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let (i, reason) = if let Ok((i, _)) = tag::<_, _, ()>(&b" "[..]).parse(i) {
        parse_line_rest(i)?
    } else {
        let (i, _) = tag(&b"\r\n"[..]).parse(i)?;
        (i, &b""[..])
    };
    if memchr::memchr2(0, b'\n', reason).is_some() {
        return Err(nom::Err::Error(()));
    }
    Ok((i, (version, code, reason)))
}

/// One header field with its obs-fold continuation lines, at the start of `i`:
/// `field-name ":" OWS field-value OWS CRLF *( (SP / HTAB) field-text CRLF )`.
/// `None` if `i` does not start with one.
///
/// Hand-written rather than composed from nom combinators: it runs once per field, and
/// the combinator calls cost more than the bytes of a typical field. The name is found
/// with a word-at-a-time search for its colon and then checked byte by byte without
/// branches, which together cost less than a loop that stops at the first non-token byte
/// (the name is valid exactly when every byte before the first colon is a token byte).
fn parse_field(i: &[u8]) -> Option<Field> {
    let n = find_byte(i, 0, b':')?;
    if n == 0 || !all_tchar(&i[..n]) {
        return None;
    }
    let mut v = n + 1;
    while let Some(b' ' | b'\t') = i.get(v) {
        v += 1;
    }
    // The value runs to the first CRLF that is not followed by SP or HTAB; a NUL or an LF
    // without a CR before it on the way is an error (callers that scanned for bare LFs
    // never meet one; the decoder's sections rely on this to skip that scan).
    let mut at = v;
    loop {
        let cr = line_end(i, at)?;
        if i[cr] != b'\r' || i.get(cr + 1) != Some(&b'\n') {
            return None;
        }
        if let Some(b' ' | b'\t') = i.get(cr + 2) {
            at = cr + 2;
            continue;
        }
        let folded = at != v;
        let value = if folded {
            let (lead, len) = trimmed_folded(&i[v..cr]);
            v + lead..v + lead + len
        } else {
            // One line: no CR or LF inside, and no leading whitespace left.
            let mut end = cr;
            while end > v && matches!(i[end - 1], b' ' | b'\t') {
                end -= 1;
            }
            v..end
        };
        return Some(Field {
            name_len: n,
            value,
            folded,
            len: cr + 2,
        });
    }
}

/// Where [`parse_field`] found a field's parts, as positions in its input.
struct Field {
    /// The name is `0..name_len`.
    name_len: usize,
    /// The raw value: folds included, outer whitespace and folds trimmed.
    value: std::ops::Range<usize>,
    /// Whether it had continuation lines.
    folded: bool,
    /// The bytes of the field, its last CRLF included.
    len: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The first `needle` in `b[from..]`, as an index into `b`, eight bytes at a time (the
/// lowest byte a zero test flags is exact: a borrow only flags bytes after it).
fn find_byte(b: &[u8], from: usize, needle: u8) -> Option<usize> {
    let mut at = from;
    while let Some(word) = b.get(at..at + 8) {
        let x =
            u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ (ONES * u64::from(needle));
        let zero = x.wrapping_sub(ONES) & !x & HIGH;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    b.get(at..)?
        .iter()
        .position(|&c| c == needle)
        .map(|p| at + p)
}

/// The first CR, LF or NUL in `b[from..]`, as an index into `b`.
///
/// Eight bytes at a time: one subtraction finds the first byte below SP in a word (a byte
/// that borrows can only flag bytes after it, so the lowest flag is exact; bytes from 0x80
/// are masked out). HTAB and the other control bytes a value may hold are passed over.
/// A field value is a few dozen bytes, where `memchr3`'s setup cost more than this loop.
fn line_end(b: &[u8], from: usize) -> Option<usize> {
    let below_sp = |w: &[u8]| {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        x.wrapping_sub(ONES * 0x20) & !x & HIGH
    };
    let mut at = from;
    // Four words per step while none holds a byte below SP: long values pass quickly.
    while let Some(w) = b.get(at..at + 32) {
        let any =
            below_sp(&w[..8]) | below_sp(&w[8..16]) | below_sp(&w[16..24]) | below_sp(&w[24..]);
        if any != 0 {
            break;
        }
        at += 32;
    }
    loop {
        // Two words per step: values are often longer than one.
        let (m0, m1) = match b.get(at..at + 16) {
            Some(w) => (below_sp(&w[..8]), below_sp(&w[8..])),
            None => match b.get(at..at + 8) {
                Some(w) => (below_sp(w), 0),
                None => {
                    return b
                        .get(at..)?
                        .iter()
                        .position(|&c| matches!(c, b'\r' | b'\n' | 0))
                        .map(|p| at + p);
                }
            },
        };
        if m0 | m1 == 0 {
            at += if b.len() >= at + 16 { 16 } else { 8 };
            continue;
        }
        let i = if m0 != 0 {
            at + (m0.trailing_zeros() / 8) as usize
        } else {
            at + 8 + (m1.trailing_zeros() / 8) as usize
        };
        if matches!(b[i], b'\r' | b'\n' | 0) {
            return Some(i);
        }
        at = i + 1;
    }
}

/// Where [`crate::header::trim_folded`] of `raw` starts in it, and its length.
fn trimmed_folded(raw: &[u8]) -> (usize, usize) {
    let lead = raw
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(raw.len());
    (lead, crate::header::trim_folded(raw).len())
}

/// How [`parse_fields`] reads one block of fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldRules {
    /// Whether obs-fold continuation lines are accepted ([`DecodeError::ObsFold`] if not).
    pub(crate) obs_fold: bool,
    /// An ICAP head: its first `Encapsulated` field does not count against
    /// [`Limits::max_headers`] (see [`crate::Limits::max_headers`] for why).
    pub(crate) icap: bool,
}

/// Parses the header fields of `head[from..]` up to the first empty line (a bare LF or a
/// NUL on the way is refused, as is a CR without an LF after it) into
/// `Headers` that share `head` and hold only the positions of names and values in it, no
/// copies and no reference count per field. Also returns how many bytes are left from the
/// empty line on (2 when the head ends there), and the bytes [`Headers::encode`] writes for
/// the fields (what [`Headers::encoded_len`] would count again).
///
/// A field is `name ":" value` with its obs-fold continuation lines: one field, however
/// many lines, here and in [`Headers::encode`]; [`Limits::max_headers`] counts fields.
pub(crate) fn parse_fields(
    head: Bytes,
    from: usize,
    limits: &Limits,
    rules: FieldRules,
) -> Result<(Headers, usize, usize), DecodeError> {
    let (entries, left, encoded) = fields(&head, from, limits, rules, None)?;
    Ok((Headers::decoded(head, entries), left, encoded))
}

/// [`parse_fields`] as positions only: the table of a [`Headers`] over `head`, which the
/// caller makes once `head`'s bytes are shared.
pub(crate) fn field_table(
    head: &[u8],
    from: usize,
    limits: &Limits,
    rules: FieldRules,
) -> Result<(Vec<Entry>, usize, usize), DecodeError> {
    fields(head, from, limits, rules, None)
}

/// The fields of an ICAP head (`rules.icap`) in `head[from..]`, as the table of a
/// [`Headers`] over `head` (which may run on past the head: the fields end at the first
/// empty line), with its `Encapsulated` field read on the way (the decoder needs it next,
/// and would otherwise look the field up again): `None` without one,
/// [`DecodeError::DuplicateEncapsulated`] with two or more. Field errors come first, as
/// they would with the lookup after the parse. A `request` head's `Preview` is read on the
/// way too. Also returns where the head ends, just past its empty line.
pub(crate) fn parse_icap_fields(
    head: &[u8],
    from: usize,
    limits: &Limits,
    rules: FieldRules,
    request: bool,
) -> Result<IcapFields, DecodeError> {
    debug_assert!(rules.icap);
    let mut noted = Noted {
        note_preview: request,
        ..Noted::default()
    };
    let (entries, left, _) = fields(head, from, limits, rules, Some(&mut noted))?;
    let enc = match noted.enc_parsed {
        _ if noted.enc_repeated => return Err(DecodeError::DuplicateEncapsulated),
        Some(parsed) => Some(parsed.map_err(DecodeError::InvalidEncapsulated)?),
        None => None,
    };
    // As `RequestHead::preview` reads it from the decoded head.
    let bad_preview = DecodeError::InvalidHeaderValue("Preview");
    let preview = match noted.preview {
        None => Ok(None),
        Some(_) if noted.preview_conflict => Err(bad_preview),
        Some(r) => parse_u64(trim_ows(&head[r])).map(Some).ok_or(bad_preview),
    };
    Ok(IcapFields {
        entries,
        enc,
        preview,
        len: head.len() - left + 2,
    })
}

/// What [`parse_icap_fields`] read.
pub(crate) struct IcapFields {
    /// The table of the fields.
    pub(crate) entries: Vec<Entry>,
    /// The `Encapsulated` field, parsed.
    pub(crate) enc: Option<Encapsulated>,
    /// The `Preview` field, as [`crate::RequestHead::preview`] reads it (`Ok(None)` for a
    /// response head, where it is not looked for).
    pub(crate) preview: Result<Option<u64>, DecodeError>,
    /// Where the head ends, just past its empty line.
    pub(crate) len: usize,
}

/// Where [`fields`] notes the fields of an ICAP head that the decoder reads next, so that
/// it does not look them up again after the parse.
#[derive(Default)]
struct Noted {
    /// Whether to note `Preview` (a request head).
    note_preview: bool,
    /// The first `Encapsulated` value, as positions in the head.
    enc_first: Option<std::ops::Range<usize>>,
    enc_repeated: bool,
    /// The first `Encapsulated` value, parsed once the block parsed.
    enc_parsed: Option<Result<Encapsulated, EncapsulatedError>>,
    /// The first `Preview` value, as positions in the head.
    preview: Option<std::ops::Range<usize>>,
    /// Whether a later `Preview` differs from the first (`Headers::get_single`'s rule).
    preview_conflict: bool,
}

/// The table of the fields in `head[from..]` (see [`parse_fields`]), how many bytes of
/// `head` are left from the empty line on, and the bytes the fields encode to.
fn fields(
    head: &[u8],
    from: usize,
    limits: &Limits,
    rules: FieldRules,
    mut noted: Option<&mut Noted>,
) -> Result<(Vec<Entry>, usize, usize), DecodeError> {
    // Positions are `u32`: a longer head cannot pass `Limits` (whose sizes are `usize`), but
    // is refused here as too big rather than wrapped.
    let too_big = || {
        if rules.icap {
            DecodeError::limit(Limit::Head, limits.max_head)
        } else {
            DecodeError::limit(Limit::HttpHead, limits.max_http_head)
        }
    };
    if head.len() > MAX_DECODED {
        return Err(too_big());
    }
    if from > head.len() {
        return Err(DecodeError::InvalidHeader);
    }
    // Room for a field per 48 bytes: no regrowth for heads of typical fields, and at most
    // half the head's size in table for a head of short ones.
    let room = ((head.len() - from) / 48)
        .max(8)
        .min(limits.max_headers.saturating_add(1));
    let mut entries = Vec::with_capacity(room);
    let mut encoded = 0usize;
    let mut counted = 0usize;
    let mut encapsulated_seen = false;
    let mut at = from;
    loop {
        let i = &head[at..];
        if i.starts_with(b"\r\n") {
            let left = i.len();
            if let Some(e) = noted.as_mut()
                && let Some(r) = e.enc_first.clone()
            {
                e.enc_parsed = head.get(r).map(Encapsulated::parse);
            }
            return Ok((entries, left, encoded));
        }
        let f = parse_field(i).ok_or_else(|| field_error(i))?;
        if f.folded && !rules.obs_fold {
            return Err(DecodeError::ObsFold);
        }
        // A field counts against `max_header_line` with the larger of the bytes received
        // and the bytes `Headers::encode` writes for it (`name: value CRLF`). So whatever
        // decodes under a limit also decodes, under the same limit, once encoded again: a
        // field received as `name:value` grows by the space the encoder writes.
        let written = crate::header::encoded_field_len(f.name_len, f.value.len());
        encoded = encoded.saturating_add(written);
        if f.len.max(written) > limits.max_header_line {
            return Err(DecodeError::limit(
                Limit::HeaderLine,
                limits.max_header_line,
            ));
        }
        let value = at + f.value.start..at + f.value.end;
        let name = &i[..f.name_len];
        let is_enc = rules.icap && name.eq_ignore_ascii_case(b"Encapsulated");
        if let Some(e) = noted.as_mut() {
            if is_enc {
                if e.enc_first.is_some() {
                    e.enc_repeated = true;
                } else {
                    e.enc_first = Some(value.clone());
                }
            } else if e.note_preview && name.eq_ignore_ascii_case(b"Preview") {
                match &e.preview {
                    None => e.preview = Some(value.clone()),
                    Some(first) => {
                        e.preview_conflict |=
                            !same_value(&head[first.clone()], &head[value.clone()]);
                    }
                }
            }
        }
        if is_enc && !encapsulated_seen {
            encapsulated_seen = true;
        } else if counted >= limits.max_headers {
            return Err(DecodeError::limit(Limit::HeaderCount, limits.max_headers));
        } else {
            counted += 1;
        }
        let entry = Entry::decoded(head.len(), at..at + f.name_len, value);
        entries.push(entry.ok_or_else(too_big)?);
        at += f.len;
    }
}

/// `part` (a slice of `head`) as `Bytes`: a static copy when it is one of the common
/// strings below, otherwise a slice of `head`. Every slice touches `head`'s atomic
/// reference count when made and when dropped, which costs more than parsing a short field
/// (most of the time of decoding a head went there); common names, versions and methods
/// need none.
pub(crate) fn share(head: &Bytes, part: &[u8]) -> Bytes {
    match interned(part) {
        Some(s) => Bytes::from_static(s),
        None if part.is_empty() => Bytes::new(),
        None => head.slice_ref(part),
    }
}

/// Exact (case-sensitive) matches only: a decoded field keeps the bytes as sent.
pub(crate) fn interned(b: &[u8]) -> Option<&'static [u8]> {
    macro_rules! by_len {
        ($($len:literal => [$($s:literal),*]),* $(,)?) => {
            match b.len() {
                $($len => match b { $($s => Some($s),)* _ => None },)*
                _ => None,
            }
        };
    }
    by_len! {
        2 => [b"OK"],
        3 => [b"GET", b"PUT", b"204", b"Age", b"Via"],
        4 => [b"Host", b"Date", b"ETag", b"Vary", b"POST", b"HEAD", b"gzip"],
        5 => [b"Allow", b"ISTag", b"Range", b"close"],
        6 => [b"Accept", b"Cookie", b"Server", b"Origin", b"Pragma", b"Expect"],
        7 => [b"Preview", b"Referer", b"Expires", b"Methods", b"Service", b"chunked"],
        8 => [b"HTTP/1.1", b"HTTP/1.0", b"Location"],
        9 => [b"Forbidden", b"X-Blocked"],
        10 => [b"User-Agent", b"Connection", b"Set-Cookie", b"Keep-Alive", b"keep-alive", b"X-Virus-ID", b"Service-ID"],
        11 => [b"X-Client-IP", b"Options-TTL"],
        12 => [b"Content-Type", b"Encapsulated", b"X-Virus-Name"],
        13 => [b"Last-Modified", b"Authorization", b"Accept-Ranges", b"Cache-Control"],
        14 => [b"Content-Length", b"Accept-Charset", b"X-Block-Reason"],
        15 => [b"Accept-Encoding", b"Accept-Language", b"Max-Connections", b"Transfer-Ignore"],
        16 => [b"Content-Encoding", b"Content-Language", b"Content-Location", b"Transfer-Preview"],
        17 => [b"Transfer-Encoding", b"If-Modified-Since", b"X-Infection-Found", b"Transfer-Complete"],
        18 => [b"X-Violations-Found"],
        19 => [b"Content-Disposition"],
        20 => [b"X-Authenticated-User"],
        25 => [b"Strict-Transport-Security", b"Upgrade-Insecure-Requests"],
    }
}

/// A more precise error than "invalid header" when the line holds a control character.
fn field_error(line: &[u8]) -> DecodeError {
    let end = memchr::memchr(b'\n', line).unwrap_or(line.len());
    let l = &line[..end.saturating_sub(1)];
    if memchr::memchr2(b'\r', 0, l).is_some() {
        DecodeError::InvalidControlCharacter
    } else {
        DecodeError::InvalidHeader
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LENIENT: FieldRules = FieldRules {
        obs_fold: true,
        icap: false,
    };

    proptest::proptest! {
        /// The word-at-a-time search finds what a byte loop finds, from any start.
        #[test]
        fn line_end_is_the_first_cr_lf_or_nul(
            b in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::Just(b'\r'), proptest::prelude::Just(b'\n'),
                proptest::prelude::Just(0u8), proptest::prelude::Just(b'\t'),
                0x01u8..0x20, 0x20u8..0x7f, 0x7fu8..=0xff,
            ], 0..40),
            from in 0usize..45,
        ) {
            let want = b.get(from..).and_then(|s| {
                s.iter().position(|&c| matches!(c, b'\r' | b'\n' | 0)).map(|p| from + p)
            });
            proptest::prop_assert_eq!(line_end(&b, from), want);
        }
    }

    #[test]
    fn head_end_found_across_calls() {
        let mut scanned = 0;
        let msg = b"OPTIONS icap://h/s ICAP/1.0\r\nHost: h\r\n\r\nrest";
        assert_eq!(find_head_end(&msg[..20], &mut scanned), Ok(None));
        assert_eq!(scanned, 20);
        assert_eq!(find_head_end(&msg[..39], &mut scanned), Ok(None));
        assert_eq!(find_head_end(msg, &mut scanned), Ok(Some(msg.len() - 4)));
    }

    #[test]
    fn bare_lf_is_rejected() {
        let mut scanned = 0;
        assert_eq!(
            find_head_end(b"OPTIONS icap://h/s ICAP/1.0\nHost: h\n\n", &mut scanned),
            Err(DecodeError::BareLineFeed)
        );
    }

    #[test]
    fn status_line_shapes() {
        type Row = (&'static [u8], Option<(u16, &'static [u8])>);
        let rows: &[Row] = &[
            (b"ICAP/1.0 200 OK\r\n", Some((200, b"OK"))),
            (b"ICAP/1.0 204 Unmodified\r\n", Some((204, b"Unmodified"))),
            (b"ICAP/1.0 539 \r\n", Some((539, b""))),
            (b"ICAP/1.0 418\r\n", Some((418, b""))),
            (
                b"ICAP/1.0 200 Tout va bien \xc3\xa9\r\n",
                Some((200, b"Tout va bien \xc3\xa9")),
            ),
            (b"ICAP/1.0 20 OK\r\n", None),
            (b"ICAP/1.0 2000 OK\r\n", None),
            (b"ICAP/1.0  200 OK\r\n", None),
        ];
        for (line, want) in rows {
            let got = parse_status_line(line).ok().map(|(_, (_, c, r))| (c, r));
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn empty_folds_at_the_ends_are_trimmed() {
        let head = Bytes::from_static(b"X-A: 1\r\n \r\nX-B:\r\n\t2\r\n\t\r\n\t3\r\n\r\n");
        let (h, _, _) = parse_fields(head.clone(), 0, &Limits::default(), LENIENT).unwrap();
        assert_eq!(h.get("X-A").unwrap().as_bytes(), b"1");
        assert_eq!(h.get("X-B").unwrap().as_bytes(), b"2\r\n\t\r\n\t3");
    }

    #[test]
    fn shared_parts_keep_the_bytes_as_sent() {
        let head = Bytes::from_static(b"Host: a\r\nhost: HTTP/1.1\r\nX-Odd: \r\n\r\n");
        let (h, _, _) = parse_fields(head.clone(), 0, &Limits::default(), LENIENT).unwrap();
        let got: Vec<(&str, &[u8])> = h.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        assert_eq!(
            got,
            [("Host", &b"a"[..]), ("host", b"HTTP/1.1"), ("X-Odd", b""),]
        );
        for (a, b) in [(0, 4), (9, 13), (15, 23), (25, 30), (30, 30)] {
            assert_eq!(share(&head, &head[a..b]), &head[a..b]);
        }
    }

    #[test]
    fn folded_field_keeps_colons() {
        let head =
            Bytes::from_static(b"X-Violations-Found: 1\r\n\tpath/a:b\r\n\tHEUR:Trojan\r\n\r\n");
        let (h, rest, _) = parse_fields(head.clone(), 0, &Limits::default(), LENIENT).unwrap();
        assert_eq!(rest, 2);
        let v = h.get("x-violations-found").unwrap();
        assert_eq!(
            v.lines().collect::<Vec<_>>(),
            vec![&b"1"[..], b"path/a:b", b"HEUR:Trojan"]
        );
    }
}
