//! The configuration file (TOML) and the admin API share this schema.
//!
//! The file turns into a value, [`FileSettings`], that
//! [`MockServerBuilder::config`](crate::MockServerBuilder::config) consumes; this module
//! knows nothing of the server. Every mistake is a [`ConfigError`] naming the key (and,
//! for TOML syntax, the line) where it is known.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use icap_proto::{Limits, Method};
use serde::{Deserialize, Serialize};

use crate::matchers::{self, Match};
use crate::mock::{Fault, FaultKind, Mock, MockBuilder, Reply};
use crate::proxy::upstream::{Upstream, UpstreamError, UpstreamFailure};
use crate::replay::{Replay, ReplayError};
use crate::service::{Dialect, ServiceConfig, Signature};
use crate::transport_faults::TransportFaults;

/// What is wrong with a configuration (a file, or a rule posted to the admin API). The
/// messages are the ones the mock has always printed; the fields say where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not TOML, or does not fit the schema (an unknown key, a wrong type).
    #[error("{message}")]
    Toml {
        /// toml's own description, with the line and a caret.
        message: String,
        /// The 1-based line of the mistake, when toml knows it.
        line: Option<usize>,
    },
    /// A file the configuration names could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file the configuration names.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An upstream URL or CA is unusable.
    #[error("{source}")]
    Upstream {
        /// The key (`service.upstream`, `service.upstream_ca`, ...).
        key: &'static str,
        /// What is wrong with it.
        source: UpstreamError,
    },
    /// A `recorded:DIR` dialect names a directory that is not a recording.
    #[error("{source}")]
    Replay {
        /// The key (`rule.then.dialect`).
        key: &'static str,
        /// Why the recording cannot be loaded.
        source: ReplayError,
    },
    /// A key has a value the mock does not understand.
    #[error("{message}")]
    Invalid {
        /// The key, dotted (`service.methods`, `rule.then.verdict`, `tls`, ...).
        key: &'static str,
        /// What is wrong with the value.
        message: String,
    },
}

impl ConfigError {
    /// The key the error is about, when there is one.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            ConfigError::Upstream { key, .. }
            | ConfigError::Replay { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Toml { .. } | ConfigError::Read { .. } => None,
        }
    }

    fn invalid(key: &'static str) -> impl FnOnce(String) -> ConfigError {
        move |message| ConfigError::Invalid { key, message }
    }

    fn upstream(key: &'static str) -> impl FnOnce(UpstreamError) -> ConfigError {
        move |source| ConfigError::Upstream { key, source }
    }
}

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
    /// Transactions kept in the journal (default 10 000).
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
    /// Rules, in the order they are mounted (later ones take precedence).
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

/// `[[service]]`: one ICAP service, its OPTIONS answer, dialect, signatures and upstream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Path of the service (`avscan` for `icap://host/avscan`).
    pub name: String,
    /// `c-icap`, `symantec`, `kaspersky`, `sophos`, `mcafee`, `plain` or `eset`.
    #[serde(default)]
    pub dialect: Dialect,
    /// `["RESPMOD", "REQMOD"]` by default.
    pub methods: Option<Vec<String>>,
    /// `Preview` in OPTIONS; `-1` or absent for the default 1024, `0` allowed.
    pub preview: Option<i64>,
    /// `Allow: 204` in OPTIONS (default true).
    pub allow_204: Option<bool>,
    /// `Max-Connections` (0: unlimited).
    pub max_connections: Option<u32>,
    /// `Options-TTL` in seconds (0: not sent).
    pub options_ttl_secs: Option<u64>,
    /// `Transfer-Preview` extensions.
    pub transfer_preview: Option<Vec<String>>,
    /// `Transfer-Ignore` extensions.
    pub transfer_ignore: Option<Vec<String>>,
    /// `Transfer-Complete` extensions.
    pub transfer_complete: Option<Vec<String>>,
    /// `Service` text.
    pub description: Option<String>,
    /// Built-in EICAR detection (default true).
    pub eicar: Option<bool>,
    /// Bytes above which a clean echo streams.
    pub echo_threshold: Option<usize>,
    /// Signatures: `{ pattern, name }`, `{ sha256, name }` or `{ filename, name }`.
    #[serde(default)]
    pub signatures: Vec<Signature>,
    /// Proxy mode: `icap[s]://host:port/service` to forward to, or a
    /// `[service.upstream]` table ([`UpstreamTable`]).
    pub upstream: Option<UpstreamSpec>,
    /// PEM CA file the `icaps://` upstream's certificate must chain to (default: web roots).
    pub upstream_ca: Option<PathBuf>,
    /// `status` (502/504, the default) or `close`: what the client gets when the upstream fails.
    pub upstream_failure: Option<String>,
    /// Milliseconds to wait for the upstream's next byte (default 60 000).
    pub upstream_timeout_ms: Option<u64>,
    /// Transport faults on the proxied path (`latency=200,slice=7,...`; see the README).
    pub upstream_faults: Option<String>,
}

