//! The sections of the configuration file below its top level: `[server]`, `[tls]`,
//! `[timeouts]`, `[limits]`, `[health]`, `[identity]`, `[logging]`, `[policy]`, each as
//! written in TOML, with what turns a section into the client's own values.

use std::path::PathBuf;

use icap_proto::Limits;
use serde::Deserialize;

use super::duration::DurationSetting;
use crate::config::{Keepalive, Timeouts};
use crate::error::{Error, escaped};

/// `[server]`: host, port, service, secure.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerParts {
    /// Host name or IP ("ICAP Remote Hostname").
    pub host: String,
    /// Port (default 1344).
    pub port: Option<u16>,
    /// Service name ("ICAP Service Name").
    pub service: String,
    /// TLS ("Secure ICAP").
    #[serde(default)]
    pub secure: bool,
}

/// `preview = "auto" | "off" | N`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PreviewSetting {
    /// Bytes.
    Bytes(u64),
    /// `auto` or `off`.
    Word(String),
}

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CAs to trust (instead of the system roots).
    pub ca_file: Option<PathBuf>,
    /// Server name for SNI and verification.
    pub sni: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM).
    pub client_key: Option<PathBuf>,
    /// Accept any certificate (loudly logged).
    #[serde(default)]
    pub insecure: bool,
}

/// `[timeouts]`: `"250ms"`, `"5s"`, `"2m"` or a number of seconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSettings {
    /// TCP connect.
    pub connect: Option<DurationSetting>,
    /// TLS handshake.
    pub tls_handshake: Option<DurationSetting>,
    /// Waiting for `100 Continue`.
    #[serde(rename = "continue")]
    pub continue_wait: Option<DurationSetting>,
    /// No progress while sending or receiving.
    pub idle: Option<DurationSetting>,
    /// Whole-scan deadline base.
    pub deadline: Option<DurationSetting>,
    /// Added to the deadline per MiB.
    pub deadline_per_mib: Option<DurationSetting>,
    /// TCP keepalive: idle time before the first probe (default 30 s); `false` or `"off"`
    /// turns it off.
    pub keepalive: Option<KeepaliveSetting>,
    /// TCP keepalive: time between probes (default 10 s).
    pub keepalive_interval: Option<DurationSetting>,
}

/// `keepalive = "30s" | 30 | "off" | false | true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeepaliveSetting {
    /// `true` (the default times) or `false` (off).
    Switch(bool),
    /// The idle time, or `"off"`.
    Idle(DurationSetting),
}

/// `[limits]`: what the client accepts from a server. Each is optional; the defaults are
/// those of [`icap_proto::Limits`] and [`DEFAULT_MAX_ADAPTED_BODY`](crate::DEFAULT_MAX_ADAPTED_BODY).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSettings {
    /// Bytes of an ICAP response head (default 65536).
    pub max_head: Option<usize>,
    /// Header fields in one head (default 100).
    pub max_headers: Option<usize>,
    /// Bytes of one header field, folded lines included (default 16384).
    pub max_header_line: Option<usize>,
    /// Bytes of each embedded HTTP head (default 65536).
    pub max_http_head: Option<usize>,
    /// Bytes of one chunk-size line (default 4096).
    pub max_chunk_line: Option<usize>,
    /// Bytes of chunk extensions in one message (default 16384).
    pub max_chunk_extensions: Option<usize>,
    /// Bytes of the trailer section (default 16384).
    pub max_trailers: Option<usize>,
    /// Bytes of the adapted (modified) body read back (default 64 MiB); `0`: no cap.
    pub max_adapted_body: Option<u64>,
}

impl LimitsSettings {
    /// The decoder limits: the defaults with every value given here applied.
    pub fn proto_limits(&self) -> Limits {
        let mut l = Limits::default();
        for (slot, v) in [
            (&mut l.max_head, self.max_head),
            (&mut l.max_headers, self.max_headers),
            (&mut l.max_header_line, self.max_header_line),
            (&mut l.max_http_head, self.max_http_head),
            (&mut l.max_chunk_line, self.max_chunk_line),
            (&mut l.max_chunk_extensions, self.max_chunk_extensions),
            (&mut l.max_trailers, self.max_trailers),
        ] {
            if let Some(v) = v {
                *slot = v;
            }
        }
        l
    }

