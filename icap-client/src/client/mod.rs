//! The client, one responsibility per file, each importing only what lies below it:
//!
//! ```text
//!  scan.rs      scan_file / scan_bytes / scan_reader, one attempt on one server
//!  failover.rs  server order, retries and back-off, down/up, probe, check_available
//!  options.rs   the OPTIONS cache and request
//!  builder.rs   ClientBuilder: setters, build (checks, TLS config, server state)
//!  shared.rs    Client and its shared state, accessors, the health channel
//!  heads.rs     the request heads: pure functions, unit-tested
//!  source.rs    the body of a scan; meta.rs ScanMeta; cfg.rs the settings and defaults
//! ```
//!
//! This file only re-exports: a sibling names another sibling, never `super::Item`.

mod builder;
mod cfg;
mod failover;
mod heads;
mod meta;
mod options;
mod scan;
mod shared;
mod source;

pub use builder::ClientBuilder;
pub use cfg::{DEFAULT_MAX_ADAPTED_BODY, DEFAULT_WRITE_BATCH};
pub use meta::{Progress, ScanMeta};
pub use shared::Client;
