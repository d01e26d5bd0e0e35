//! Resumable message decoders: bytes in, [`Event`]s out.

use bytes::{Buf, Bytes, BytesMut};

use crate::chunked::{BodyEnd, ChunkEvent, ChunkedDecoder};
use crate::encapsulated::{Direction, Encapsulated, Section};
use crate::error::{DecodeError, Limit};
use crate::header::Headers;
use crate::http::{HttpRequestHead, HttpResponseHead};
use crate::limits::Limits;
use crate::message::{RequestHead, ResponseHead};
use crate::parse;
use crate::types::{Method, StatusCode, Uri, VERSION};

/// What a decoder found. Every message is one `Head`, then `Data` and (for requests with a
/// preview) `PreviewEnd`, then one `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<H> {
    /// The ICAP head with its embedded HTTP heads.
    Head(H),
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

/// The parts of a head the shared framing fills in.
trait Head {
    fn set_embedded(
        &mut self,
        req: Option<HttpRequestHead>,
        res: Option<HttpResponseHead>,
        enc: &Encapsulated,
    );
}

impl Head for RequestHead {
    fn set_embedded(
        &mut self,
        req: Option<HttpRequestHead>,
        res: Option<HttpResponseHead>,
        enc: &Encapsulated,
    ) {
        self.http_request = req;
        self.http_response = res;
        self.body = enc.body_kind();
    }
}

impl Head for ResponseHead {
    fn set_embedded(
        &mut self,
        req: Option<HttpRequestHead>,
        res: Option<HttpResponseHead>,
        enc: &Encapsulated,
    ) {
        self.http_request = req;
        self.http_response = res;
        self.body = enc.body_kind();
    }
}

#[derive(Debug)]
enum State<H> {
    Head {
        scanned: usize,
    },
    Sections {
        head: Box<H>,
        enc: Encapsulated,
        needed: usize,
    },
    Body(ChunkedDecoder),
    End(BodyEnd),
}

/// The framing shared by both directions: head scan, embedded heads, chunked body.
#[derive(Debug)]
struct Core<H> {
    limits: Limits,
    state: State<H>,
}

enum Step<H> {
    NeedMore,
    Head(Box<H>, Option<Encapsulated>),
}

impl<H: Head + Clone> Core<H> {
    fn new(limits: Limits) -> Self {
        Core {
            limits,
            state: State::Head { scanned: 0 },
        }
    }

    fn reset(&mut self) {
        self.state = State::Head { scanned: 0 };
    }

    /// Frames the ICAP head; `parse` turns its bytes into a head and its `Encapsulated`.
    fn frame_head(
        &mut self,
        buf: &mut BytesMut,
        parse: impl FnOnce(&Bytes, &Limits) -> Result<(H, Option<Encapsulated>), DecodeError>,
    ) -> Result<Step<H>, DecodeError> {
        let State::Head { scanned } = &mut self.state else {
            unreachable!("frame_head is only called in the Head state")
        };
        // Robustness (as RFC 7230 section 3.5 allows): empty lines before a message are skipped.
        if *scanned == 0 {
            while buf.starts_with(b"\r\n") {
                buf.advance(2);
            }
            if buf.as_ref() == b"\r" {
                return Ok(Step::NeedMore);
            }
        }
        let window = buf.len().min(self.limits.max_head);
        let Some(end) = parse::find_head_end(&buf[..window], scanned)? else {
            if buf.len() >= self.limits.max_head {
                return Err(DecodeError::limit(Limit::Head, self.limits.max_head));
            }
            return Ok(Step::NeedMore);
        };
        let bytes = buf.split_to(end).freeze();
        self.state = State::Head { scanned: 0 };
        let (head, enc) = parse(&bytes, &self.limits)?;
        Ok(Step::Head(Box::new(head), enc))
    }

    /// After the ICAP head: read the embedded heads the offsets announce.
    fn after_head(
        &mut self,
        head: Box<H>,
        enc: Option<Encapsulated>,
        buf: &mut BytesMut,
    ) -> Result<Option<H>, DecodeError> {
        let Some(enc) = enc else {
            self.state = State::End(BodyEnd::default());
            return Ok(Some(*head));
        };
        let mut needed = 0usize;
        for i in 0..enc.entries().len() - 1 {
            let len = enc.section_len(i);
            if len > self.limits.max_http_head as u64 {
                return Err(DecodeError::limit(
                    Limit::HttpHead,
                    self.limits.max_http_head,
                ));
            }
            needed += len as usize;
        }
        self.state = State::Sections { head, enc, needed };
        self.sections(buf)
    }

