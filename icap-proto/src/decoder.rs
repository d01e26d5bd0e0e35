//! Resumable message decoders: bytes in, [`Event`]s out.
//!
//! About 600 lines on purpose: the request and response decoders are two faces of one
//! private state machine (`Core`: head framing, sections, chunked body, limits), and
//! keeping them together keeps every transition of that machine in one place.

use bytes::{Buf, Bytes, BytesMut};

use crate::chunked::{BodyEnd, ChunkEvent, ChunkedDecoder};
use crate::encapsulated::{BodyKind, Direction, Encapsulated, Section};
use crate::error::{DecodeError, Limit};
use crate::header::{Entry, Headers};
use crate::http::{
    HttpRequestHead, HttpResponseHead, RequestLine as HttpRequestLine, SectionRead,
    StatusLine as HttpStatusLine,
};
use crate::limits::Limits;
use crate::message::{RequestHead, ResponseHead};
use crate::parse::{self, FieldRules};
use crate::types::{Method, StatusCode, Uri, UriParts, VERSION};

/// What a decoder found. Every message is one `Head`, then `Data` and (for requests with a
/// preview) `PreviewEnd`, then one `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<H> {
    /// The ICAP head with its embedded HTTP heads, boxed: a head is a few hundred bytes,
    /// and every other event would be moved at that size with it inline.
    Head(Box<H>),
    /// Body bytes, split off the input buffer without copying.
    Data(Bytes),
    /// The preview ended. With `ieof` the body is complete and `End` follows; without it,
    /// the rest of the body follows once the server has answered `100 Continue` (if the
    /// server answers with a final response instead, call `reset`).
    PreviewEnd {
        /// The preview was the whole body.
        ieof: bool,
    },
    /// The message is complete; the decoder is ready for the next one.
    End(BodyEnd),
}

/// The parts of a head the shared framing fills in, in place (a head is a few hundred
/// bytes: each move of one is a `memcpy`).
trait Head {
    fn set_request(&mut self, req: HttpRequestHead);
    fn set_response(&mut self, res: HttpResponseHead);
    fn set_body(&mut self, body: Option<BodyKind>);
}

/// Both heads keep their embedded heads and body in fields of the same names.
macro_rules! embedded_in_place {
    ($($head:ty),*) => {$(
        impl Head for $head {
            fn set_request(&mut self, req: HttpRequestHead) {
                self.http_request = Some(req);
            }
            fn set_response(&mut self, res: HttpResponseHead) {
                self.http_response = Some(res);
            }
            fn set_body(&mut self, body: Option<BodyKind>) {
                self.body = body;
            }
        }
    )*};
}

embedded_in_place!(RequestHead, ResponseHead);

#[derive(Debug)]
enum State<H> {
    Head {
        scanned: usize,
    },
    Sections {
        head: Box<H>,
        enc: Encapsulated,
        needed: usize,
        /// How far [`check_head_ends`] has looked.
        scanned: usize,
        /// Where [`check_head_ends`] saw the first LF without a CR before it.
        bare_lf: Option<usize>,
    },
    Body(ChunkedDecoder),
    End(BodyEnd),
}

/// The framing shared by both directions: head scan, embedded heads, chunked body.
#[derive(Debug)]
struct Core<H> {
    limits: Limits,
    /// Whether obs-fold lines are accepted in the ICAP head, embedded heads and trailers.
    obs_fold: bool,
    state: State<H>,
}

impl<H: Head> Core<H> {
    fn new(limits: Limits, obs_fold: bool) -> Self {
        Core {
            limits,
            obs_fold,
            state: State::Head { scanned: 0 },
        }
    }

    fn reset(&mut self) {
        self.state = State::Head { scanned: 0 };
    }

