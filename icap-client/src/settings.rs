//! The configuration file (TOML): every setting of the client and the policy, in one
//! place. The CLI reads it with `--config` and lets flags override it; a product can load
//! it the same way.
//!
//! ```
//! use icap_client::settings::Settings;
//! let s: Settings = toml::from_str(r#"
//!     servers = ["icap://av.example.net/avscan"]
//!     max_size = 26214400
//!     bind = "10.0.0.5"
//!     [timeouts]
//!     connect = "3s"
//!     [identity]
//!     preset = "filecloud"
//!     [policy]
//!     on_infected = "quarantine"
//!     quarantine_dir = "/var/quarantine"
//!     delete_on_scan_fail = true
//! "#).unwrap();
//! let client = s.client_builder().unwrap().build().unwrap();
//! assert_eq!(client.max_size(), Some(26214400));
//! assert!(s.policy().unwrap().delete_on_scan_fail);
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use icap_proto::Limits;
use serde::Deserialize;

use crate::Method;
use crate::client::ClientBuilder;
use crate::config::{HealthConfig, Keepalive, MAX_TIMEOUT, PreviewMode, Strategy, Timeouts};
use crate::error::{Error, escaped, escaped_path};
use crate::identity::IdentityHeaders;
use crate::policy::{FileAction, Policy};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Server URLs (`icap://host:port/service`, `icaps://` for Secure ICAP).
    #[serde(default)]
    pub servers: Vec<String>,
    /// One server by parts, the way product settings pages ask for it.
    pub server: Option<ServerParts>,
    /// `failover` (default) or `round-robin`.
    pub strategy: Option<Strategy>,
    /// Local address to connect from ("Server Local IP"); `0.0.0.0` means any.
    pub bind: Option<IpAddr>,
    /// File size limit in bytes (default 25 MiB); `0` means no limit.
    pub max_size: Option<u64>,
    /// `respmod` (default) or `reqmod`.
    pub method: Option<String>,
    /// `auto` (default: what OPTIONS says), `off`, or a number of bytes.
    pub preview: Option<PreviewSetting>,
    /// Extra attempts after a failure (default 0).
    pub retries: Option<u32>,
    /// Most connections per server (default 32; the server's Max-Connections lowers it).
    pub max_connections: Option<u32>,
    /// Send `Allow: 204` (default true). `false`: clean files come back as a `200` echo.
    pub allow_204: Option<bool>,
    /// `Allow: 206`: not implemented; `true` is refused (`false` is the default).
    pub allow_206: Option<bool>,
    /// Accept an OPTIONS answer without `ISTag` (default false: such a service is unusable,
    /// RFC 3507 section 4.10.2 makes `ISTag` a MUST).
    pub lenient_istag: Option<bool>,
    /// Largest preview taken from OPTIONS or given as `preview` (default 65536).
    pub max_preview: Option<u64>,
    /// Wait before the first retry (default 100 ms); each next one doubles, with jitter.
    pub retry_backoff: Option<DurationSetting>,
    /// The longest wait between retries (default 2 s).
    pub retry_backoff_max: Option<DurationSetting>,
    /// Decoder limits and the cap on the adapted body.
    #[serde(default)]
    pub limits: LimitsSettings,
    /// TLS.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutSettings,
    /// Failure counting and revival.
    #[serde(default)]
    pub health: HealthSettings,
    /// Identity headers.
    #[serde(default)]
    pub identity: IdentitySettings,
    /// Extra ICAP headers sent with every scan (subject to `identity.enabled`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Logging.
    #[serde(default)]
    pub logging: LoggingSettings,
    /// What to do with files.
    #[serde(default)]
    pub policy: PolicySettings,
}

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
    /// [`MAX_TIMEOUT`]).
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

/// A duration: a number of seconds or text such as `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationSetting {
    /// Seconds.
    Seconds(f64),
    /// Text.
    Text(String),
}