    fn sections(&mut self, buf: &mut BytesMut) -> Result<Option<H>, DecodeError> {
        let State::Sections { needed, .. } = &self.state else {
            unreachable!("sections is only called in the Sections state")
        };
        if buf.len() < *needed {
            return Ok(None);
        }
        let needed = *needed;
        let State::Sections { mut head, enc, .. } =
            std::mem::replace(&mut self.state, State::Head { scanned: 0 })
        else {
            unreachable!("checked above")
        };
        let all = buf.split_to(needed).freeze();
        let (mut req, mut res) = (None, None);
        for (i, &(section, at)) in enc.entries()[..enc.entries().len() - 1].iter().enumerate() {
            let part = all.slice(at as usize..(at + enc.section_len(i)) as usize);
            if !part.ends_with(b"\r\n\r\n") {
                return Err(DecodeError::EncapsulatedMismatch);
            }
            parse::check_line_endings(&part)?;
            match section {
                Section::ReqHdr => req = Some(HttpRequestHead::decode(&part, &self.limits)?),
                Section::ResHdr => res = Some(HttpResponseHead::decode(&part, &self.limits)?),
                _ => unreachable!("only header sections precede the body entry"),
            }
        }
        head.set_embedded(req, res, &enc);
        self.state = if enc.body_kind().is_some() {
            State::Body(ChunkedDecoder::new(self.limits))
        } else {
            State::End(BodyEnd::default())
        };
        Ok(Some(*head))
    }
}

fn find_encapsulated(headers: &Headers) -> Result<Option<Encapsulated>, DecodeError> {
    let mut all = headers.get_all("Encapsulated");
    let Some(v) = all.next() else { return Ok(None) };
    if all.next().is_some() {
        return Err(DecodeError::DuplicateEncapsulated);
    }
    Encapsulated::parse(v.as_bytes())
        .map(Some)
        .map_err(DecodeError::InvalidEncapsulated)
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
            core: Core::new(limits),
            preview: None,
            preview_seen: 0,
        }
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
                let step = self.core.frame_head(buf, parse_request_head)?;
                let Step::Head(head, enc) = step else {
                    return Ok(None);
                };
                self.preview = match head.preview()? {
                    Some(n) if n > limits.max_preview => {
                        return Err(DecodeError::LimitExceeded {
                            limit: Limit::Preview,
                            max: limits.max_preview,
                        });
                    }
                    p => p.filter(|_| enc.as_ref().and_then(Encapsulated::body_kind).is_some()),
                };
                self.preview_seen = 0;
                Ok(self.core.after_head(head, enc, buf)?.map(Event::Head))
            }
            State::Sections { .. } => Ok(self.core.sections(buf)?.map(Event::Head)),
            State::Body(chunked) => match chunked.decode(buf)? {
                None => Ok(None),
                Some(ChunkEvent::Data(d)) => {
                    if let Some(announced) = self.preview {
                        self.preview_seen += d.len() as u64;
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

/// `Request = Request-Line *(header-field CRLF) CRLF` (RFC 3507 section 4.3).
fn parse_request_head(
    bytes: &Bytes,
    limits: &Limits,
) -> Result<(RequestHead, Option<Encapsulated>), DecodeError> {
    let (rest, (method, target, version)) =
        parse::parse_request_line(bytes).map_err(|_| DecodeError::InvalidRequestLine)?;
    if version != VERSION.as_bytes() {
        return Err(
            if version.starts_with(b"ICAP/") || version.starts_with(b"HTTP/") {
                DecodeError::UnsupportedVersion
            } else {
                DecodeError::InvalidRequestLine
            },
        );
    }
    let method = Method::from_bytes(method).ok_or(DecodeError::UnknownMethod)?;
    let uri = Uri::parse(bytes.slice_ref(target)).map_err(|_| DecodeError::InvalidUri)?;
    let (headers, _) = parse::parse_fields(bytes, rest, limits)?;
    let enc = find_encapsulated(&headers)?;
    match &enc {
        Some(e) => e
            .validate(method, Direction::Request)
            .map_err(DecodeError::InvalidEncapsulated)?,
        None if method != Method::Options => return Err(DecodeError::MissingEncapsulated),
        None => {}
    }
    let mut head = RequestHead::new(method, uri);
    head.headers = headers;
    Ok((head, enc))
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
            core: Core::new(limits),
            method,
        }
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
                let step = self
                    .core
                    .frame_head(buf, |b, l| parse_response_head(b, l, method))?;
                let Step::Head(head, enc) = step else {
                    return Ok(None);
                };
                Ok(self.core.after_head(head, enc, buf)?.map(Event::Head))
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

/// `Response = Status-Line *(header-field CRLF) CRLF` (RFC 3507 section 4.3).
fn parse_response_head(
    bytes: &Bytes,
    limits: &Limits,
    method: Method,
) -> Result<(ResponseHead, Option<Encapsulated>), DecodeError> {
    let (rest, (version, code, reason)) =
        parse::parse_status_line(bytes).map_err(|_| DecodeError::InvalidStatusLine)?;
    if version != VERSION.as_bytes() {
        return Err(if version.starts_with(b"ICAP/") {
            DecodeError::UnsupportedVersion
        } else {
            DecodeError::InvalidStatusLine
        });
    }
    let status = StatusCode::new(code).map_err(|_| DecodeError::InvalidStatusLine)?;
    let (headers, _) = parse::parse_fields(bytes, rest, limits)?;
    let enc = find_encapsulated(&headers)?;
    if let Some(e) = &enc {
        e.validate(method, Direction::Response)
            .map_err(DecodeError::InvalidEncapsulated)?;
    }
    let reason = parse::share(bytes, reason);
    Ok((ResponseHead::from_parts(status, reason, headers), enc))
}