    /// Frames the ICAP head: `read` parses the bytes of one that start a slice; returns
    /// the head's bytes, split off, with what `read` found in them (`None`: more bytes are
    /// needed). The caller builds the head where it keeps it: a head is a few hundred
    /// bytes, and each move of a built one is a `memcpy`.
    ///
    /// Most heads arrive whole, so the first call reads the buffer as it is. A head that
    /// reads cleanly from the start ends where the framing would find its end, the first
    /// `CRLF CRLF`, and holds no bare LF: the parsers refuse both before it. Anything else
    /// (an incomplete head, any error) goes through the framing, which waits for more bytes
    /// or gives the error that the bytes would give fed one by one.
    fn frame_head<S>(
        &mut self,
        buf: &mut BytesMut,
        read: impl Fn(&[u8], &Limits, FieldRules) -> Result<Read<S>, DecodeError>,
    ) -> Result<Option<(Bytes, Read<S>)>, DecodeError> {
        let State::Head { scanned } = &mut self.state else {
            unreachable!("frame_head is only called in the Head state")
        };
        let rules = FieldRules {
            obs_fold: self.obs_fold,
            icap: true,
        };
        // Robustness (as RFC 7230 section 3.5 allows): empty lines before a message are skipped.
        let window = if *scanned == 0 {
            while buf.starts_with(b"\r\n") {
                buf.advance(2);
            }
            if buf.as_ref() == b"\r" {
                return Ok(None);
            }
            if buf.is_empty() {
                return Ok(None);
            }
            let window = buf.len().min(self.limits.max_head);
            if let Ok(r) = read(&buf[..window], &self.limits, rules) {
                let bytes = buf.split_to(r.len).freeze();
                return Ok(Some((bytes, r)));
            }
            window
        } else {
            buf.len().min(self.limits.max_head)
        };
        let Some(end) = parse::find_head_end(&buf[..window], scanned)? else {
            if buf.len() >= self.limits.max_head {
                return Err(DecodeError::limit(Limit::Head, self.limits.max_head));
            }
            return Ok(None);
        };
        let bytes = buf.split_to(end).freeze();
        self.state = State::Head { scanned: 0 };
        let r = read(&bytes, &self.limits, rules)?;
        debug_assert_eq!(r.len, bytes.len());
        Ok(Some((bytes, r)))
    }

    /// After the ICAP head: reads the embedded heads the offsets announce into `head`.
    /// `None` when the head is complete; otherwise the sections' bytes have not all
    /// arrived, and the caller hands `head` to [`Core::wait_sections`].
    fn after_head(
        &mut self,
        head: &mut H,
        enc: Option<Encapsulated>,
        buf: &mut BytesMut,
    ) -> Result<Option<Pending>, DecodeError> {
        let Some(enc) = enc else {
            self.state = State::End(BodyEnd::default());
            return Ok(None);
        };
        let too_big = || DecodeError::limit(Limit::HttpHead, self.limits.max_http_head);
        let mut needed = 0usize;
        for i in 0..enc.entries().len() - 1 {
            // Offsets are any u64 the peer chose: nothing here may wrap or truncate.
            let len = usize::try_from(enc.section_len(i)).map_err(|_| too_big())?;
            if len > self.limits.max_http_head {
                return Err(too_big());
            }
            needed = needed.checked_add(len).ok_or_else(too_big)?;
        }
        if buf.len() < needed {
            return Ok(Some(Pending { enc, needed }));
        }
        // Every section is here (the usual case: a head arrives in one read). Reading them
        // in place finds any early end or bare LF too, since the parsers refuse both; once
        // all read, each is split off on its own (one reference count each). Only a
        // failure needs the scan of `check_head_ends`, to report the error that the same
        // bytes fed in pieces would give.
        if let Ok(reads) = self.read_sections(&enc, &buf[..needed], None) {
            build_sections(head, reads, |n| buf.split_to(n).freeze());
        } else {
            let all = buf.split_to(needed).freeze();
            let (mut scanned, mut bare_lf) = (0, None);
            check_head_ends(&enc, &all, &mut scanned, &mut bare_lf)?;
            self.build_from(head, &enc, &all, bare_lf)?;
        }
        self.finish_head(head, &enc);
        Ok(None)
    }

    /// Waits for the rest of the sections after [`Core::after_head`] returned `pending`.
    fn wait_sections(
        &mut self,
        head: Box<H>,
        pending: Pending,
        buf: &mut BytesMut,
    ) -> Result<Option<Box<H>>, DecodeError> {
        self.state = State::Sections {
            head,
            enc: pending.enc,
            needed: pending.needed,
            scanned: 0,
            bare_lf: None,
        };
        self.sections(buf)
    }

