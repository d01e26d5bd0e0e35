//! A sans-IO, streaming codec for ICAP/1.0 (RFC 3507), the protocol that proxies, file
//! sharing products and mail gateways use to hand content to an antivirus server.
//!
//! # Design
//!
//! ```text
//!   bytes from a socket ──► RequestDecoder / ResponseDecoder ──► Event::Head(head)
//!   (any pieces)               │  1. frame the head (memchr, limit)     Event::Data(Bytes)
//!                              │  2. nom grammar on the complete head   Event::PreviewEnd{ieof}
//!                              │  3. embedded HTTP heads by offsets     Event::End(BodyEnd)
//!                              └  4. chunked body, streamed
//!
//!   RequestHead / ResponseHead ──encode──► bytes (Encapsulated computed)
//!   chunked::encode_* ──────────────────► body chunks, ieof, trailers
//!   verdict::threats(&ResponseHead) ────► what the antivirus found
//!
//!   exchange::ClientExchange ◄─ handle_*_sent (what went out)   poll_event ─► checked events
//!   exchange::ServerExchange ◄─ handle_*_sent (what went out)   poll_event ─► request events
//!                              └ RFC rules per request; reuse() decides keep-alive
//! ```
//!
//! The [`exchange`] module holds every rule about which response is legal after which
//! request (preview, `ieof`, `100 Continue`, `204`/`206`, `Encapsulated` per status) and
//! when a connection may carry another request, for both sides, so the I/O layers of the
//! client and the server only move bytes and run timers around it.
//!
//! The crate does no I/O and reads no clock: the caller owns the buffer and the socket.
//! Body data is split off the caller's buffer as [`bytes::Bytes`] without copying, so a body
//! of any size streams through in memory bounded by [`Limits`].
//!
//! Header fields: a decoded [`Headers`] is one shared buffer (the head as received) and a
//! table of positions into it, so decoding copies no field and counts no reference per
//! field. Reading hands out borrowed views ([`HeaderNameRef`], [`HeaderValueRef`]) with the
//! reading methods of the owned [`HeaderName`] and [`HeaderValue`], which are what a head is
//! built from; `to_owned` turns a view into one (sharing the buffer), and
//! [`RequestHead::detached`] copies a head out of the reader's buffer when it must outlive
//! it.
//!
//! Line endings: ICAP requires CRLF. A bare LF is rejected with
//! [`DecodeError::BareLineFeed`], so two parsers can never disagree on where a message ends.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use icap_proto::{Event, Limits, Method, ResponseDecoder, verdict};
//!
//! let reply = b"ICAP/1.0 200 OK\r\n\
//!     ISTag: \"av-1\"\r\n\
//!     X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature;\r\n\
//!     Encapsulated: res-hdr=0, null-body=26\r\n\r\n\
//!     HTTP/1.1 403 Forbidden\r\n\r\n";
//! let mut buf = BytesMut::from(&reply[..]);
//! let mut dec = ResponseDecoder::new(Method::Respmod, Limits::default());
//! let Some(Event::Head(head)) = dec.decode(&mut buf)? else { unreachable!() };
//! let threats = verdict::threats(&head);
//! assert_eq!(threats[0].name, "Eicar-Test-Signature");
//! # Ok::<(), icap_proto::DecodeError>(())
//! ```

pub mod chunked;
mod decoder;
mod encapsulated;
mod error;
pub mod exchange;
mod header;
mod http;
mod limits;
mod message;
pub mod options;
mod parse;
mod types;
pub mod verdict;

pub use chunked::{BodyEnd, ChunkEvent, ChunkedDecoder};
pub use decoder::{Event, RequestDecoder, ResponseDecoder};
pub use encapsulated::{BodyKind, Direction, Encapsulated, Section};
pub use error::{DecodeError, EncapsulatedError, EncodeError, Limit};
pub use exchange::{ClientExchange, ProtocolError, RequestPlan, ServerExchange};
pub use header::{
    HeaderName, HeaderNameRef, HeaderValue, HeaderValueRef, Headers, HeadersIter, Single,
};
pub use http::{HttpRequestHead, HttpResponseHead};
pub use limits::Limits;
pub use message::{RequestHead, RequestStart, ResponseHead};
pub use options::{OptionsError, OptionsResponse, OptionsRules, OptionsWarning};
pub use types::{Method, Scheme, StatusCode, Uri, VERSION};

// The README's examples run as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
