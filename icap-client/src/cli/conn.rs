//! The connection flags every command takes ([`ConnArgs`]); each overrides the
//! configuration file.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use icap_client::Strategy;

/// Connection settings shared by all commands (each overrides the config file).
#[derive(Args, Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // command line switches
pub(crate) struct ConnArgs {
    /// ICAP server host ("ICAP Remote Hostname"), instead of a URL.
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// ICAP port (default 1344).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// ICAP service name (the URL path).
    #[arg(long)]
    pub(crate) service: Option<String>,
    /// Secure ICAP (TLS) for --host.
    #[arg(long)]
    pub(crate) secure: bool,
    /// failover or round-robin.
    #[arg(long, value_parser = parse_strategy)]
    pub(crate) strategy: Option<Strategy>,
    /// Local address to connect from ("Server Local IP").
    #[arg(long)]
    pub(crate) bind: Option<IpAddr>,
    /// Files larger than this many bytes are not scanned (0: no limit; default 25 MiB).
    #[arg(long)]
    pub(crate) max_size: Option<u64>,
    /// Use REQMOD instead of RESPMOD.
    #[arg(long)]
    pub(crate) reqmod: bool,
    /// Preview: auto (from OPTIONS), off, or a number of bytes.
    #[arg(long)]
    pub(crate) preview: Option<String>,
    /// Extra ICAP header NAME:VALUE for every scan (e.g. X-FILECLOUD-USER-NAME:alice).
    #[arg(long = "header", short = 'H')]
    pub(crate) headers: Vec<String>,
    /// Send no identity or extra headers at all.
    #[arg(long)]
    pub(crate) no_identity_headers: bool,
    /// Trust only the CAs in this PEM file.
    #[arg(long)]
    pub(crate) tls_ca: Option<PathBuf>,
    /// TLS server name (SNI and verification) instead of the host.
    #[arg(long)]
    pub(crate) tls_sni: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "tls_client_key")]
    pub(crate) tls_client_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, requires = "tls_client_cert")]
    pub(crate) tls_client_key: Option<PathBuf>,
    /// Accept any TLS certificate (dangerous; logged on every connection).
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Connect timeout, e.g. 3s or 500ms.
    #[arg(long)]
    pub(crate) connect_timeout: Option<String>,
    /// Idle read/write timeout.
    #[arg(long)]
    pub(crate) idle_timeout: Option<String>,
    /// Whole-scan deadline base (plus --deadline-per-mib per MiB).
    #[arg(long)]
    pub(crate) deadline: Option<String>,
    /// Deadline growth per MiB.
    #[arg(long)]
    pub(crate) deadline_per_mib: Option<String>,
    /// Extra attempts after a failed scan.
    #[arg(long)]
    pub(crate) retries: Option<u32>,
    /// Wait before the first retry (doubling each time, with jitter), e.g. 100ms.
    #[arg(long)]
    pub(crate) retry_backoff: Option<String>,
    /// Longest wait between retries, e.g. 2s.
    #[arg(long)]
    pub(crate) retry_backoff_max: Option<String>,
    /// Send no `Allow: 204` (clean files then come back as a 200 echo).
    #[arg(long)]
    pub(crate) no_allow_204: bool,
    /// Use a service whose OPTIONS answer has no `ISTag` (RFC 3507 requires one).
    #[arg(long)]
    pub(crate) lenient_istag: bool,
    /// TCP keepalive idle time (e.g. 30s), or off.
    #[arg(long)]
    pub(crate) tcp_keepalive: Option<String>,
    /// A limit NAME=VALUE, any key of the config file's limits section (see the README),
    /// e.g. max-head as `max_head=65536`; repeat for several.
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub(crate) limits: Vec<String>,
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    match s {
        "failover" => Ok(Strategy::Failover),
        "round-robin" | "roundrobin" => Ok(Strategy::RoundRobin),
        _ => Err("failover or round-robin".into()),
    }
}