    fn sections(&mut self, buf: &mut BytesMut) -> Result<Option<Box<H>>, DecodeError> {
        let State::Sections {
            needed,
            enc,
            scanned,
            bare_lf,
            ..
        } = &mut self.state
        else {
            unreachable!("sections is only called in the Sections state")
        };
        // Before waiting for the bytes the offsets promise, and before parsing them (so that
        // any split of the input gives the same error), look for a head that ends early.
        check_head_ends(enc, &buf[..buf.len().min(*needed)], scanned, bare_lf)?;
        if buf.len() < *needed {
            return Ok(None);
        }
        let needed = *needed;
        let State::Sections {
            mut head,
            enc,
            bare_lf,
            ..
        } = std::mem::replace(&mut self.state, State::Head { scanned: 0 })
        else {
            unreachable!("checked above")
        };
        let all = buf.split_to(needed).freeze();
        self.build_from(&mut head, &enc, &all, bare_lf)?;
        self.finish_head(&mut head, &enc);
        Ok(Some(head))
    }

    /// Reads the embedded heads in `all` (every section's bytes, in order) in place, in
    /// section order. `bare_lf` is where [`check_head_ends`] saw the first LF without a CR
    /// before it, if it looked: a head holding it is refused as a scan of each would.
    fn read_sections(
        &self,
        enc: &Encapsulated,
        all: &[u8],
        bare_lf: Option<usize>,
    ) -> Result<SectionReads, DecodeError> {
        let mut reads = SectionReads::default();
        let mut from = 0usize;
        for (i, &(section, _)) in enc.entries()[..enc.entries().len() - 1].iter().enumerate() {
            // Section lengths were checked to fit in usize and to add up to `all.len()`.
            let len = usize::try_from(enc.section_len(i)).expect("checked in after_head");
            let (at, to) = (from, from + len);
            from = to;
            let part = &all[at..to];
            if !part.ends_with(b"\r\n\r\n") {
                return Err(DecodeError::EncapsulatedMismatch);
            }
            if bare_lf.is_some_and(|lf| (at..to).contains(&lf)) {
                return Err(DecodeError::BareLineFeed);
            }
            match section {
                Section::ReqHdr => {
                    let read = HttpRequestHead::read(part, &self.limits, self.obs_fold)?;
                    reads.req = Some(Sized { read, len });
                }
                Section::ResHdr => {
                    let read = HttpResponseHead::read(part, &self.limits, self.obs_fold)?;
                    reads.res = Some(Sized { read, len });
                }
                _ => unreachable!("only header sections precede the body entry"),
            }
        }
        Ok(reads)
    }

    /// [`Core::read_sections`] of `all`, built into `head` from slices of it.
    fn build_from(
        &self,
        head: &mut H,
        enc: &Encapsulated,
        all: &Bytes,
        bare_lf: Option<usize>,
    ) -> Result<(), DecodeError> {
        let reads = self.read_sections(enc, all, bare_lf)?;
        let mut at = 0;
        build_sections(head, reads, |n| {
            at += n;
            all.slice(at - n..at)
        });
        Ok(())
    }

    /// Notes the body in the head and moves on to it, if there is one.
    fn finish_head(&mut self, head: &mut H, enc: &Encapsulated) {
        head.set_body(enc.body_kind());
        self.state = if enc.body_kind().is_some() {
            State::Body(ChunkedDecoder::new(self.limits).with_obs_fold(self.obs_fold))
        } else {
            State::End(BodyEnd::default())
        };
    }
}

/// An ICAP head read from bytes that start with it, before they are split off: its start
/// line's parts `S`, its fields' table, its `Encapsulated`, and its length.
struct Read<S> {
    start: S,
    entries: Vec<Entry>,
    enc: Option<Encapsulated>,
    len: usize,
}

/// A section read in place, and its length.
struct Sized<R> {
    read: R,
    len: usize,
}

/// The embedded heads [`Core::read_sections`] read, in section order.
#[derive(Default)]
struct SectionReads {
    req: Option<Sized<SectionRead<HttpRequestLine>>>,
    res: Option<Sized<SectionRead<HttpStatusLine>>>,
}

