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
//!
//! ```text
//!  mod.rs       Settings (the whole file), load, client_builder, policy
//!  sections.rs  [server] [tls] [timeouts] [limits] [health] [identity] [logging] [policy]
//!  duration.rs  "250ms" / "5s" / 3 (seconds), bounded
//! ```

mod duration;
mod sections;

pub use duration::{DurationError, DurationSetting, parse_duration, parse_duration_of};
pub use sections::{
    HealthSettings, IdentitySettings, KeepaliveSetting, LimitsSettings, LoggingSettings,
    PolicySettings, PreviewSetting, ServerParts, TimeoutSettings, TlsSettings,
};

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::client::ClientBuilder;
use crate::config::{HealthConfig, PreviewMode, Strategy};
use crate::error::{Error, escaped, escaped_path};
use crate::identity::IdentityHeaders;
use crate::policy::{FileAction, Policy};
use icap_proto::Method;

/// The whole file: the servers and every top-level setting, with one field per section.
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
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("config {}", escaped_path(path))).with_source(e))?;
        toml::from_str(&text)
            .map_err(|e| Error::config(format!("config {}", escaped_path(path))).with_source(e))
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
            ("3", 3000),
            (" 5s ", 5000),
            ("2min", 120_000),
            ("1h 30m", 5_400_000),
            ("1000000h", 365 * 24 * 3_600_000),
        ] {
            assert_eq!(parse_duration(t).unwrap(), Duration::from_millis(ms), "{t}");
        }
        for bad in ["", "5x", "s", "-1s", "5 fortnights", "nan", "-1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for (t, word) in [
            ("-5s", "negative"),
            ("-1", "negative"),
            ("99999999999999999999999h", "too large"),
            ("1e300", "too large"),
            ("soon", "not a duration"),
        ] {
            let e = parse_duration_of("--x", t).unwrap_err();
            assert!(format!("{e:#}").starts_with("--x = "), "{e:#}");
            assert!(format!("{e:#}").contains(word), "{t}: {e:#}");
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
