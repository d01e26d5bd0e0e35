//! Helpers shared by the test modules: one decoder type for both directions, feeding in
//! pieces, event normalisation and re-encoding from events.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use icap_proto::{
    BodyEnd, DecodeError, Event, Headers, Limits, Method, RequestDecoder, RequestHead,
    ResponseDecoder, ResponseHead, chunked,
};

/// Which decoder reads a fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A client's request (server side), with the decoder's defaults (no obs-fold).
    Request,
    /// A client's request, decoded with obs-fold accepted (`with_obs_fold(true)`).
    RequestObsFold,
    /// A server's answer to a request of this method (client side).
    Response(Method),
}

/// A head of either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Msg {
    Request(RequestHead),
    Response(ResponseHead),
}

impl Msg {
    pub(crate) fn request(&self) -> &RequestHead {
        match self {
            Msg::Request(h) => h,
            Msg::Response(_) => panic!("expected a request head"),
        }
    }

    pub(crate) fn response(&self) -> &ResponseHead {
        match self {
            Msg::Response(h) => h,
            Msg::Request(_) => panic!("expected a response head"),
        }
    }

    fn has_body(&self) -> bool {
        match self {
            Msg::Request(h) => h.body.is_some(),
            Msg::Response(h) => h.body.is_some(),
        }
    }
}

/// A decoder event with its head unboxed in a [`Msg`] (the decoder's `Event::Head` is
/// boxed), so that tests can match and build heads by value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "test values, matched and built by value; the decoder's own Event boxes the head"
)]
pub(crate) enum Ev {
    Head(Msg),
    Data(Bytes),
    PreviewEnd { ieof: bool },
    End(BodyEnd),
}

/// A request or response decoder behind one interface.
pub(crate) enum Decoder {
    Request(RequestDecoder),
    Response(ResponseDecoder),
}

impl Decoder {
    pub(crate) fn new(kind: Kind, limits: Limits) -> Self {
        match kind {
            Kind::Request => Decoder::Request(RequestDecoder::new(limits)),
            Kind::RequestObsFold => {
                Decoder::Request(RequestDecoder::new(limits).with_obs_fold(true))
            }
            Kind::Response(m) => Decoder::Response(ResponseDecoder::new(m, limits)),
        }
    }

    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Ev>, DecodeError> {
        Ok(match self {
            Decoder::Request(d) => d.decode(buf)?.map(|e| map_event(e, Msg::Request)),
            Decoder::Response(d) => d.decode(buf)?.map(|e| map_event(e, Msg::Response)),
        })
    }

    pub(crate) fn is_idle(&self) -> bool {
        match self {
            Decoder::Request(d) => d.is_idle(),
            Decoder::Response(d) => d.is_idle(),
        }
    }
}

fn map_event<H>(e: Event<H>, f: impl FnOnce(H) -> Msg) -> Ev {
    match e {
        Event::Head(h) => Ev::Head(f(*h)),
        Event::Data(d) => Ev::Data(d),
        Event::PreviewEnd { ieof } => Ev::PreviewEnd { ieof },
        Event::End(end) => Ev::End(end),
    }
}

/// What feeding some input produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Events in order, until the input ran out or an error.
    pub(crate) events: Vec<Ev>,
    /// The error that stopped decoding, if any.
    pub(crate) error: Option<DecodeError>,
    /// Whether the decoder was between messages at the end.
    pub(crate) idle: bool,
    /// Bytes fed but not consumed.
    pub(crate) left: usize,
}

/// Feeds `pieces` one after the other, decoding as far as possible after each.
pub(crate) fn feed<'a>(
    kind: Kind,
    limits: Limits,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Outcome {
    let mut dec = Decoder::new(kind, limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        events,
                        error: Some(e),
                        idle: dec.is_idle(),
                        left: buf.len(),
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        idle: dec.is_idle(),
        left: buf.len(),
    }
}

/// Feeds `input` in one piece with default limits.
pub(crate) fn feed_whole(kind: Kind, input: &[u8]) -> Outcome {
    feed(kind, Limits::default(), [input])
}

/// Joins adjacent `Data` events: where data is cut depends on how the input was split.
pub(crate) fn merge_data(events: &[Ev]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::with_capacity(events.len());
    for e in events {
        match (out.last_mut(), e) {
            (Some(Ev::Data(prev)), Ev::Data(d)) => {
                let mut joined = BytesMut::from(&prev[..]);
                joined.extend_from_slice(d);
                *prev = joined.freeze();
            }
            _ => out.push(e.clone()),
        }
    }
    out
}

