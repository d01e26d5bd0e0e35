//! A configurable mock ICAP antivirus server, for testing products that send files to an
//! antivirus over ICAP (RFC 3507): infections in the shapes real products report them,
//! clean files, slow scans, dead servers and broken replies, without a real antivirus.
//!
//! # Design
//!
//! ```text
//!  TCP / TLS ─► Connection<S> ─► icap_proto::ServerExchange ─► Head, Data, PreviewEnd, End
//!                  │                                              │
//!                  │  rules (Mock::given(..).respond_with(..)),   │ streaming Scanner
//!                  │  triggers, signatures ◄── Request ◄──────────┘ (EICAR, patterns,
//!                  │                                                 SHA-256, size)
//!                  ▼
//!            Decision::Answer(Plan { fault, reply }) ─► dialect (c-icap, Symantec, ...)
//!                                                       ─► ResponseHead::encode, chunked
//!  journal: one Transaction per request, recorded when its head arrives and updated as it
//!  goes (heads, body size and SHA-256, preview, what was written, whether the client left)
//! ```
//!
//! The modules form layers: each imports only what lies below it, and
//! `tests/layers.rs` fails on any import circle (`cargo test -p icap-mock-server --test
//! layers`).
//!
//! ```text
//!  builder.rs       MockServerBuilder (and MockServer::start/builder): puts the rest
//!                   together
//!   ├ server.rs     MockServer, the handle; Mock::mount and mount_as_scoped (MockGuard)
//!   ├ admin.rs      the HTTP admin API (axum, feature `admin`) over the state and the outage switch
//!   ├ config/       ConfigFile ─► FileSettings (MockServerBuilder::config), ConfigError
//!   └ listener.rs   the socket, the outage switch, the accept loop
//!      └ connection/  Connection<S>: bytes in through ServerExchange, bytes out
//!          transaction.rs  refuse ─► OPTIONS, replay, proxy ─► head phase ─► body phase
//!          respond.rs      OPTIONS, the streaming echo, the final answer with its fault
//!          decide.rs       decide(settings, tx) ─► Decision: Answer(Plan) | WaitForRules
//!                          | WaitForMarker (rules, then triggers, then the scan)
//!          answer.rs       the answer's encoding: echo head, final answer, refusals, 100
//!          faults.rs       the byte-breaking fault injectors, as pure functions
//!          tx.rs, plan.rs  one transaction's state; Plan and Decision
//!          replay.rs       answers from a recording
//!        proxy/relay.rs, pump.rs   the proxied exchange (upstream.rs lies below the state)
//!   shutdown.rs     the shutdown signal
//!  state.rs         settings, rules snapshot, journal, per-service admission: the bottom
//!                   floor of serving (mini-redis's db.rs), importing nothing that serves
//!  below it: mock.rs (Mock, schedules, the rule selector), reply.rs (Reply, Fault,
//!  Reaction), matchers, request, scan, dialect, service, journal, proxy/upstream.rs,
//!  record, replay, transport_faults, tls, rng
//! ```
//!
//! All ICAP framing goes through [`icap_proto`], and so do the exchange rules: on the legal
//! path the connection asks [`icap_proto::ServerExchange`] before a `100 Continue` or a
//! final answer and reuses the connection only when it allows; the fault injectors keep a
//! raw path. A broken request gets its status (`400`, `501`, `505`; `408` past the
//! whole-head deadline) and the connection closes; see the README's server-side rules. The
//! journal is bounded in entries and in bytes ([`DEFAULT_JOURNAL_LIMIT`],
//! [`DEFAULT_JOURNAL_BYTES`]).
//!
//! A rule is decided as early as it can be:
//! rules on heads decide right after the head (so a fault can strike before the body),
//! body rules when their pattern shows up (in the preview, a verdict is sent straight
//! away) or when the body ends. Bodies are never held whole for detection; a clean `200`
//! echo is kept in memory up to [`ServiceConfig::echo_threshold`] and streamed beyond it.
//!
//! # Example
//!
//! ```
//! use icap_mock_server::{matchers::filename, Fault, Mock, MockServer, Reply};
//! use std::time::Duration;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = MockServer::start().await;
//! assert!(server.url().starts_with("icap://127.0.0.1:"));
//! Mock::given(filename("*.zip"))
//!     .respond_with(Reply::error(500, "password_protected"))
//!     .expect(0)
//!     .mount(&server)
//!     .await;
//! Mock::given(filename("*.iso"))
//!     .respond_with(Fault::delay(Duration::from_secs(2)))
//!     .mount(&server)
//!     .await;
//! assert!(server.journal().await.is_empty());
//! # }
//! ```

mod admin;
mod builder;
pub mod config;
mod connection;
mod dialect;
mod journal;
mod listener;
pub mod matchers;
mod mock;
pub mod proxy;
pub mod record;
pub mod replay;
mod reply;
mod request;
mod rng;
mod scan;
mod server;
mod service;
mod shutdown;
mod state;
pub mod tls;
pub mod transport_faults;
pub mod verify;

#[cfg(feature = "admin")]
pub use admin::DEFAULT_ADMIN_BODY_LIMIT;
pub use builder::{MockServerBuilder, StartError};
pub use journal::{DEFAULT_JOURNAL_BYTES, DEFAULT_JOURNAL_LIMIT, Stage, Transaction};
pub use listener::Outage;
pub use mock::{DEFAULT_PRIORITY, Mock, MockBuilder, Times};
pub use reply::{Fault, FaultKind, Reaction, Reply, ReplyKind, Respond};
pub use request::Request;
pub use scan::EICAR;
pub use server::{MockGuard, MockServer};
pub use service::{DEFAULT_ECHO_THRESHOLD, Dialect, ServiceConfig, Signature, UnknownDialect};
pub use state::DEFAULT_HEAD_DEADLINE;

/// Re-exported so users need not depend on icap-proto for `Method` and `Limits`.
pub use icap_proto::{Limits, Method};

// The README's examples run as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