/// `upstream = "icap://..."` or a `[service.upstream]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum UpstreamSpec {
    /// Just the URL; the other settings from the flat `upstream_*` keys.
    Url(String),
    /// Every setting of the upstream in one table.
    Table(UpstreamTable),
}

/// `[service.upstream]`:
///
/// ```toml
/// [[service]]
/// name = "avscan"
/// [service.upstream]
/// url = "icap://127.0.0.1:1344/avscan"
/// failure = "status"          # or "close"
/// timeout_ms = 60000
/// connect_timeout_ms = 10000
/// max_idle = 8                # idle keep-alive connections kept (0: none)
/// idle_timeout_ms = 30000
/// hold_bytes = 1048576        # body held while a body rule decides (0: head rules only)
/// [service.upstream.faults]   # the --transport-faults vocabulary, one key each
/// latency = 200
/// jitter = 50
/// slice = 7
/// cut_down = "100:reset"
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTable {
    /// `icap[s]://host[:port]/service`.
    pub url: String,
    /// PEM CA file for `icaps://` (default: web roots).
    pub ca: Option<PathBuf>,
    /// `status` (502/504, the default) or `close`.
    pub failure: Option<String>,
    /// Milliseconds to wait for the upstream's next byte (default 60 000).
    pub timeout_ms: Option<u64>,
    /// Milliseconds the connect may take (default 10 000).
    pub connect_timeout_ms: Option<u64>,
    /// Idle keep-alive connections kept for the next requests (default 8; 0: none).
    pub max_idle: Option<usize>,
    /// Milliseconds an idle connection is kept (default 30 000).
    pub idle_timeout_ms: Option<u64>,
    /// Body bytes held back while a body rule has not decided (default 1 MiB; 0: only
    /// head rules decide).
    pub hold_bytes: Option<u64>,
    /// Transport faults: a table (`latency = 200`, `cut_down = "100:reset"`, ...) or the
    /// text form (`"latency=200,slice=7"`).
    pub faults: Option<FaultsSpec>,
}

/// Transport faults in a configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum FaultsSpec {
    /// `"latency=200,jitter=50,cut_down=100:reset"`.
    Text(String),
    /// One key per fault, the same names and units as the text form.
    Table(BTreeMap<String, FaultValue>),
}

/// The value of one transport fault: a number, or text such as `"100:reset"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum FaultValue {
    /// Milliseconds, bytes or bytes per second.
    Number(u64),
    /// `"100:reset"` for cuts.
    Text(String),
}

impl FaultsSpec {
    /// The transport faults, in [`TransportFaults::parse`](crate::transport_faults::TransportFaults::parse)'s vocabulary.
    pub fn to_faults(&self) -> Result<TransportFaults, ConfigError> {
        let text = match self {
            FaultsSpec::Text(t) => t.clone(),
            FaultsSpec::Table(map) => {
                let mut items = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let v = match v {
                        FaultValue::Number(n) => n.to_string(),
                        FaultValue::Text(t) if !t.contains([',', '=']) => t.clone(),
                        FaultValue::Text(t) => {
                            return Err(ConfigError::Invalid {
                                key: "service.upstream.faults",
                                message: format!("transport fault {k} = {t:?}: one value only"),
                            });
                        }
                    };
                    if k.contains([',', '=']) {
                        return Err(ConfigError::Invalid {
                            key: "service.upstream.faults",
                            message: format!("transport fault name {k:?}"),
                        });
                    }
                    items.push(format!("{k}={v}"));
                }
                items.join(",")
            }
        };
        TransportFaults::parse(&text).map_err(ConfigError::invalid("service.upstream.faults"))
    }
}

