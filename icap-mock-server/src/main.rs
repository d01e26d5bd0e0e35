//! `icap-mock-server`: the mock ICAP antivirus server as a program.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use icap_mock_server::config::ConfigFile;
use icap_mock_server::{Dialect, MockServer, MockServerBuilder, ServiceConfig};

/// The end of `--help`: the dialects and where the rest is documented.
fn after_help() -> String {
    let names: Vec<&str> = Dialect::ALL.iter().map(|d| d.name()).collect();
    format!(
        "Dialects (--dialect, --service NAME=DIALECT, `dialect =` in the config file):\n  {}\n\n\
         The config file (--config FILE) sets services, rules, limits and TLS: see the\n\
         \"Configuration file\" section of icap-mock-server's README.md; the admin API\n\
         (--admin ADDR) is in its \"Admin API\" section.",
        names.join(", ")
    )
}

/// `--service NAME[=DIALECT]`.
fn parse_service(s: &str) -> Result<(String, Option<Dialect>), String> {
    let (name, dialect) = match s.split_once('=') {
        Some((n, d)) => (n, Some(d.parse::<Dialect>().map_err(|e| e.to_string())?)),
        None => (s, None),
    };
    if name.is_empty() || name.contains(['/', '?', ' ']) {
        return Err(format!(
            "service name {name:?}: give a path segment like avscan"
        ));
    }
    Ok((name.to_owned(), dialect))
}

/// A mock ICAP antivirus server: EICAR detection, vendor dialects, rules and faults.
#[derive(Debug, Parser)]
#[command(version, about, after_help = after_help())]
struct Args {
    /// Default dialect of every service the flags create (and of `avscan` when none is
    /// given); a config file's services keep their own.
    #[arg(long, value_name = "DIALECT")]
    dialect: Option<Dialect>,
    /// A service (repeatable), answering in DIALECT or the --dialect default. Without
    /// any, one service `avscan`.
    #[arg(long = "service", value_name = "NAME[=DIALECT]", value_parser = parse_service)]
    services: Vec<(String, Option<Dialect>)>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:1344")]
    listen: Option<SocketAddr>,
    /// Configuration file (TOML): services, rules, limits, TLS.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve icaps:// with a certificate generated at start.
    #[arg(long)]
    tls: bool,
    /// Write the generated CA certificate (PEM) to this file.
    #[arg(long, requires = "tls")]
    ca_out: Option<PathBuf>,
    /// PEM certificate chain for icaps://.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key for icaps://.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM file).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Serve the HTTP admin API on this address.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Proxy mode: forward requests no rule answers to this `icap[s]://host:port/service`.
    #[arg(long)]
    upstream: Option<String>,
    /// PEM CA file the `icaps://` upstream's certificate must chain to (default: web roots).
    #[arg(long, requires = "upstream")]
    upstream_ca: Option<PathBuf>,
    /// What the client gets when the upstream fails: `status` (502/504) or `close`.
    #[arg(long, requires = "upstream", default_value = "status")]
    upstream_failure: String,
    /// Milliseconds to wait for the upstream's next byte.
    #[arg(long, requires = "upstream", default_value_t = 60_000)]
    upstream_timeout_ms: u64,
    /// Transport faults on the proxied path, e.g. `latency=200,jitter=50,slice=7,cut_down=100:reset`
    /// (see the README).
    #[arg(long, requires = "upstream")]
    transport_faults: Option<String>,
    /// Idle keep-alive connections to the upstream kept for the next requests (0: a new
    /// connection per request).
    #[arg(long, requires = "upstream", default_value_t = icap_mock_server::proxy::DEFAULT_MAX_IDLE)]
    upstream_max_idle: usize,
    /// Body bytes held back while a body rule has not decided (0: only head rules decide).
    #[arg(long, requires = "upstream", default_value_t = icap_mock_server::proxy::DEFAULT_HOLD_LIMIT)]
    upstream_hold_bytes: u64,
    /// Record every proxied exchange into this directory.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Keep request bodies in the recording when they are at most this many bytes on the
    /// wire (default: digest and length only).
    #[arg(long, requires = "record", default_value_t = 0)]
    record_bodies_up_to: usize,
    /// Answer from the recording in this directory instead of the built-in dialects.
    #[arg(long, conflicts_with = "upstream")]
    replay: Option<PathBuf>,
    /// What an unmatched request gets in replay mode: a status number or `close`.
    #[arg(long, requires = "replay", default_value = "500")]
    replay_unmatched: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Replays a recording's requests against a built-in dialect and reports, field by
    /// field, where the dialect differs from what the real server sent.
    VerifyDialect {
        /// The recording directory.
        dir: PathBuf,
        /// The built-in dialect to compare (default c-icap).
        #[arg(long, default_value = "c-icap")]
        dialect: String,
    },
}