/// Builds the heads of `reads` into `head`, each over the bytes `take` hands out for its
/// length, in section order.
fn build_sections<H: Head>(
    head: &mut H,
    reads: SectionReads,
    mut take: impl FnMut(usize) -> Bytes,
) {
    if let Some(r) = reads.req {
        head.set_request(HttpRequestHead::build(take(r.len), r.read));
    }
    if let Some(r) = reads.res {
        head.set_response(HttpResponseHead::build(take(r.len), r.read));
    }
}

/// Sections an ICAP head announced whose bytes have not all arrived yet.
struct Pending {
    enc: Encapsulated,
    needed: usize,
}

/// Fails with [`DecodeError::EncapsulatedMismatch`] as soon as an embedded head visibly
/// ends (`CRLF CRLF`) anywhere but at the offset where the next entry starts: an offset
/// past the real end of a head would otherwise have the decoder wait for bytes that never
/// come. `arrived` is what has arrived of the sections (at most their total length);
/// `scanned` is how far an earlier call looked, so a head fed in pieces is scanned once.
/// The same scan notes in `bare_lf` the first LF not preceded by CR (embedded heads are
/// framed by offsets, so nothing else looks at their line ends before they are parsed).
fn check_head_ends(
    enc: &Encapsulated,
    arrived: &[u8],
    scanned: &mut usize,
    bare_lf: &mut Option<usize>,
) -> Result<(), DecodeError> {
    let entries = enc.entries();
    let new = (*scanned).min(arrived.len());
    if bare_lf.is_none() && parse::has_bare_lf(arrived, new, arrived.len()) {
        *bare_lf = parse::first_bare_lf(arrived, new);
    }
    // Three bytes back: a CRLF CRLF may straddle the end of the last call's bytes.
    let from = new.saturating_sub(3);
    if bare_lf.is_none() && !misplaced_empty_line_possible(entries, arrived, from) {
        *scanned = arrived.len();
        return Ok(());
    }
    // The exact search. Matches may overlap (`CRLF CRLF CRLF` is two), so each search
    // starts one byte past the last.
    let mut at = from;
    while let Some(p) = parse::find_empty_line(&arrived[at..]) {
        let first = at + p;
        at = first + 1;
        let (first, end) = (first as u64, first as u64 + 4);
        // The section holding the first byte of this CRLF CRLF must end right after it.
        let holder = entries
            .windows(2)
            .find(|w| (w[0].1..w[1].1).contains(&first));
        if let Some(w) = holder
            && end != w[1].1
        {
            return Err(DecodeError::EncapsulatedMismatch);
        }
    }
    *scanned = arrived.len();
    Ok(())
}

/// The fast path of [`check_head_ends`] for sections with no bare LF: whether a `CRLF CRLF`
/// may start at or after `from` anywhere but 4 bytes before the end of a section (the one
/// place it belongs). A `true` sends the caller to the exact search, which finds the same
/// ends one by one.
fn misplaced_empty_line_possible(entries: &[(Section, u64)], arrived: &[u8], from: usize) -> bool {
    entries.windows(2).any(|w| {
        // Offsets past the bytes that have arrived only clamp the ranges.
        let at = |o: u64| usize::try_from(o).unwrap_or(usize::MAX).min(arrived.len());
        let (start, end) = (at(w[0].1).max(from), at(w[1].1));
        let allowed = at(w[1].1.saturating_sub(4));
        let before = start..allowed.max(start).min(end);
        let after = allowed.saturating_add(1).max(start)..end;
        parse::may_hold_empty_line(arrived, before) || parse::may_hold_empty_line(arrived, after)
    })
}

/// Decodes ICAP requests (the server side). Feed it bytes as they arrive.
///
/// ```
/// use bytes::BytesMut;
/// use icap_proto::{Event, Limits, RequestDecoder};
/// let mut dec = RequestDecoder::new(Limits::default());
/// let mut buf = BytesMut::from(
///     &b"RESPMOD icap://av/scan ICAP/1.0\r\nHost: av\r\nPreview: 4\r\n\
///        Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\
///        3\r\nabc\r\n0; ieof\r\n\r\n"[..],
/// );
/// let Some(Event::Head(head)) = dec.decode(&mut buf).unwrap() else { panic!() };
/// assert_eq!(head.uri.service(), "scan");
/// assert_eq!(dec.decode(&mut buf).unwrap(), Some(Event::Data("abc".into())));
/// assert_eq!(dec.decode(&mut buf).unwrap(), Some(Event::PreviewEnd { ieof: true }));
/// assert!(matches!(dec.decode(&mut buf).unwrap(), Some(Event::End(_))));
/// assert_eq!(dec.decode(&mut buf).unwrap(), None);
/// ```
#[derive(Debug)]
pub struct RequestDecoder {
    core: Core<RequestHead>,
    /// Announced preview size while the preview is being read.
    preview: Option<u64>,
    preview_seen: u64,
}

