//! Proxy mode: a request no rule answers goes to a real ICAP server, and its answer comes
//! back, streamed both ways.
//!
//! ```text
//!  client ─► ServerExchange ─► chunks ─► upstream      (preview, ieof, rest after 100)
//!  client ◄─ ServerExchange ◄─ chunks ◄─ ClientExchange ◄─ upstream
//!                                   └──► Tape (record) ◄┘
//! ```
//!
//! Both sides' rules come from icap-proto: the request is read through the connection's
//! [`ServerExchange`](icap_proto::ServerExchange) and the answer through a
//! [`ClientExchange`](icap_proto::ClientExchange) built from the same request, so a `100 Continue`, an answer inside
//! the preview or an early answer is passed on only when it is legal for the client, and
//! the connection to the client is reused only when both exchanges allow it. Memory per
//! connection is two read buffers whatever the body size: body chunks are forwarded as they
//! are decoded. The one exception is bounded: while a mounted body rule has not decided,
//! the connection holds up to [`Upstream::with_hold_limit`] body bytes back so
//! the rule can still answer instead of the upstream.
//!
//! Upstream connections are kept alive in a small pool per [`Upstream`] (see
//! [`Upstream::with_max_idle`]): one goes back to the pool only when its
//! [`ClientExchange::reuse`](icap_proto::ClientExchange::reuse) says yes, no transport fault cut it and nothing failed. A
//! pooled connection that turns out stale (the upstream closed it while idle) is replaced
//! by a fresh one once, when nothing of the request but its head has gone out and nothing
//! of an answer has come back.

mod pump;
pub(crate) mod relay;
pub(crate) mod upstream;

pub use upstream::{
    DEFAULT_HOLD_LIMIT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_IDLE, Upstream, UpstreamError,
    UpstreamFailure,
};
