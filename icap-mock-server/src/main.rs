//! `icap-mock-server`: the mock ICAP antivirus server as a program.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use icap_mock_server::MockServer;
use icap_mock_server::config::ConfigFile;

/// A mock ICAP antivirus server: EICAR detection, vendor dialects, rules and faults.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
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

    let mut builder = MockServer::builder();
    let mut ca_out = args.ca_out.clone();
    let mut listen = args.listen;
    let mut admin = args.admin;
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
        let (b, file_ca_out) = file.apply(builder).map_err(|e| anyhow::anyhow!("{e}"))?;
        builder = b;
        ca_out = ca_out.or(file_ca_out);
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