impl UpstreamSpec {
    /// The upstream, before the flat `upstream_*` keys of the service apply.
    pub fn to_upstream(&self) -> Result<Upstream, ConfigError> {
        let t = match self {
            UpstreamSpec::Url(url) => {
                return Upstream::parse(url).map_err(ConfigError::upstream("service.upstream"));
            }
            UpstreamSpec::Table(t) => t,
        };
        let mut up =
            Upstream::parse(&t.url).map_err(ConfigError::upstream("service.upstream.url"))?;
        if let Some(ca) = &t.ca {
            up = up
                .with_ca_pem(&read(ca)?)
                .map_err(ConfigError::upstream("service.upstream.ca"))?;
        }
        if let Some(f) = &t.failure {
            up = up.with_failure(
                UpstreamFailure::parse(f)
                    .map_err(ConfigError::invalid("service.upstream.failure"))?,
            );
        }
        if let Some(ms) = t.timeout_ms {
            up = up.with_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = t.connect_timeout_ms {
            up = up.with_connect_timeout(Duration::from_millis(ms));
        }
        if let Some(n) = t.max_idle {
            up = up.with_max_idle(n);
        }
        if let Some(ms) = t.idle_timeout_ms {
            up = up.with_idle_timeout(Duration::from_millis(ms));
        }
        if let Some(n) = t.hold_bytes {
            up = up.with_hold_limit(n);
        }
        if let Some(f) = &t.faults {
            up = up.with_transport_faults(f.to_faults()?);
        }
        Ok(up)
    }
}

fn parse_method(key: &'static str, s: &str) -> Result<Method, ConfigError> {
    Method::from_bytes(s.trim().to_ascii_uppercase().as_bytes()).ok_or_else(|| {
        ConfigError::Invalid {
            key,
            message: format!("unknown ICAP method {s:?}"),
        }
    })
}

impl ServiceSpec {
    /// The service configuration.
    pub fn to_service(&self) -> Result<ServiceConfig, ConfigError> {
        let mut s = ServiceConfig::new(&self.name).dialect(self.dialect);
        if let Some(m) = &self.methods {
            let methods = m
                .iter()
                .map(|x| parse_method("service.methods", x))
                .collect::<Result<Vec<_>, _>>()?;
            s = s.methods(&methods);
        }
        if let Some(p) = self.preview {
            s = s.preview(u64::try_from(p).ok());
        }
        if let Some(a) = self.allow_204 {
            s = s.allow_204(a);
        }
        if let Some(m) = self.max_connections {
            s = s.max_connections((m > 0).then_some(m));
        }
        if let Some(t) = self.options_ttl_secs {
            s = s.options_ttl((t > 0).then(|| Duration::from_secs(t)));
        }
        let own = |l: &Option<Vec<String>>, d: &[String]| l.clone().unwrap_or_else(|| d.to_vec());
        s.transfer_preview = own(&self.transfer_preview, &s.transfer_preview);
        s.transfer_ignore = own(&self.transfer_ignore, &s.transfer_ignore);
        s.transfer_complete = own(&self.transfer_complete, &s.transfer_complete);
        if let Some(d) = &self.description {
            s = s.description(d);
        }
        if let Some(e) = self.eicar {
            s = s.eicar(e);
        }
        if let Some(t) = self.echo_threshold {
            s = s.echo_threshold(t);
        }
        for sig in &self.signatures {
            if let Signature::Sha256 { sha256, .. } = sig
                && (sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(ConfigError::Invalid {
                    key: "service.signatures",
                    message: format!("signature sha256 {sha256:?} is not 64 hex digits"),
                });
            }
            s = s.signature(sig.clone());
        }
        if let Some(spec) = &self.upstream {
            let mut up = spec.to_upstream()?;
            if let Some(ca) = &self.upstream_ca {
                up = up
                    .with_ca_pem(&read(ca)?)
                    .map_err(ConfigError::upstream("service.upstream_ca"))?;
            }
            if let Some(f) = &self.upstream_failure {
                up = up.with_failure(
                    UpstreamFailure::parse(f)
                        .map_err(ConfigError::invalid("service.upstream_failure"))?,
                );
            }
            if let Some(ms) = self.upstream_timeout_ms {
                up = up.with_timeout(Duration::from_millis(ms));
            }
            if let Some(spec) = &self.upstream_faults {
                up = up.with_transport_faults(
                    TransportFaults::parse(spec)
                        .map_err(ConfigError::invalid("service.upstream_faults"))?,
                );
            }
            s = s.upstream(up);
        }
        Ok(s)
    }
}

/// A header condition: `{ name = "X-Client-IP", value = "10.0.0.1" }` (no `value`: present).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// The header's name, matched case-insensitively.
    pub name: String,
    /// Exact value; absent means "present with any value".
    pub value: Option<String>,
}

