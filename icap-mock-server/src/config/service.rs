//! `[[service]]` and its upstream: the service configuration a file describes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proxy::upstream::{Upstream, UpstreamFailure};
use crate::service::{Dialect, ServiceConfig, Signature};
use crate::transport_faults::TransportFaults;

use super::error::{ConfigError, parse_method, read};

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
/// max_idle = 32               # idle keep-alive connections kept (0: none)
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
