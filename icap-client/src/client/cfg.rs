//! What a [`Client`](crate::Client) is configured with: the settings the builder sets and
//! the client reads, with their defaults. Plain data; imports nothing of the client.

use bytes::Bytes;
use std::net::IpAddr;
use std::time::Duration;

use icap_proto::{Limits, Method, OptionsRules, Uri};

use crate::config::{DEFAULT_MAX_SIZE, HealthConfig, PreviewMode, Strategy, Timeouts, TlsOptions};
use crate::identity::IdentityHeaders;

/// Default cap on the adapted (modified) body the client reads back: 64 MiB.
pub const DEFAULT_MAX_ADAPTED_BODY: u64 = 64 * 1024 * 1024;

/// Body bytes gathered into one write by default (1 MiB): see
/// [`ClientBuilder::write_batch`](crate::ClientBuilder::write_batch).
pub const DEFAULT_WRITE_BATCH: usize = 1024 * 1024;

/// Every setting of a client; the builder's setters document each one.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // independent switches of a builder, not a state
pub(crate) struct ClientConfig {
    pub(super) servers: Vec<Uri>,
    pub(super) strategy: Strategy,
    pub(super) bind: Option<IpAddr>,
    pub(super) tls: TlsOptions,
    pub(super) timeouts: Timeouts,
    pub(super) max_size: Option<u64>,
    pub(super) method: Method,
    pub(super) preview: PreviewMode,
    pub(super) use_options: bool,
    pub(super) options_ttl: Duration,
    pub(super) identity: IdentityHeaders,
    pub(super) headers: Vec<(String, String)>,
    pub(super) max_connections: u32,
    pub(super) pool_idle_timeout: Duration,
    pub(super) health: HealthConfig,
    pub(super) retries: u32,
    pub(super) wire_log: Option<usize>,
    pub(super) digest: bool,
    pub(super) limits: Limits,
    pub(super) chunk_size: usize,
    pub(super) write_batch: usize,
    /// The embedded HTTP heads' `Host` (shared bytes: each scan takes a reference).
    pub(super) http_host: Bytes,
    pub(super) allow_204: bool,
    pub(super) allow_206: bool,
    pub(super) max_adapted_body: Option<u64>,
    pub(super) retry_backoff: (Duration, Duration),
    pub(super) options_rules: OptionsRules,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            servers: Vec::new(),
            strategy: Strategy::Failover,
            bind: None,
            tls: TlsOptions::default(),
            timeouts: Timeouts::default(),
            max_size: Some(DEFAULT_MAX_SIZE),
            method: Method::Respmod,
            preview: PreviewMode::Auto,
            use_options: true,
            options_ttl: Duration::from_secs(300),
            identity: IdentityHeaders::default(),
            headers: Vec::new(),
            max_connections: 32,
            pool_idle_timeout: Duration::from_secs(30),
            health: HealthConfig::default(),
            retries: 0,
            wire_log: None,
            digest: true,
            limits: Limits::default(),
            chunk_size: 64 * 1024,
            write_batch: DEFAULT_WRITE_BATCH,
            http_host: Bytes::from_static(b"upload.local"),
            allow_204: true,
            allow_206: false,
            max_adapted_body: Some(DEFAULT_MAX_ADAPTED_BODY),
            retry_backoff: (Duration::from_millis(100), Duration::from_secs(2)),
            options_rules: OptionsRules::default(),
        }
    }
}
