//! Settings merging: the configuration file (if any), then every flag over it, each
//! checked so that an error names the flag.

use anyhow::{Result, bail};
use icap_client::settings::{
    DurationSetting, KeepaliveSetting, PreviewSetting, Settings, parse_duration_of,
};

use super::args::Cli;
use super::conn::ConnArgs;
use super::output::escape;

/// The config file (if any) with the flags applied over it.
#[allow(clippy::too_many_lines)] // one flag after another over the file's settings; a flat list reads best whole
pub(crate) fn settings(cli: &Cli, conn: &ConnArgs, urls: &[String]) -> Result<Settings> {
    let mut s = match &cli.config {
        Some(p) => Settings::load(p)?,
        None => Settings::default(),
    };
    if !urls.is_empty() {
        s.servers = urls.to_vec();
        s.server = None;
    }
    if let Some(host) = &conn.host {
        s.servers.clear();
        s.server = Some(icap_client::settings::ServerParts {
            host: host.clone(),
            port: conn.port,
            service: conn.service.clone().unwrap_or_else(|| "avscan".into()),
            secure: conn.secure,
        });
    } else if conn.port.is_some() || conn.service.is_some() || conn.secure {
        bail!("--port, --service and --secure go with --host");
    }
    if conn.strategy.is_some() {
        s.strategy = conn.strategy;
    }
    if conn.bind.is_some() {
        s.bind = conn.bind;
    }
    if conn.max_size.is_some() {
        s.max_size = conn.max_size;
    }
    if conn.reqmod {
        s.method = Some("reqmod".into());
    }
    if let Some(p) = &conn.preview {
        s.preview = Some(match p.parse::<u64>() {
            Ok(n) => PreviewSetting::Bytes(n),
            Err(_) => PreviewSetting::Word(p.clone()),
        });
    }
    for h in &conn.headers {
        let Some((n, v)) = h.split_once(':') else {
            bail!("--header {}: expected NAME:VALUE", escape(h));
        };
        s.headers.insert(n.trim().to_owned(), v.trim().to_owned());
    }
    if conn.no_identity_headers {
        s.identity.enabled = Some(false);
    }
    if conn.tls_ca.is_some() {
        s.tls.ca_file.clone_from(&conn.tls_ca);
    }
    if conn.tls_sni.is_some() {
        s.tls.sni.clone_from(&conn.tls_sni);
    }
    if conn.tls_client_cert.is_some() {
        s.tls.client_cert.clone_from(&conn.tls_client_cert);
        s.tls.client_key.clone_from(&conn.tls_client_key);
    }
    if conn.insecure {
        s.tls.insecure = true;
    }
    for (slot, v, flag) in [
        (
            &mut s.timeouts.connect,
            &conn.connect_timeout,
            "--connect-timeout",
        ),
        (&mut s.timeouts.idle, &conn.idle_timeout, "--idle-timeout"),
        (&mut s.timeouts.deadline, &conn.deadline, "--deadline"),
        (
            &mut s.timeouts.deadline_per_mib,
            &conn.deadline_per_mib,
            "--deadline-per-mib",
        ),
        (&mut s.retry_backoff, &conn.retry_backoff, "--retry-backoff"),
        (
            &mut s.retry_backoff_max,
            &conn.retry_backoff_max,
            "--retry-backoff-max",
        ),
    ] {
        if let Some(v) = v {
            // Checked here so that the error names the flag, not the config key.
            parse_duration_of(flag, v)?;
            *slot = Some(DurationSetting::Text(v.clone()));
        }
    }
    if let Some(k) = &conn.tcp_keepalive {
        if !k.trim().eq_ignore_ascii_case("off") {
            parse_duration_of("--tcp-keepalive", k)?;
        }
        s.timeouts.keepalive = Some(KeepaliveSetting::Idle(DurationSetting::Text(k.clone())));
    }
    if conn.retries.is_some() {
        s.retries = conn.retries;
    }
    if conn.no_allow_204 {
        s.allow_204 = Some(false);
    }
    if conn.lenient_istag {
        s.lenient_istag = Some(true);
    }
    for l in &conn.limits {
        let Some((n, v)) = l.split_once('=') else {
            bail!("--limit {}: expected NAME=VALUE", escape(l));
        };
        s.limits.set(n.trim(), v)?;
    }
    if s.servers.is_empty() && s.server.is_none() {
        bail!(
            "no ICAP server: give --server URL or --config FILE (options and doctor take the URL as an argument)"
        );
    }
    if cli.debug_wire {
        s.logging.payload = true;
        s.logging.payload_body_cap = Some(cli.debug_wire_cap);
    }
    Ok(s)
}
