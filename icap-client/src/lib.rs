//! A streaming ICAP (RFC 3507) antivirus scan client, the policy an upload product applies
//! to infected and unscanned files, and the `icap-client` command line tool.
//!
//! # Design
//!
//! ```text
//!  Guard::check_upload(path, uploader)          Policy: delete / quarantine / keep,
//!    │                                          audit JSON lines, alerts, notices
//!    ▼
//!  Client::scan_file / scan_bytes / scan_reader ──► Verdict + ScanReport
//!    │  size limit ─► NotScanned{TooLarge}
//!    │  servers: failover / round-robin, health (N failures in a window → down,
//!    │           OPTIONS probe after the revival delay brings it back)
//!    │  OPTIONS cache (Options-TTL, ISTag change) ─► Preview, Max-Connections, Transfer-*
//!    ▼
//!  pool per server (keep-alive, ≤ Max-Connections, stale connection retried once)
//!    ▼
//!  Connection<S: AsyncRead + AsyncWrite>   TCP │ TLS (rustls) │ any stream
//!    full duplex: body chunks out (64 KiB at a time) while the response is read,
//!    so an early answer stops the upload; every frame via icap-proto, and every
//!    rule (which answer is legal, may the connection be reused) from its sans-IO
//!    icap_proto::exchange::ClientExchange: the connection only moves bytes
//!    source integrity: exactly the declared bytes, the file re-checked (size,
//!    mtime) before the terminal chunk; otherwise Failed{Source}, nothing sent
//! ```
//!
//! Events: a bare [`Client`] announces only server health ([`HealthEvent`]: down, up) on
//! [`Client::subscribe`]. A [`Guard`] has its own channel ([`Guard::subscribe`]) with its
//! alerts, notices and audit entries, and forwards each health change into it as an
//! [`Alert`], in order, in the task that noticed it.
//!
//! # Layout
//!
//! Each module imports only modules listed below it (`tests/e2e/layers.rs` checks that
//! there is no import circle, in the library and in the binary:
//! `cargo test -p icap-client --test e2e layers`).
//!
//! ```text
//!  policy.rs      Guard, Policy: the file's fate, audit log, alerts and notices
//!  settings/      the TOML file (sections, durations) → ClientBuilder + Policy
//!  diagnosis.rs   the ICAP Test: OPTIONS with a diagnosis per server
//!  client/        Client, one responsibility per file:
//!                   scan · failover (order, retries, health, probe) · options (cache)
//!                   builder · shared (Client, its state, accessors, health channel)
//!                   heads (request heads, pure) · source · meta (ScanMeta) · cfg
//!  events.rs      HealthEvent, Alert, Notice, Event
//!  audit.rs       AuditEntry, Action: the typed audit line and its JSON
//!  server.rs      per-server state: pool, cached OPTIONS, health; ServerHandle
//!  verdict.rs     Verdict, ScanReport, Threat: an exchange's outcome → a verdict
//!  connection/    Connection: the exchange loop · sender (source integrity) · plan · wire
//!  transport.rs   TCP (bind, keepalive) and TLS streams · tls.rs rustls configuration
//!  identity.rs    uploader identity headers · config.rs timeouts, health, TLS options
//!  error.rs       Error, ErrorKind, Phase
//! ```
//!
//! The `icap-client` binary (feature `cli`) adds `main.rs`, `cli/` (arguments, settings
//! merging, `scan`, `options`, `doctor`, output escaping) and `bench/` (the load generator).
//!
//! Every outcome is a [`Verdict`]: `Clean`, `Infected { threats }`, `Modified`,
//! `NotScanned { reason }` or `Failed { error }`. `Clean` comes only from a complete,
//! legal answer about exactly the bytes of the file; an error never turns into `Clean`,
//! an answer that breaks RFC 3507's rules for the request sent is `Failed` whatever it
//! says, and an infection signalled anywhere in a legal response wins over an error
//! status.
//!
//! # Example
//!
//! ```no_run
//! # async fn upload_hook() -> Result<(), icap_client::Error> {
//! use icap_client::{Client, Guard, Policy, Uploader, UserType, Verdict};
//!
//! let client = Client::builder()
//!     .server("icap://127.0.0.1:1344/avscan")
//!     .max_size(Some(25 * 1024 * 1024))
//!     .build()?;
//! let guard = Guard::new(client, Policy::default().with_audit_log("audit.jsonl"))?;
//! guard.admit_upload().await?;
//! let who = Uploader::new("alice").with_user_type(UserType::Full);
//! let outcome = guard.check_upload("/srv/uploads/report.pdf", Some(&who)).await;
//! if let Verdict::Infected { threats } = &outcome.report.verdict {
//!     eprintln!("removed: {}", threats[0].name);
//! }
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! [`Error`] follows hyper's rule: `{}` prints its own level, the cause is in
//! [`source()`](std::error::Error::source), so a chain printer (anyhow's `{:#}`) shows each
//! cause once; `{:#}` on an [`Error`] prints the whole chain (`CA file "/x": No such file or
//! directory (os error 2)`), as its JSON `message` and the audit log do.
//!
//! # Logging
//!
//! Each transaction logs at DEBUG under the target `icap_client` ("basic debug logging").
//! The bytes on the wire are logged at DEBUG under `icap_client::wire` only when
//! [`ClientBuilder::wire_log`] is set ("network payload debug logging"): every head in
//! full and at most the configured number of body bytes per message.

mod audit;
mod client;
mod config;
mod connection;
mod diagnosis;
mod error;
mod events;
mod identity;
mod policy;
mod server;
#[cfg(feature = "config")]
pub mod settings;
mod tls;
mod transport;
mod verdict;

pub use audit::{Action, AuditEntry};
pub use client::{
    Client, ClientBuilder, DEFAULT_MAX_ADAPTED_BODY, DEFAULT_WRITE_BATCH, Progress, ScanMeta,
};
pub use config::{
    DEFAULT_MAX_SIZE, HealthConfig, Keepalive, MAX_TIMEOUT, PreviewMode, Roots, Strategy, Timeouts,
    TlsOptions,
};
pub use diagnosis::{Diagnosis, OptionsReport, OptionsSummary, diagnose};
pub use error::{Error, ErrorKind, Phase, TlsProblem};
pub use events::{Alert, AlertKind, Event, HealthEvent, Notice};
pub use icap_proto::{Method, OptionsRules};
pub use identity::{IdentityHeaders, Uploader, UserType};
pub use policy::{FileAction, Guard, Outcome, Policy};
pub use server::ServerHandle;
pub use verdict::{NotScannedReason, ScanReport, Threat, Verdict, VerdictKind};

// The README's examples run as doctests, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
