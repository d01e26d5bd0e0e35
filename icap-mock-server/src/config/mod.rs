//! The configuration file (TOML) and the admin API share this schema.
//!
//! The file turns into a value, [`FileSettings`], that
//! [`MockServerBuilder::config`](crate::MockServerBuilder::config) consumes; this module
//! knows nothing of the server. Every mistake is a [`ConfigError`] naming the key (and,
//! for TOML syntax, the line) where it is known.

mod error;
mod rule;
mod service;

use std::path::PathBuf;
use std::time::Duration;

use icap_proto::Limits;
use serde::{Deserialize, Serialize};

use crate::mock::Mock;
use crate::service::ServiceConfig;

use self::error::read;

pub use error::ConfigError;
pub use rule::{FAULT_NAMES, FaultSpec, HeaderSpec, RuleSpec, ThenSpec, VERDICT_NAMES, WhenSpec};
pub use service::{FaultValue, FaultsSpec, ServiceSpec, UpstreamSpec, UpstreamTable};

/// A whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `ADDR:PORT` to listen on (the `--listen` flag wins).
    pub listen: Option<String>,
    /// `ADDR:PORT` of the admin API (the `--admin` flag wins).
    pub admin: Option<String>,
    /// The whole-head deadline: milliseconds from a request's first byte to the end of its
    /// head (default 10 000; past it, `408` and close).
    pub header_read_timeout_ms: Option<u64>,
    /// Milliseconds a connection may stay silent.
    pub idle_timeout_ms: Option<u64>,
    /// Body bytes kept for rules that look at the body.
    pub body_capture: Option<usize>,
    /// Per-request triggers on or off.
    pub triggers: Option<bool>,
    /// Delay of the `.slow` trigger, in milliseconds.
    pub trigger_delay_ms: Option<u64>,
    /// Transactions kept in the journal (default 10 000; 0 turns the journal off).
    pub journal_limit: Option<usize>,
    /// Bytes the journal's entries may hold together (default 8 MiB).
    pub journal_bytes: Option<usize>,
    /// Whether the journal records each body's SHA-256 (default true).
    pub body_digest: Option<bool>,
    /// `[limits]`: overrides of icap-proto's decoder limits (head size, headers, body).
    #[serde(default)]
    pub limits: LimitsSpec,
    /// `[tls]`: serve `icaps://` with files or a generated CA, optionally with mTLS.
    pub tls: Option<TlsSpec>,
    /// Services (default: one `avscan`).
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceSpec>,
    /// Rules, in the order they are mounted (of equal priority, the first mounted wins).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
}

/// `[limits]`: each field overrides icap-proto's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LimitsSpec {
    pub max_head: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_header_line: Option<usize>,
    pub max_http_head: Option<usize>,
    pub max_chunk_line: Option<usize>,
    pub max_chunk_extensions: Option<usize>,
    pub max_trailers: Option<usize>,
    pub max_preview: Option<u64>,
    pub max_body: Option<u64>,
}

impl LimitsSpec {
    /// The limits with these overrides.
    pub fn to_limits(&self) -> Limits {
        let mut l = Limits::default();
        macro_rules! set {
            ($($f:ident),*) => {$( if let Some(v) = self.$f { l.$f = v; } )*};
        }
        set!(
            max_head,
            max_headers,
            max_header_line,
            max_http_head,
            max_chunk_line,
            max_chunk_extensions,
            max_trailers,
            max_preview,
            max_body
        );
        l
    }
}

/// `[tls]`: a certificate and key from files, or `generated = true`; `client_ca` for mTLS.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// Generate a CA and certificate at start.
    #[serde(default)]
    pub generated: bool,
    /// PEM certificate chain file.
    pub cert: Option<PathBuf>,
    /// PEM private key file.
    pub key: Option<PathBuf>,
    /// Where to write the generated CA (PEM).
    pub ca_out: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM file).
    pub client_ca: Option<PathBuf>,
}

/// How the server is to serve `icaps://`, as a configuration file says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsSettings {
    /// A CA and a certificate generated at start.
    Generated,
    /// This certificate chain and key (PEM text, read from the files).
    Pem {
        /// The certificate chain.
        cert: String,
        /// The private key.
        key: String,
    },
}

/// What a configuration file sets, checked and with its files read: the value
/// [`MockServerBuilder::config`](crate::MockServerBuilder::config) consumes. `None` leaves
/// the builder's own setting.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FileSettings {
    /// The services, in file order.
    pub services: Vec<ServiceConfig>,
    /// The rules, in the order they are mounted.
    pub mocks: Vec<Mock>,
    /// The whole-head deadline.
    pub header_read_timeout: Option<Duration>,
    /// The idle timeout.
    pub idle_timeout: Option<Duration>,
    /// Body bytes kept for rules.
    pub body_capture: Option<usize>,
    /// Per-request triggers on or off.
    pub triggers: Option<bool>,
    /// The `.slow` trigger's delay.
    pub trigger_delay: Option<Duration>,
    /// Journal entries kept.
    pub journal_limit: Option<usize>,
    /// Journal bytes kept.
    pub journal_bytes: Option<usize>,
    /// SHA-256 of each body in the journal.
    pub body_digest: Option<bool>,
    /// Decoder limits (icap-proto's defaults with the file's overrides).
    pub limits: Limits,
    /// TLS, if the file turns it on.
    pub tls: Option<TlsSettings>,
    /// The CA (PEM) client certificates must chain to.
    pub client_ca_pem: Option<String>,
    /// Where to write a generated CA.
    pub ca_out: Option<PathBuf>,
}

impl ConfigFile {
    /// Parses TOML text (feature `config`).
    #[cfg(feature = "config")]
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e: toml::de::Error| ConfigError::Toml {
            line: e.span().map(|s| {
                memchr::memchr_iter(b'\n', &text.as_bytes()[..s.start.min(text.len())]).count() + 1
            }),
            message: e.to_string(),
        })
    }

    /// Checks the file and reads the files it names (TLS): the settings for
    /// [`MockServerBuilder::config`](crate::MockServerBuilder::config).
    pub fn settings(&self) -> Result<FileSettings, ConfigError> {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        let mut out = FileSettings {
            services: self
                .services
                .iter()
                .map(ServiceSpec::to_service)
                .collect::<Result<_, _>>()?,
            mocks: self
                .rules
                .iter()
                .map(RuleSpec::to_mock)
                .collect::<Result<_, _>>()?,
            header_read_timeout: ms(self.header_read_timeout_ms),
            idle_timeout: ms(self.idle_timeout_ms),
            body_capture: self.body_capture,
            triggers: self.triggers,
            trigger_delay: ms(self.trigger_delay_ms),
            journal_limit: self.journal_limit,
            journal_bytes: self.journal_bytes,
            body_digest: self.body_digest,
            limits: self.limits.to_limits(),
            ..FileSettings::default()
        };
        if let Some(t) = &self.tls {
            out.tls = match (&t.cert, &t.key) {
                (Some(c), Some(k)) => Some(TlsSettings::Pem {
                    cert: read(c)?,
                    key: read(k)?,
                }),
                (None, None) if t.generated => Some(TlsSettings::Generated),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "tls",
                        message: "tls: give both cert and key".into(),
                    });
                }
            };
            if let Some(ca) = &t.client_ca {
                out.client_ca_pem = Some(read(ca)?);
            }
            out.ca_out.clone_from(&t.ca_out);
        }
        Ok(out)
    }
}