impl RequestDecoder {
    /// A decoder waiting for a request head.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            core: Core::new(limits, false),
            preview: None,
            preview_seen: 0,
        }
    }

    /// Whether obs-fold (a header line starting with a space or tab, continuing the field
    /// before it) is accepted in the ICAP head, the embedded HTTP heads and the trailers.
    ///
    /// Default `false`: a request with a folded line fails with [`DecodeError::ObsFold`]
    /// (answer 400). RFC 9112 section 5.2 lets a server reject obs-fold, and a security
    /// server should: two parsers that unfold differently see different requests.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use icap_proto::{DecodeError, Limits, RequestDecoder};
    /// let folded = b"OPTIONS icap://av/scan ICAP/1.0\r\nHost: av\r\nX-A: 1\r\n 2\r\n\r\n";
    /// let mut strict = RequestDecoder::new(Limits::default());
    /// assert_eq!(strict.decode(&mut BytesMut::from(&folded[..])), Err(DecodeError::ObsFold));
    /// let mut lenient = RequestDecoder::new(Limits::default()).with_obs_fold(true);
    /// assert!(lenient.decode(&mut BytesMut::from(&folded[..])).unwrap().is_some());
    /// ```
    #[must_use]
    pub fn with_obs_fold(mut self, allow: bool) -> Self {
        self.core.obs_fold = allow;
        self
    }

    /// Forgets the current message: the next bytes start a new request. Call it after
    /// answering a preview with a final response.
    pub fn reset(&mut self) {
        self.core.reset();
        self.preview = None;
    }

    /// Whether the decoder is between messages (nothing of a next one consumed yet).
    pub fn is_idle(&self) -> bool {
        matches!(self.core.state, State::Head { scanned: 0 })
    }

    /// The preview the head just decoded announced (`None` without one, or without a
    /// body): [`RequestHead::preview`] of that head, read with its fields. Until the
    /// preview ends.
    pub(crate) fn announced_preview(&self) -> Option<u64> {
        self.preview
    }

    /// Decodes the next event, or `Ok(None)` if `buf` needs more bytes. After an error the
    /// connection cannot be resynchronised: answer (400, 501 or 505, see
    /// [`DecodeError::status_code`]) and close.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Event<RequestHead>>, DecodeError> {
        match &mut self.core.state {
            State::Head { .. } => {
                let limits = self.core.limits;
                let Some((bytes, read)) = self.core.frame_head(buf, read_request_head)? else {
                    return Ok(None);
                };
                let enc = read.enc;
                let preview = read.start.preview;
                let mut head = Box::new(build_request_head(bytes, read.start, read.entries));
                self.preview = match preview? {
                    Some(n) if n > limits.max_preview => {
                        return Err(DecodeError::LimitExceeded {
                            limit: Limit::Preview,
                            max: limits.max_preview,
                        });
                    }
                    p => p.filter(|_| enc.as_ref().and_then(Encapsulated::body_kind).is_some()),
                };
                self.preview_seen = 0;
                match self.core.after_head(&mut head, enc, buf)? {
                    None => Ok(Some(Event::Head(head))),
                    Some(p) => Ok(self.core.wait_sections(head, p, buf)?.map(Event::Head)),
                }
            }
            State::Sections { .. } => Ok(self.core.sections(buf)?.map(Event::Head)),
            State::Body(chunked) => match chunked.decode(buf)? {
                None => Ok(None),
                Some(ChunkEvent::Data(d)) => {
                    if let Some(announced) = self.preview {
                        self.preview_seen = self.preview_seen.saturating_add(d.len() as u64);
                        if self.preview_seen > announced {
                            return Err(DecodeError::PreviewExceeded);
                        }
                    }
                    Ok(Some(Event::Data(d)))
                }
                Some(ChunkEvent::End(end)) => {
                    if self.preview.take().is_some() {
                        let ieof = end.ieof;
                        if ieof {
                            self.core.state = State::End(end);
                        } else {
                            chunked.restart();
                        }
                        Ok(Some(Event::PreviewEnd { ieof }))
                    } else {
                        self.core.reset();
                        Ok(Some(Event::End(end)))
                    }
                }
            },
            State::End(_) => {
                let State::End(end) =
                    std::mem::replace(&mut self.core.state, State::Head { scanned: 0 })
                else {
                    unreachable!()
                };
                Ok(Some(Event::End(end)))
            }
        }
    }
}