/// `when`: every given condition must hold (none given: every request).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// `RESPMOD`, `REQMOD` or `OPTIONS`.
    pub method: Option<String>,
    /// The service path the request names (`avscan` in `icap://host/avscan`).
    pub service: Option<String>,
    /// An ICAP header.
    pub icap_header: Option<HeaderSpec>,
    /// A header of the embedded HTTP request or response.
    pub http_header: Option<HeaderSpec>,
    /// A substring of the embedded URL's path.
    pub url_path_contains: Option<String>,
    /// A file-name glob.
    pub filename: Option<String>,
    /// A byte string (UTF-8) the body contains.
    pub body_contains: Option<String>,
    /// Smallest body size.
    pub body_size_min: Option<u64>,
    /// Largest body size.
    pub body_size_max: Option<u64>,
}

/// `then`: a verdict, a fault, or a fault followed by a verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThenSpec {
    /// `scan` (default), `clean`, `infected`, `error` or `status`.
    pub verdict: Option<String>,
    /// Threat name for `infected` (default `Mock.Rule`).
    pub threat: Option<String>,
    /// Status for `error` (default 500) and `status`, or the code of `unknown_status`.
    pub status: Option<u16>,
    /// `X-Error-Code` for `error` (default `internal_error`).
    pub error_code: Option<String>,
    /// A fault name (see the README), applied before or instead of the verdict.
    pub fault: Option<String>,
    /// Milliseconds for `delay`, `delay_continue` and `slow_body` (default 5000).
    pub delay_ms: Option<u64>,
    /// Answer in this dialect instead of the service's: a built-in one (`c-icap`,
    /// `symantec`, ...) or `recorded:DIR`, the answers of a recording (see the README's replay).
    pub dialect: Option<String>,
    /// Extra ICAP headers on the answer.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One rule, as in the `[[rule]]` tables of the config file and `POST /rules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A name for logs and expectation messages.
    pub name: Option<String>,
    /// The conditions, all of which must hold (none: every request).
    #[serde(default)]
    pub when: WhenSpec,
    /// The answer.
    #[serde(default)]
    pub then: ThenSpec,
    /// Apply to the first N matching requests only.
    pub times: Option<u64>,
    /// Apply to every k-th matching request.
    pub every: Option<u64>,
    /// Apply with this probability (0 to 1), drawn from a generator seeded with `seed`.
    pub probability: Option<f64>,
    /// Seed for `probability` (default 0).
    pub seed: Option<u64>,
    /// Expected number of applications (checked by `GET /verify`).
    pub expect: Option<u64>,
}

impl ThenSpec {
    fn verdict(&self) -> Result<Reply, ConfigError> {
        let mut v = match self.verdict.as_deref().unwrap_or("scan") {
            "scan" => Reply::scan(),
            "clean" => Reply::clean(),
            "infected" => Reply::infected(self.threat.as_deref().unwrap_or("Mock.Rule")),
            "error" => Reply::error(
                self.status.unwrap_or(500),
                self.error_code.as_deref().unwrap_or("internal_error"),
            ),
            "status" => Reply::status(self.status.ok_or_else(|| ConfigError::Invalid {
                key: "rule.then.status",
                message: "verdict \"status\" needs a \"status\" code".into(),
            })?),
            other => {
                return Err(ConfigError::Invalid {
                    key: "rule.then.verdict",
                    message: format!("unknown verdict {other:?}"),
                });
            }
        };
        if let Some(dir) = self
            .dialect
            .as_deref()
            .and_then(|d| d.strip_prefix("recorded:"))
        {
            let replay = Replay::load(dir).map_err(|source| ConfigError::Replay {
                key: "rule.then.dialect",
                source,
            })?;
            v = v.with_recorded(replay);
        } else if let Some(d) = &self.dialect {
            let d: Dialect =
                serde_json::from_value(serde_json::Value::String(d.clone())).map_err(|e| {
                    ConfigError::Invalid {
                        key: "rule.then.dialect",
                        message: format!("dialect {d:?}: {e}"),
                    }
                })?;
            v = v.with_dialect(d);
        }
        for (n, val) in &self.headers {
            v = v.with_header(n, val);
        }
        Ok(v)
    }