/// Writes the messages `events` describe: heads with their encoders, each `Data` as one
/// chunk, and the last chunks with `ieof`, `use-original-body` or trailers as decoded.
/// Responses are encoded as answers to `method`.
pub(crate) fn encode_events(events: &[Ev], method: Method) -> BytesMut {
    let mut out = BytesMut::new();
    let mut has_body = false;
    let mut pending_ieof = false;
    for e in events {
        match e {
            Ev::Head(Msg::Request(h)) => {
                h.encode(&mut out).expect("a decoded request head encodes");
                has_body = h.body.is_some();
            }
            Ev::Head(m @ Msg::Response(h)) => {
                h.encode(method, &mut out)
                    .expect("a decoded response head encodes");
                has_body = m.has_body();
            }
            Ev::Data(d) => chunked::encode_chunk(d, &mut out),
            // With ieof the trailers come with `End`; without, the preview's stream ends
            // here and the rest of the body follows as a new chunked stream.
            Ev::PreviewEnd { ieof: true } => pending_ieof = true,
            Ev::PreviewEnd { ieof: false } => {
                chunked::encode_last_chunk(false, &Headers::new(), &mut out);
            }
            Ev::End(end) => {
                if has_body {
                    encode_end(end, pending_ieof, &mut out);
                }
                pending_ieof = false;
                has_body = false;
            }
        }
    }
    out
}

fn encode_end(end: &BodyEnd, ieof: bool, out: &mut BytesMut) {
    match end.use_original_body {
        Some(n) => chunked::encode_last_chunk_use_original(n, out),
        None => chunked::encode_last_chunk(ieof || end.ieof, &end.trailers, out),
    }
}

/// The bytes of a fixture file.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture with the decoder that reads it and whether the encoder writes it back
/// byte for byte (see tests/fixtures/README.md for the ones that are not canonical).
pub(crate) const FIXTURES: &[(&str, Kind, bool)] = &[
    ("rfc3507-ex1-reqmod-request.icap", Kind::Request, true),
    (
        "rfc3507-ex1-reqmod-response.icap",
        Kind::Response(Method::Reqmod),
        true,
    ),
    ("rfc3507-ex2-reqmod-request.icap", Kind::Request, true),
    (
        "rfc3507-ex2-reqmod-response.icap",
        Kind::Response(Method::Reqmod),
        true,
    ),
    ("rfc3507-ex3-reqmod-request.icap", Kind::Request, true),
    (
        "rfc3507-ex3-reqmod-response.icap",
        Kind::Response(Method::Reqmod),
        true,
    ),
    ("rfc3507-ex4-respmod-request.icap", Kind::Request, true),
    (
        "rfc3507-ex4-respmod-response.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    ("rfc3507-ex5-options-request.icap", Kind::Request, true),
    (
        "rfc3507-ex5-options-response.icap",
        Kind::Response(Method::Options),
        true,
    ),
    (
        "cicap-virus-scan-infected.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "cicap-virus-scan-clean-204.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "symantec-201-violations.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "kaspersky-clean-204.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "kaspersky-infected.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "sophos-infected.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "mcafee-403-virusfound.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "threat-name-spaces.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    ("eset-localized.icap", Kind::Response(Method::Respmod), true),
    ("squid-options-request.icap", Kind::Request, true),
    ("reqmod-preview-ieof.icap", Kind::Request, true),
    ("respmod-preview-ieof.icap", Kind::Request, true),
    ("respmod-preview-continue.icap", Kind::Request, true),
    (
        "continue-then-infected.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "options-response-full.icap",
        Kind::Response(Method::Options),
        true,
    ),
    (
        "respmod-206-use-original-body.icap",
        Kind::Response(Method::Respmod),
        true,
    ),
    (
        "lenient-noncanonical.icap",
        Kind::Response(Method::Respmod),
        false,
    ),
];

/// The method used to encode responses of `kind` (requests carry their own).
pub(crate) fn method_of(kind: Kind) -> Method {
    match kind {
        Kind::Request | Kind::RequestObsFold => Method::Options,
        Kind::Response(m) => m,
    }
}

/// Header fields as `(name, value)` pairs, for exact comparisons.
pub(crate) fn fields(h: &Headers) -> Vec<(String, Vec<u8>)> {
    h.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// Expected header fields written as `name: value` lines.
pub(crate) fn expect_fields(lines: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    lines
        .iter()
        .map(|l| {
            let colon = l.iter().position(|&b| b == b':').expect("name: value");
            let name = std::str::from_utf8(&l[..colon]).expect("ASCII name");
            (name.to_owned(), l[colon + 2..].to_vec())
        })
        .collect()
}

/// Events with every `Encapsulated` field removed from the heads: the encoder computes
/// that field (and adds it to 2xx answers that had none), so it is compared separately.
pub(crate) fn without_encapsulated(events: &[Ev]) -> Vec<Ev> {
    events
        .iter()
        .map(|e| match e {
            Ev::Head(Msg::Request(h)) => {
                let mut h = h.clone();
                h.headers.remove("Encapsulated");
                Ev::Head(Msg::Request(h))
            }
            Ev::Head(Msg::Response(h)) => {
                let mut h = h.clone();
                h.headers.remove("Encapsulated");
                Ev::Head(Msg::Response(h))
            }
            other => other.clone(),
        })
        .collect()
}