/// What a request line holds, once checked: the method, and the URI's place and parts; and
/// the head's `Preview`, read with its fields.
struct RequestLine {
    method: Method,
    target: std::ops::Range<usize>,
    uri: UriParts,
    preview: Result<Option<u64>, DecodeError>,
}

/// `Request = Request-Line *(header-field CRLF) CRLF` (RFC 3507 section 4.3), read from the
/// start of `head`.
fn read_request_head(
    head: &[u8],
    limits: &Limits,
    rules: FieldRules,
) -> Result<Read<RequestLine>, DecodeError> {
    let (rest, (method, target, version)) =
        parse::parse_request_line(head).map_err(|_| DecodeError::InvalidRequestLine)?;
    if version != VERSION.as_bytes() {
        // `HTTP/1.1` is not an ICAP version at all (400); `ICAP/1.1` is one we do not speak
        // (505).
        return Err(if is_icap_version(version) {
            DecodeError::UnsupportedVersion
        } else {
            DecodeError::InvalidRequestLine
        });
    }
    // The target follows the method and one space.
    let target_at = method.len() + 1;
    let method = Method::from_bytes(method).ok_or(DecodeError::UnknownMethod)?;
    // `parse_request_line` took the target as a run of visible bytes.
    let uri = Uri::check_visible(target).map_err(|_| DecodeError::InvalidUri)?;
    let from = head.len() - rest.len();
    let parse::IcapFields {
        entries,
        enc,
        preview,
        len,
    } = parse::parse_icap_fields(head, from, limits, rules, true)?;
    match &enc {
        Some(e) => e
            .validate(method, Direction::Request)
            .map_err(DecodeError::InvalidEncapsulated)?,
        None if method != Method::Options => return Err(DecodeError::MissingEncapsulated),
        None => {}
    }
    Ok(Read {
        start: RequestLine {
            method,
            target: target_at..target_at + target.len(),
            uri,
            preview,
        },
        entries,
        enc,
        len,
    })
}

/// The request head [`read_request_head`] read, over its bytes.
fn build_request_head(bytes: Bytes, line: RequestLine, entries: Vec<Entry>) -> RequestHead {
    let uri = Uri::from_checked(bytes.slice(line.target), line.uri);
    let mut head = RequestHead::new(line.method, uri);
    head.headers = Headers::decoded(bytes, entries);
    head
}

/// Decodes ICAP responses (the client side). It must know the method of the request being
/// answered to check `Encapsulated`; set it with [`ResponseDecoder::set_method`] before each
/// request on a reused connection.
///
/// ```
/// use bytes::BytesMut;
/// use icap_proto::{Event, Limits, Method, ResponseDecoder};
/// let mut dec = ResponseDecoder::new(Method::Respmod, Limits::default());
/// let mut buf = BytesMut::from(&b"ICAP/1.0 204 Unmodified\r\nISTag: \"x\"\r\n\r\n"[..]);
/// let Some(Event::Head(head)) = dec.decode(&mut buf).unwrap() else { panic!() };
/// assert_eq!(head.status.as_u16(), 204);
/// assert!(matches!(dec.decode(&mut buf).unwrap(), Some(Event::End(_))));
/// ```
#[derive(Debug)]
pub struct ResponseDecoder {
    core: Core<ResponseHead>,
    method: Method,
}

impl ResponseDecoder {
    /// A decoder for the answer to a `method` request.
    pub fn new(method: Method, limits: Limits) -> Self {
        ResponseDecoder {
            core: Core::new(limits, true),
            method,
        }
    }

