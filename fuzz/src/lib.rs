//! Drivers and invariant checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every decoding target feeds the same message twice, whole and in pieces whose sizes come
//! from the input, and asserts that both runs agree: the codec promises that any split of
//! the input gives the same events. See `README.md` for what each target asserts.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use icap_proto::chunked::{self, BodyEnd, ChunkEvent, ChunkedDecoder};
use icap_proto::verdict::{self, InfectionFound, ThreatSource, ViolationsFound};
use icap_proto::{
    DecodeError, Event, Headers, Limits, Method, OptionsResponse, RequestDecoder, RequestHead,
    ResponseDecoder, ResponseHead,
};

/// How a target feeds its message, read from the first input bytes.
///
/// Byte 0: bits 0..=2 are how many piece-size bytes follow (0: feed the message whole),
/// bits 3..=4 pick the limits (1: [`tight_limits`], 2: [`no_limits`], else the defaults).
/// Then the piece-size bytes, then the message.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Sizes of the pieces, used in turn until the message is fed.
    pub pieces: Vec<usize>,
    /// Decoder limits.
    pub limits: Limits,
    /// The bytes to decode.
    pub message: &'a [u8],
}

impl<'a> Plan<'a> {
    /// Splits fuzz input into a plan; `None` when it is empty.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&control, rest) = data.split_first()?;
        let n = usize::from(control & 7).min(rest.len());
        let (sizes, message) = rest.split_at(n);
        Some(Plan {
            pieces: sizes.iter().map(|&b| piece_size(b)).collect(),
            limits: match (control >> 3) & 3 {
                1 => tight_limits(),
                2 => no_limits(),
                _ => Limits::default(),
            },
            message,
        })
    }
}

/// 1..=192 bytes for most values (splits inside lines), up to 16 KiB for the rest.
fn piece_size(b: u8) -> usize {
    if b < 0xc0 {
        usize::from(b) + 1
    } else {
        (usize::from(b) - 0xbf) * 256
    }
}

/// Small limits, so that the fuzzer reaches every limit check with short inputs.
pub fn tight_limits() -> Limits {
    Limits::default()
        .with_max_head(512)
        .with_max_headers(8)
        .with_max_header_line(128)
        .with_max_http_head(256)
        .with_max_chunk_line(32)
        .with_max_chunk_extensions(64)
        .with_max_trailers(64)
        .with_max_preview(64)
        .with_max_body(4096)
}

/// Every limit at its largest value, as a caller who wants none would set them.
pub fn no_limits() -> Limits {
    Limits::default()
        .with_max_head(usize::MAX)
        .with_max_headers(usize::MAX)
        .with_max_header_line(usize::MAX)
        .with_max_http_head(usize::MAX)
        .with_max_chunk_line(usize::MAX)
        .with_max_chunk_extensions(usize::MAX)
        .with_max_trailers(usize::MAX)
        .with_max_preview(u64::MAX)
        .with_max_body(u64::MAX)
}

/// An event with body data merged, so that runs fed in different pieces compare equal.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen<H> {
    /// `Event::Head`.
    Head(H),
    /// Consecutive `Data` events joined.
    Data(Vec<u8>),
    /// `Event::PreviewEnd`.
    PreviewEnd(bool),
    /// `Event::End` / `ChunkEvent::End`.
    End(BodyEnd),
}

/// A decoder as the drivers see it.
pub trait Decode {
    /// What it returns.
    type Head: Clone + PartialEq + Debug;
    /// One decode step.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Seen<Self::Head>>, DecodeError>;
}

fn from_event<H>(e: Event<H>) -> Seen<H> {
    let seen = match e {
        Event::Head(h) => Seen::Head(*h),
        Event::Data(d) => Seen::Data(d.to_vec()),
        Event::PreviewEnd { ieof } => Seen::PreviewEnd(ieof),
        Event::End(end) => Seen::End(end),
    };
    if let Seen::Data(d) = &seen {
        assert!(!d.is_empty(), "a Data event must carry bytes");
    }
    seen
}

impl Decode for RequestDecoder {
    type Head = RequestHead;
    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Seen<RequestHead>>, DecodeError> {
        Ok(self.decode(buf)?.map(from_event))
    }
}