    /// Sets one limit by its name in `[limits]` (as the CLI's `--limit NAME=VALUE` does).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let n: u64 = value.trim().parse().map_err(|_| {
            Error::config(format!(
                "limit {}: {} is not a whole number",
                escaped(name),
                escaped(value)
            ))
        })?;
        let small = || {
            usize::try_from(n)
                .map_err(|_| Error::config(format!("limit {}: {n} is too large", escaped(name))))
        };
        match name {
            "max_head" => self.max_head = Some(small()?),
            "max_headers" => self.max_headers = Some(small()?),
            "max_header_line" => self.max_header_line = Some(small()?),
            "max_http_head" => self.max_http_head = Some(small()?),
            "max_chunk_line" => self.max_chunk_line = Some(small()?),
            "max_chunk_extensions" => self.max_chunk_extensions = Some(small()?),
            "max_trailers" => self.max_trailers = Some(small()?),
            "max_adapted_body" => self.max_adapted_body = Some(n),
            _ => {
                return Err(Error::config(format!(
                    "unknown limit {} (max_head, max_headers, max_header_line, max_http_head, \
                     max_chunk_line, max_chunk_extensions, max_trailers, max_adapted_body)",
                    escaped(name)
                )));
            }
        }
        Ok(())
    }
}

impl TimeoutSettings {
    /// The timeouts: the defaults with every value given here applied (each at most
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)).
    pub fn timeouts(&self) -> Result<Timeouts, Error> {
        let mut t = Timeouts::default();
        for (slot, v, name) in [
            (&mut t.connect, &self.connect, "timeouts.connect"),
            (
                &mut t.tls_handshake,
                &self.tls_handshake,
                "timeouts.tls_handshake",
            ),
            (
                &mut t.continue_wait,
                &self.continue_wait,
                "timeouts.continue",
            ),
            (&mut t.idle, &self.idle, "timeouts.idle"),
            (&mut t.deadline, &self.deadline, "timeouts.deadline"),
            (
                &mut t.deadline_per_mib,
                &self.deadline_per_mib,
                "timeouts.deadline_per_mib",
            ),
        ] {
            if let Some(v) = v {
                *slot = v.get(name)?;
            }
        }
        let default = Keepalive::default();
        let idle = match &self.keepalive {
            None | Some(KeepaliveSetting::Switch(true)) => Some(default.idle),
            Some(KeepaliveSetting::Switch(false)) => None,
            Some(KeepaliveSetting::Idle(DurationSetting::Text(w)))
                if w.trim().eq_ignore_ascii_case("off") =>
            {
                None
            }
            Some(KeepaliveSetting::Idle(d)) => Some(d.get("timeouts.keepalive")?),
        };
        let interval = match &self.keepalive_interval {
            Some(d) => d.get("timeouts.keepalive_interval")?,
            None => default.interval,
        };
        Ok(t.clamped()
            .with_keepalive(idle.map(|idle| Keepalive::new(idle, interval))))
    }
}

/// `[health]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// Failures within `window` that mark a server down.
    pub threshold: Option<u32>,
    /// Window.
    pub window: Option<DurationSetting>,
    /// Revival delay.
    pub revival: Option<DurationSetting>,
}

/// `[identity]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// `false` turns every identity and extra header off.
    pub enabled: Option<bool>,
    /// `filecloud` (default) or `common`.
    pub preset: Option<String>,
    /// Header name overrides; `""` removes one.
    pub user_name: Option<String>,
    /// See `user_name`.
    pub user_email: Option<String>,
    /// See `user_name`.
    pub user_type: Option<String>,
    /// See `user_name`.
    pub group_names: Option<String>,
    /// See `user_name`.
    pub client_ip: Option<String>,
    /// See `user_name`.
    pub authenticated_user: Option<String>,
}

/// `[logging]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSettings {
    /// Basic debug logging (target `icap_client` at DEBUG).
    #[serde(default)]
    pub debug: bool,
    /// Network payload logging (target `icap_client::wire`).
    #[serde(default)]
    pub payload: bool,
    /// Body bytes per message in the payload log (default 256).
    pub payload_body_cap: Option<usize>,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// `delete` (default), `quarantine` (needs `quarantine_dir`) or `report`.
    pub on_infected: Option<String>,
    /// Folder for quarantined files.
    pub quarantine_dir: Option<PathBuf>,
    /// `keep` (default), `delete` or `quarantine`.
    pub on_modified: Option<String>,
    /// Delete files whose scan failed and refuse uploads while no server is available.
    #[serde(default)]
    pub delete_on_scan_fail: bool,
    /// JSON lines audit log.
    pub audit_log: Option<PathBuf>,
}