/// Proxy, record and replay modes from the flags.
fn modes(args: &Args, mut builder: MockServerBuilder) -> anyhow::Result<MockServerBuilder> {
    if let Some(url) = &args.upstream {
        let mut up = icap_mock_server::proxy::Upstream::parse(url)?
            .with_failure(
                icap_mock_server::proxy::UpstreamFailure::parse(&args.upstream_failure)
                    .map_err(|e| anyhow::anyhow!(e))?,
            )
            .with_timeout(std::time::Duration::from_millis(args.upstream_timeout_ms))
            .with_max_idle(args.upstream_max_idle)
            .with_hold_limit(args.upstream_hold_bytes);
        if let Some(spec) = &args.transport_faults {
            up = up.with_transport_faults(
                icap_mock_server::transport_faults::TransportFaults::parse(spec)
                    .map_err(|e| anyhow::anyhow!(e))?,
            );
        }
        if let Some(ca) = &args.upstream_ca {
            let pem =
                std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
            up = up.with_ca_pem(&pem)?;
        }
        builder = builder.upstream(up);
    }
    if let Some(dir) = &args.record {
        builder = builder.record(
            icap_mock_server::record::RecordSettings::new(dir)
                .keep_bodies_up_to(args.record_bodies_up_to),
        );
    }
    if let Some(dir) = &args.replay {
        let unmatched = if args.replay_unmatched.eq_ignore_ascii_case("close") {
            icap_mock_server::replay::Unmatched::Close
        } else {
            icap_mock_server::replay::Unmatched::Status(
                args.replay_unmatched
                    .parse()
                    .with_context(|| format!("--replay-unmatched {:?}", args.replay_unmatched))?,
            )
        };
        builder = builder.replay(
            icap_mock_server::replay::Replay::load(dir)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_unmatched(unmatched),
        );
    }
    Ok(builder)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }

    if let Some(Command::VerifyDialect { dir, dialect }) = &args.command {
        let dialect: icap_mock_server::Dialect =
            serde_json::from_value(serde_json::Value::String(dialect.clone()))
                .map_err(|e| anyhow::anyhow!("dialect {dialect:?}: {e}"))?;
        let report = icap_mock_server::verify::verify_dialect(dir, dialect)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        print!("{report}");
        std::process::exit(i32::from(!report.is_match()));
    }

    let mut builder = modes(&args, MockServer::builder())?;
    let mut ca_out = args.ca_out.clone();
    let mut listen = args.listen;
    let mut admin = args.admin;
    let mut config_services = false;
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file =
            ConfigFile::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let explicit_listen = std::env::args().any(|a| a.starts_with("--listen"));
        if !explicit_listen && let Some(l) = &file.listen {
            listen = Some(l.parse().with_context(|| format!("listen = {l:?}"))?);
        }
        if admin.is_none()
            && let Some(a) = &file.admin
        {
            admin = Some(a.parse().with_context(|| format!("admin = {a:?}"))?);
        }
        let settings = file.settings().map_err(|e| anyhow::anyhow!("{e}"))?;
        ca_out = ca_out.or_else(|| settings.ca_out.clone());
        config_services = !settings.services.is_empty();
        builder = builder.config(settings);
    }
    let default_dialect = args.dialect.unwrap_or_default();
    for (name, dialect) in &args.services {
        builder =
            builder.service(ServiceConfig::new(name).dialect(dialect.unwrap_or(default_dialect)));
    }
    if args.services.is_empty() && !config_services {
        builder = builder.service(ServiceConfig::new("avscan").dialect(default_dialect));
    }
    if let Some(l) = listen {
        builder = builder.listen(l);
    }
    if let Some(a) = admin {
        builder = builder.admin(a);
    }
    if args.tls {
        builder = builder.tls_generated();
    }
    if let (Some(c), Some(k)) = (&args.cert, &args.key) {
        let cert =
            std::fs::read_to_string(c).with_context(|| format!("reading {}", c.display()))?;
        let key = std::fs::read_to_string(k).with_context(|| format!("reading {}", k.display()))?;
        builder = builder.tls_pem(&cert, &key);
    }
    if let Some(ca) = &args.client_ca {
        let pem =
            std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
        builder = builder.client_auth_ca_pem(&pem);
    }
    let server = builder.try_start().await.context("starting the server")?;
    if let (Some(path), Some(pem)) = (&ca_out, server.ca_pem()) {
        std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    // Scripts wait for these lines.
    println!("listening on {}", server.url());
    if let Some(a) = server.admin_addr() {
        println!("admin on http://{a}");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