impl Decode for ResponseDecoder {
    type Head = ResponseHead;
    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Seen<ResponseHead>>, DecodeError> {
        Ok(self.decode(buf)?.map(from_event))
    }
}

impl Decode for ChunkedDecoder {
    type Head = ();
    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Seen<()>>, DecodeError> {
        Ok(match self.decode(buf)? {
            None => None,
            Some(ChunkEvent::Data(d)) => {
                assert!(!d.is_empty(), "a Data event must carry bytes");
                Some(Seen::Data(d.to_vec()))
            }
            Some(ChunkEvent::End(end)) => Some(Seen::End(end)),
        })
    }
}

/// What one run of a decoder over a message produced.
#[derive(Debug)]
pub struct Run<H> {
    /// Events in order, `Data` merged.
    pub events: Vec<Seen<H>>,
    /// The first error, or `Ok` if the decoder wanted more bytes at the end.
    pub result: Result<(), DecodeError>,
    /// What was left in the buffer.
    pub leftover: Bytes,
}

/// Feeds `message` to `dec` in `pieces` (whole if empty), decoding until it wants more
/// after each piece, and stopping at the first error.
pub fn run<D: Decode>(dec: &mut D, message: &[u8], pieces: &[usize]) -> Run<D::Head> {
    let mut buf = BytesMut::new();
    let mut events: Vec<Seen<D::Head>> = Vec::new();
    let mut fed = 0;
    let mut steps = 0usize;
    let mut turn = 0;
    loop {
        loop {
            match dec.step(&mut buf) {
                Ok(Some(e)) => {
                    steps += 1;
                    // Every event consumes input, except End right after a head or a
                    // preview: a decoder that returns events without eating bytes loops.
                    assert!(steps <= 2 * fed + 2, "decoder returns events without input");
                    match (events.last_mut(), e) {
                        (Some(Seen::Data(acc)), Seen::Data(d)) => acc.extend_from_slice(&d),
                        (_, e) => events.push(e),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    check_error(&e);
                    return Run {
                        events,
                        result: Err(e),
                        leftover: buf.freeze(),
                    };
                }
            }
        }
        if fed == message.len() {
            return Run {
                events,
                result: Ok(()),
                leftover: buf.freeze(),
            };
        }
        let n = if pieces.is_empty() {
            message.len() - fed
        } else {
            pieces[turn % pieces.len()].min(message.len() - fed)
        };
        turn += 1;
        buf.extend_from_slice(&message[fed..fed + n]);
        fed += n;
    }
}

fn check_error(e: &DecodeError) {
    let code = e.status_code();
    assert!(
        matches!(code, 400 | 501 | 505) || (400..600).contains(&code),
        "{e:?} maps to status {code}"
    );
    assert!(!e.to_string().is_empty());
}

/// Asserts that a run fed whole and a run fed in pieces agree. When both stop on an error,
/// the piecewise run may have handed out a little more (or less) body data before it: the
/// error is found at the same byte, but data is handed out as it arrives.
pub fn assert_same<H: PartialEq + Debug>(whole: &Run<H>, pieces: &Run<H>) {
    assert_eq!(whole.result, pieces.result, "whole vs pieces: result");
    if whole.result.is_ok() {
        assert_eq!(whole.events, pieces.events, "whole vs pieces: events");
        assert_eq!(whole.leftover, pieces.leftover, "whole vs pieces: leftover");
        return;
    }
    let split = |ev: &[Seen<H>]| -> (usize, Vec<u8>) {
        match ev.last() {
            Some(Seen::Data(d)) => (ev.len() - 1, d.clone()),
            _ => (ev.len(), Vec::new()),
        }
    };
    let (wn, wd) = split(&whole.events);
    let (pn, pd) = split(&pieces.events);
    assert_eq!(
        whole.events[..wn],
        pieces.events[..pn],
        "whole vs pieces: events before the error"
    );
    let short = wd.len().min(pd.len());
    assert_eq!(
        wd[..short],
        pd[..short],
        "whole vs pieces: data before the error"
    );
}

/// What the event grammar needs to know about a head.
pub trait HeadInfo {
    /// Whether a chunked body follows.
    fn has_body(&self) -> bool;
    /// The preview the decoder enforces, if any.
    fn preview(&self) -> Option<u64>;
}

impl HeadInfo for RequestHead {
    fn has_body(&self) -> bool {
        self.body.is_some()
    }
    fn preview(&self) -> Option<u64> {
        let p = RequestHead::preview(self).expect("a decoded head has a valid Preview");
        p.filter(|_| self.body.is_some())
    }
}

impl HeadInfo for ResponseHead {
    fn has_body(&self) -> bool {
        self.body.is_some()
    }
    fn preview(&self) -> Option<u64> {
        None
    }
}

/// Checks `Head (Data* [PreviewEnd] Data*)? End`, repeated: null-body ends at once, a
/// preview never carries more than announced, `PreviewEnd { ieof: true }` is followed by
/// `End` with `ieof`.
pub fn assert_grammar<H: HeadInfo + Debug>(events: &[Seen<H>]) {
    #[derive(Debug)]
    enum G {
        Idle,
        Body { preview: Option<u64> },
        EndNext { ieof: bool, null: bool },
    }
    let mut g = G::Idle;
    for e in events {
        g = match (g, e) {
            (G::Idle, Seen::Head(h)) if !h.has_body() => G::EndNext {
                ieof: false,
                null: true,
            },
            (G::Idle, Seen::Head(h)) => G::Body {
                preview: h.preview(),
            },
            (G::Body { preview }, Seen::Data(d)) => {
                if let Some(p) = preview {
                    assert!(d.len() as u64 <= p, "preview of {p} carried {}", d.len());
                }
                G::Body { preview }
            }
            (G::Body { preview: Some(_) }, Seen::PreviewEnd(ieof)) => {
                if *ieof {
                    G::EndNext {
                        ieof: true,
                        null: false,
                    }
                } else {
                    G::Body { preview: None }
                }
            }
            (G::Body { preview: None }, Seen::End(_)) => G::Idle,
            (G::EndNext { ieof, null }, Seen::End(end)) => {
                if null {
                    assert_eq!(*end, BodyEnd::default(), "null-body ends empty");
                }
                assert_eq!(end.ieof, ieof, "End after PreviewEnd keeps ieof");
                G::Idle
            }
            (g, e) => panic!("event {e:?} not allowed in state {g:?}"),
        };
    }
}

/// Request heads: accessors must not panic.
pub fn check_request_head(h: &RequestHead) {
    let _ = (h.uri.host(), h.uri.port(), h.uri.service(), h.allows_204());
    assert!(
        h.encapsulated()
            .validate(h.method, icap_proto::Direction::Request)
            .is_ok()
    );
}

/// Response heads: the verdict invariants, and the OPTIONS reader must not panic.
pub fn check_response_head(h: &ResponseHead, method: Method) {
    check_verdict(h);
    if method == Method::Options
        && let Ok(o) = OptionsResponse::from_head(h)
    {
        let _ = (o.transfer_for("exe"), o.supports(Method::Respmod));
    }
}

/// What [`verdict::threats`] promises, checked on any head:
/// - every threat has a non-empty name, and no name appears twice;
/// - any `X-Infection-Found`, any `X-Violations-Found` that is not a clean count, any
///   `X-Virus-ID` that is not a clean marker, and an embedded `403` each yield a threat;
/// - `InfectionFound` and `ViolationsFound` read back what they write.
pub fn check_verdict(h: &ResponseHead) {
    let threats = verdict::threats(h);
    for (i, t) in threats.iter().enumerate() {
        assert!(!t.name.is_empty(), "threat without a name: {t:?}");
        assert!(
            threats[..i].iter().all(|o| o.name != t.name),
            "threat {:?} twice in {threats:?}",
            t.name
        );
    }
    let any = !threats.is_empty();
    let hs = &h.headers;
    if hs.contains("X-Infection-Found") {
        assert!(any, "X-Infection-Found without a threat: {h:?}");
        assert!(
            threats
                .iter()
                .any(|t| t.source == ThreatSource::InfectionFound),
            "X-Infection-Found not credited: {threats:?}"
        );
    }
    for v in hs.get_all("X-Infection-Found") {
        if let Some(f) = InfectionFound::parse(v)
            && let Ok(value) = f.to_header_value()
        {
            let back = InfectionFound::parse(value.as_view()).expect("our own value parses");
            assert_eq!(back.threat, f.threat);
            assert_eq!(back.kind, Some(f.kind.unwrap_or(0)));
            assert_eq!(back.resolution, Some(f.resolution.unwrap_or(2)));
        }
    }
    for v in hs.get_all("X-Violations-Found") {
        match ViolationsFound::parse(v) {
            None => assert!(any, "unreadable X-Violations-Found without a threat"),
            Some(list) => {
                if !list.0.is_empty() {
                    assert!(any, "X-Violations-Found {list:?} without a threat");
                }
                if let Ok(value) = list.to_header_value() {
                    assert_eq!(ViolationsFound::parse(value.as_view()), Some(list));
                }
            }
        }
    }
    if hs
        .get_all("X-Virus-ID")
        .any(|v| !verdict::is_clean_virus_id(v.as_bytes()))
    {
        assert!(any, "X-Virus-ID without a threat");
    }
    if h.http_response.as_ref().is_some_and(|r| r.status() == 403) {
        assert!(any, "embedded 403 without a threat");
    }
}

/// Removes `Encapsulated`: the encoder recomputes it, so it is the one field that may differ
/// between a decoded head and the head decoded from its encoding.
pub fn without_encapsulated(h: &Headers) -> Headers {
    let mut h = h.clone();
    h.remove("Encapsulated");
    h
}

/// One complete or partial message out of a run.
#[derive(Debug)]
pub struct Message<H> {
    /// The head.
    pub head: H,
    /// Body data before `PreviewEnd` (all of it when there is no preview).
    pub preview_data: Vec<u8>,
    /// `PreviewEnd`'s flag, if there was one.
    pub preview_end: Option<bool>,
    /// Body data after `PreviewEnd`.
    pub rest_data: Vec<u8>,
    /// How it ended; `None` if the input stopped first.
    pub end: Option<BodyEnd>,
}

/// Groups a valid event sequence into messages.
pub fn messages<H>(events: Vec<Seen<H>>) -> Vec<Message<H>> {
    let mut out: Vec<Message<H>> = Vec::new();
    for e in events {
        match e {
            Seen::Head(head) => out.push(Message {
                head,
                preview_data: Vec::new(),
                preview_end: None,
                rest_data: Vec::new(),
                end: None,
            }),
            Seen::Data(d) => {
                let m = out.last_mut().expect("grammar checked");
                if m.preview_end.is_some() {
                    m.rest_data.extend_from_slice(&d);
                } else {
                    m.preview_data.extend_from_slice(&d);
                }
            }
            Seen::PreviewEnd(ieof) => {
                out.last_mut().expect("grammar checked").preview_end = Some(ieof)
            }
            Seen::End(end) => out.last_mut().expect("grammar checked").end = Some(end),
        }
    }
    out
}

/// Writes a body with the public encoders: the preview part, then the rest. Returns the
/// `BodyEnd` a decoder must report for it, which is `end` unless the encoders cannot
/// express it (`use-original-body` is written without `ieof` and trailers).
pub fn encode_body(
    preview: Option<(&[u8], bool)>,
    data: &[u8],
    end: &BodyEnd,
    out: &mut BytesMut,
) -> BodyEnd {
    if let Some((pdata, ieof)) = preview {
        chunked::encode_chunk(pdata, out);
        if ieof {
            chunked::encode_last_chunk(true, &end.trailers, out);
            return end.clone();
        }
        chunked::encode_last_chunk(false, &Headers::new(), out);
    }
    chunked::encode_chunk(data, out);
    match end.use_original_body {
        Some(n) => {
            chunked::encode_last_chunk_use_original(n, out);
            BodyEnd {
                ieof: false,
                use_original_body: Some(n),
                trailers: Headers::new(),
            }
        }
        None => {
            chunked::encode_last_chunk(end.ieof, &end.trailers, out);
            end.clone()
        }
    }
}