    fn fault(&self) -> Result<Option<FaultKind>, ConfigError> {
        self.fault
            .as_deref()
            .map(|name| {
                FaultKind::parse(name, self.delay_ms, self.status).ok_or_else(|| {
                    ConfigError::Invalid {
                        key: "rule.then.fault",
                        message: format!("unknown fault {name:?}"),
                    }
                })
            })
            .transpose()
    }
}

impl RuleSpec {
    /// Builds the mock this rule describes.
    pub fn to_mock(&self) -> Result<Mock, ConfigError> {
        fn add(b: MockBuilder, m: impl Match) -> MockBuilder {
            b.and(m)
        }
        let w = &self.when;
        let mut b: MockBuilder = Mock::given(matchers::any());
        if let Some(m) = &w.method {
            b = add(b, matchers::method(parse_method("rule.when.method", m)?));
        }
        if let Some(s) = &w.service {
            b = add(b, matchers::service(s));
        }
        if let Some(h) = &w.icap_header {
            b = match &h.value {
                Some(v) => add(b, matchers::icap_header(&h.name, v)),
                None => add(b, matchers::icap_header_exists(&h.name)),
            };
        }
        if let Some(h) = &w.http_header {
            let v = h.value.clone().unwrap_or_default();
            b = add(b, matchers::http_header(&h.name, &v));
        }
        if let Some(p) = &w.url_path_contains {
            b = add(b, matchers::url_path_contains(p));
        }
        if let Some(f) = &w.filename {
            b = add(b, matchers::filename(f));
        }
        if let Some(c) = &w.body_contains {
            b = add(b, matchers::body_contains(c.as_bytes()));
        }
        if w.body_size_min.is_some() || w.body_size_max.is_some() {
            let lo = w.body_size_min.unwrap_or(0);
            let hi = w.body_size_max.unwrap_or(u64::MAX);
            b = add(b, matchers::body_size(lo..=hi));
        }
        let verdict = self.then.verdict()?;
        let mut mock = match self.then.fault()? {
            Some(kind) => b.respond_with(Fault {
                kind,
                then: verdict,
            }),
            None => b.respond_with(verdict),
        };
        let schedules = [
            self.times.is_some(),
            self.every.is_some(),
            self.probability.is_some(),
        ];
        if schedules.iter().filter(|x| **x).count() > 1 {
            return Err(ConfigError::Invalid {
                key: "rule",
                message: "use only one of times, every, probability".into(),
            });
        }
        if let Some(n) = self.times {
            mock = mock.times(n);
        }
        if let Some(k) = self.every {
            mock = mock.every(k);
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::Invalid {
                    key: "rule.probability",
                    message: format!("probability {p} is not between 0 and 1"),
                });
            }
            mock = mock.probability(p, self.seed.unwrap_or(0));
        }
        if let Some(e) = self.expect {
            mock = mock.expect(e);
        }
        if let Some(n) = &self.name {
            mock = mock.named(n);
        }
        Ok(mock)
    }
}

/// A fault switched on through `POST /faults`: `{"fault": "never_answer", "times": 3}`.
/// `outage` (or `refuse`), `accept_and_close` and `none` switch the outage mode instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The fault name.
    pub fault: String,
    /// Only for this service.
    pub service: Option<String>,
    /// Milliseconds for the delay faults.
    pub delay_ms: Option<u64>,
    /// Code for `unknown_status`.
    pub status: Option<u16>,
    /// The next N requests only.
    pub times: Option<u64>,
    /// Every k-th request.
    pub every: Option<u64>,
    /// With this probability.
    pub probability: Option<f64>,
    /// Seed for `probability`.
    pub seed: Option<u64>,
}

impl FaultSpec {
    /// The rule this fault amounts to.
    pub fn to_rule(&self) -> RuleSpec {
        RuleSpec {
            name: Some(format!("fault:{}", self.fault)),
            when: WhenSpec {
                service: self.service.clone(),
                ..WhenSpec::default()
            },
            then: ThenSpec {
                fault: Some(self.fault.clone()),
                delay_ms: self.delay_ms,
                status: self.status,
                ..ThenSpec::default()
            },
            times: self.times,
            every: self.every,
            probability: self.probability,
            seed: self.seed,
            expect: None,
        }
    }
}

/// Reads a file for the configuration, naming it in the error.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
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
    /// Parses TOML text.
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