/// Why a duration setting was refused. Each names the setting and quotes the value as
/// given (escaped, so that a control character cannot break the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a number with a known unit.
    #[error("{setting} = {value}: not a duration (250ms, 5s, 2m, 1h or a number of seconds)")]
    Invalid {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
    /// Below zero.
    #[error("{setting} = {value}: a duration cannot be negative")]
    Negative {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
    /// NaN or infinite.
    #[error("{setting} = {value}: not a finite number")]
    NotFinite {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
    /// Too large for any clock (longer than about 584 billion years).
    #[error("{setting} = {value}: too large (timeouts are cut to 365 days anyway)")]
    TooLarge {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
}

impl DurationError {
    fn into_error(self) -> Error {
        Error::config(self.to_string()).with_source(self)
    }
}

impl DurationSetting {
    /// The duration of the setting named `setting` (named in the error), at most
    /// [`MAX_TIMEOUT`]: longer ones are cut to it.
    pub fn get(&self, setting: &str) -> Result<Duration, Error> {
        match self {
            DurationSetting::Seconds(s) => {
                seconds(*s, setting, &s.to_string()).map_err(DurationError::into_error)
            }
            DurationSetting::Text(t) => parse_duration_of(setting, t),
        }
    }
}

fn seconds(secs: f64, setting: &str, shown: &str) -> Result<Duration, DurationError> {
    let (setting, value) = (setting.to_owned(), escaped(shown));
    if secs.is_nan() || secs.is_infinite() {
        return Err(DurationError::NotFinite { setting, value });
    }
    if secs < 0.0 {
        return Err(DurationError::Negative { setting, value });
    }
    Duration::try_from_secs_f64(secs)
        .map(|d| d.min(MAX_TIMEOUT))
        .map_err(|_| DurationError::TooLarge { setting, value })
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"` or a bare number of seconds, at most
/// [`MAX_TIMEOUT`] (longer ones are cut to it).
pub fn parse_duration(t: &str) -> Result<Duration, Error> {
    parse_duration_of("duration", t)
}

/// [`parse_duration`] for the setting named `setting`, which the error names.
pub fn parse_duration_of(setting: &str, t: &str) -> Result<Duration, Error> {
    let trimmed = t.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(trimmed.len());
    let (num, unit) = trimmed.split_at(split);
    let invalid = || {
        DurationError::Invalid {
            setting: setting.to_owned(),
            value: escaped(t),
        }
        .into_error()
    };
    let n: f64 = num.parse().map_err(|_| invalid())?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(invalid()),
    };
    seconds(secs, setting, t).map_err(DurationError::into_error)
}

/// Parses a policy word: `delete`, `report`/`keep`, `quarantine` or `quarantine=DIR`.
pub fn parse_action(word: &str, dir: Option<&Path>) -> Result<FileAction, Error> {
    match word {
        "delete" => Ok(FileAction::Delete),
        "report" | "keep" => Ok(FileAction::Keep),
        "quarantine" => dir
            .map(|d| FileAction::Quarantine(d.to_path_buf()))
            .ok_or_else(|| {
                Error::config("quarantine needs a folder (quarantine_dir, or quarantine=DIR)")
            }),
        w => match w.strip_prefix("quarantine=") {
            Some(d) if !d.is_empty() => Ok(FileAction::Quarantine(PathBuf::from(d))),
            _ => Err(Error::config(format!(
                "unknown action {word:?} (delete, report, quarantine=DIR)"
            ))),
        },
    }
}

impl Settings {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("config {}: {e}", escaped_path(path))).with_source(e)
        })?;
        toml::from_str(&text).map_err(|e| {
            Error::config(format!("config {}: {e}", escaped_path(path))).with_source(e)
        })
    }

    /// A client builder with every setting of the file applied.
    #[allow(clippy::too_many_lines)] // one settings key after another onto the builder; a flat list reads best whole
    pub fn client_builder(&self) -> Result<ClientBuilder, Error> {
        let mut b = ClientBuilder::default();
        for s in &self.servers {
            b = b.server(s);
        }
        if let Some(p) = &self.server {
            for (what, v) in [("host", &p.host), ("service", &p.service)] {
                if v.chars().any(char::is_control) {
                    return Err(Error::config(format!(
                        "server {what} {} contains a control character",
                        escaped(v)
                    )));
                }
            }
            b = b.server_parts(&p.host, p.port, &p.service, p.secure);
        }
        if let Some(s) = self.strategy {
            b = b.strategy(s);
        }
        if let Some(ip) = self.bind {
            b = b.bind(ip);
        }
        if let Some(n) = self.max_size {
            b = b.max_size((n > 0).then_some(n));
        }
        if let Some(m) = &self.method {
            b = b.method(match m.to_ascii_lowercase().as_str() {
                "respmod" => Method::Respmod,
                "reqmod" => Method::Reqmod,
                _ => return Err(Error::config(format!("method {m:?}: respmod or reqmod"))),
            });
        }
        if let Some(p) = &self.preview {
            b = b.preview(match p {
                PreviewSetting::Bytes(n) => PreviewMode::Fixed(*n),
                PreviewSetting::Word(w) if w == "auto" => PreviewMode::Auto,
                PreviewSetting::Word(w) if w == "off" => PreviewMode::Off,
                PreviewSetting::Word(w) => {
                    return Err(Error::config(format!(
                        "preview {w:?}: auto, off or a number"
                    )));
                }
            });
        }
        if let Some(n) = self.retries {
            b = b.retries(n);
        }
        if let Some(n) = self.max_connections {
            b = b.max_connections(n);
        }
        if let Some(yes) = self.allow_204 {
            b = b.allow_204(yes);
        }
        if self.lenient_istag.is_some() || self.max_preview.is_some() {
            let mut rules = icap_proto::OptionsRules::default();
            if let Some(yes) = self.lenient_istag {
                rules = rules.with_require_istag(!yes);
            }
            if let Some(n) = self.max_preview {
                rules = rules.with_max_preview(n);
            }
            b = b.options_rules(rules);
        }
        if self.allow_206 == Some(true) {
            return Err(Error::config(
                "allow_206 = true: this client does not implement 206 partial answers \
                 (use-original-body); remove the setting",
            ));
        }
        if self.retry_backoff.is_some() || self.retry_backoff_max.is_some() {
            let base = match &self.retry_backoff {
                Some(d) => d.get("retry_backoff")?,
                None => Duration::from_millis(100),
            };
            let max = match &self.retry_backoff_max {
                Some(d) => d.get("retry_backoff_max")?,
                None => Duration::from_secs(2).max(base),
            };
            b = b.retry_backoff(base, max);
        }
        b = b.limits(self.limits.proto_limits());
        if let Some(n) = self.limits.max_adapted_body {
            b = b.max_adapted_body((n > 0).then_some(n));
        }
        let tls = &self.tls;
        if let Some(ca) = &tls.ca_file {
            b = b.tls_ca_file(ca);
        }
        if let Some(sni) = &tls.sni {
            b = b.tls_sni(sni);
        }
        match (&tls.client_cert, &tls.client_key) {
            (Some(c), Some(k)) => b = b.tls_client_cert(c, k),
            (None, None) => {}
            _ => {
                return Err(Error::config(
                    "tls.client_cert and tls.client_key go together",
                ));
            }
        }
        b = b.danger_accept_invalid_certs(tls.insecure);
        b = b.timeouts(self.timeouts.timeouts()?);
        let mut h = HealthConfig::default();
        if let Some(n) = self.health.threshold {
            h.threshold = n;
        }
        if let Some(w) = &self.health.window {
            h.window = w.get("health.window")?;
        }
        if let Some(r) = &self.health.revival {
            h.revival = r.get("health.revival")?;
        }
        b = b.health(h);
        let id = &self.identity;
        let mut ih = match id.preset.as_deref() {
            None | Some("filecloud") => IdentityHeaders::filecloud(),
            Some("common") => IdentityHeaders::common(),
            Some(p) => {
                return Err(Error::config(format!(
                    "identity.preset {p:?}: filecloud or common"
                )));
            }
        };
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if let Some(v) = v {
                *slot = (!v.is_empty()).then(|| v.clone());
            }
        };
        set(&mut ih.user_name, &id.user_name);
        set(&mut ih.user_email, &id.user_email);
        set(&mut ih.user_type, &id.user_type);
        set(&mut ih.group_names, &id.group_names);
        set(&mut ih.client_ip, &id.client_ip);
        set(&mut ih.authenticated_user, &id.authenticated_user);
        if let Some(e) = id.enabled {
            ih.enabled = e;
        }
        b = b.identity_headers(ih);
        for (n, v) in &self.headers {
            b = b.header(n, v);
        }
        if self.logging.payload {
            b = b.wire_log(Some(self.logging.payload_body_cap.unwrap_or(256)));
        }
        Ok(b)
    }

    /// The policy of the file.
    pub fn policy(&self) -> Result<Policy, Error> {
        let p = &self.policy;
        let dir = p.quarantine_dir.as_deref();
        let mut policy = Policy::default();
        if let Some(w) = &p.on_infected {
            policy.on_infected = parse_action(w, dir)?;
        }
        if let Some(w) = &p.on_modified {
            policy.on_modified = parse_action(w, dir)?;
        }
        policy.delete_on_scan_fail = p.delete_on_scan_fail;
        policy.audit_log.clone_from(&p.audit_log);
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (t, ms) in [
            ("250ms", 250),
            ("5s", 5000),
            ("2m", 120_000),
            ("1.5", 1500),
            ("1h", 3_600_000),
        ] {
            assert_eq!(parse_duration(t).unwrap(), Duration::from_millis(ms), "{t}");
        }
        for bad in ["", "5x", "s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Settings>("sever = 1").is_err());
    }

    #[test]
    fn server_parts_default_port() {
        let s: Settings =
            toml::from_str("[server]\nhost = \"10.1.2.3\"\nservice = \"avscan\"\nsecure = true\n")
                .unwrap();
        let c = s.client_builder().unwrap().build().unwrap();
        assert_eq!(c.servers(), vec!["icaps://10.1.2.3:1344/avscan".to_owned()]);
    }
}