    /// Whether obs-fold lines are accepted (default `true`: antivirus servers send folded
    /// fields such as `X-Violations-Found`). With `false`, a folded line fails with
    /// [`DecodeError::ObsFold`].
    #[must_use]
    pub fn with_obs_fold(mut self, allow: bool) -> Self {
        self.core.obs_fold = allow;
        self
    }

    /// Sets the method of the request the next response answers.
    pub fn set_method(&mut self, method: Method) {
        self.method = method;
    }

    /// Forgets the current message.
    pub fn reset(&mut self) {
        self.core.reset();
    }

    /// Whether the decoder is between messages.
    pub fn is_idle(&self) -> bool {
        matches!(self.core.state, State::Head { scanned: 0 })
    }

    /// Decodes the next event, or `Ok(None)` if `buf` needs more bytes. A `100 Continue`
    /// is a message of its own: `Head` then `End`.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Event<ResponseHead>>, DecodeError> {
        match &mut self.core.state {
            State::Head { .. } => {
                let method = self.method;
                let Some((bytes, read)) = self
                    .core
                    .frame_head(buf, |b, l, r| read_response_head(b, l, r, method))?
                else {
                    return Ok(None);
                };
                let enc = read.enc;
                let mut head = Box::new(build_response_head(bytes, read.start, read.entries));
                match self.core.after_head(&mut head, enc, buf)? {
                    None => Ok(Some(Event::Head(head))),
                    Some(p) => Ok(self.core.wait_sections(head, p, buf)?.map(Event::Head)),
                }
            }
            State::Sections { .. } => Ok(self.core.sections(buf)?.map(Event::Head)),
            State::Body(chunked) => match chunked.decode(buf)? {
                None => Ok(None),
                Some(ChunkEvent::Data(d)) => Ok(Some(Event::Data(d))),
                Some(ChunkEvent::End(end)) => {
                    self.core.reset();
                    Ok(Some(Event::End(end)))
                }
            },
            State::End(_) => {
                let State::End(end) =
                    std::mem::replace(&mut self.core.state, State::Head { scanned: 0 })
                else {
                    unreachable!()
                };
                Ok(Some(Event::End(end)))
            }
        }
    }
}

/// What a status line holds, once checked: the status, and where the reason lies.
struct StatusLine {
    status: StatusCode,
    reason: std::ops::Range<usize>,
}

/// `Response = Status-Line *(header-field CRLF) CRLF` (RFC 3507 section 4.3), read from the
/// start of `head`.
fn read_response_head(
    head: &[u8],
    limits: &Limits,
    rules: FieldRules,
    method: Method,
) -> Result<Read<StatusLine>, DecodeError> {
    let (rest, (version, code, reason)) =
        parse::parse_status_line(head).map_err(|_| DecodeError::InvalidStatusLine)?;
    if version != VERSION.as_bytes() {
        return Err(if is_icap_version(version) {
            DecodeError::UnsupportedVersion
        } else {
            DecodeError::InvalidStatusLine
        });
    }
    let status = StatusCode::new(code).map_err(|_| DecodeError::InvalidStatusLine)?;
    let from = head.len() - rest.len();
    // The reason is what the status line holds between `version SP 3DIGIT SP` and CRLF.
    let reason = from - 2 - reason.len()..from - 2;
    let parse::IcapFields {
        entries, enc, len, ..
    } = parse::parse_icap_fields(head, from, limits, rules, false)?;
    if let Some(e) = &enc {
        e.validate(method, Direction::Response)
            .map_err(DecodeError::InvalidEncapsulated)?;
    }
    Ok(Read {
        start: StatusLine { status, reason },
        entries,
        enc,
        len,
    })
}

/// The response head [`read_response_head`] read, over its bytes.
fn build_response_head(bytes: Bytes, line: StatusLine, entries: Vec<Entry>) -> ResponseHead {
    let reason = parse::share(&bytes, &bytes[line.reason]);
    ResponseHead::from_parts(line.status, reason, Headers::decoded(bytes, entries))
}

/// `"ICAP/" 1*DIGIT "." 1*DIGIT`: an ICAP version, supported or not.
fn is_icap_version(v: &[u8]) -> bool {
    let Some(rest) = v.strip_prefix(b"ICAP/") else {
        return false;
    };
    let mut parts = rest.splitn(2, |&b| b == b'.');
    let digits =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    digits(parts.next()) && digits(parts.next())
}
