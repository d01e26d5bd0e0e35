//! `icap-client`: test an ICAP server, scan files and folders, diagnose a setup.
//!
//! Exit codes (as clamscan): 0 every file clean, 1 something infected (or modified by the
//! server), 2 errors (failed or not scanned). `options` and `doctor`: 0 pass, 2 fail.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod bench;
use clap::{Args, Parser, Subcommand};
use icap_client::settings::{
    DurationSetting, KeepaliveSetting, PreviewSetting, Settings, parse_action, parse_duration_of,
};
use icap_client::{
    Action, Client, Diagnosis, Event, Guard, NotScannedReason, Outcome, ScanMeta, Strategy, Verdict,
};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "icap-client",
    version,
    about = "ICAP antivirus client: test servers, scan files, diagnose setups"
)]
struct Cli {
    /// TOML configuration file; flags override it.
    #[arg(long, global = true, env = "ICAP_CLIENT_CONFIG")]
    config: Option<PathBuf>,
    /// Basic debug logging (each transaction) on stderr.
    #[arg(long, global = true)]
    debug: bool,
    /// Network payload logging: every ICAP head, and body bytes up to --debug-wire-cap.
    #[arg(long, global = true)]
    debug_wire: bool,
    /// Body bytes per message in the payload log.
    #[arg(long, global = true, default_value_t = 256)]
    debug_wire_cap: usize,
    /// Print the peak resident memory of this process (`VmHWM`) on stderr at exit.
    #[arg(long, global = true)]
    print_peak_memory: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The ICAP Test: OPTIONS with a diagnosis (refused, TLS, wrong service, RTT, ...).
    Options {
        /// Server URLs (`icap://host:1344/service`, `icaps://...`); default: the config's.
        urls: Vec<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Scan files and folders (recursively).
    Scan {
        /// Files and folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Server URL; repeat for failover (or --strategy round-robin).
        #[arg(long = "server", short = 's')]
        servers: Vec<String>,
        /// Files scanned at once (1 to 1024).
        #[arg(long, short = 'j', default_value_t = 4)]
        jobs: usize,
        /// One JSON object per file on stdout (and events as JSON on stderr).
        #[arg(long)]
        json: bool,
        /// What to do with infected files: delete (default), quarantine=DIR, report.
        #[arg(long)]
        on_infected: Option<String>,
        /// Delete files whose scan failed (audit: "ICAP removed <path> due to scan fail").
        #[arg(long)]
        delete_on_scan_fail: bool,
        /// Append JSON lines audit entries to this file.
        #[arg(long)]
        audit_log: Option<PathBuf>,
        /// Never show a progress bar.
        #[arg(long)]
        no_progress: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Check a server end to end: OPTIONS, TLS, clean sample, EICAR, large and oversize samples.
    Doctor {
        /// Server URL; default: the config's first server.
        url: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Load test: scans/s and latency of a server, closed or open loop (`bench merge` too).
    Bench(bench::BenchCmd),
}

/// Connection settings shared by all commands (each overrides the config file).
#[derive(Args, Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // command line switches
struct ConnArgs {
    /// ICAP server host ("ICAP Remote Hostname"), instead of a URL.
    #[arg(long)]
    host: Option<String>,
    /// ICAP port (default 1344).
    #[arg(long)]
    port: Option<u16>,
    /// ICAP service name (the URL path).
    #[arg(long)]
    service: Option<String>,
    /// Secure ICAP (TLS) for --host.
    #[arg(long)]
    secure: bool,
    /// failover or round-robin.
    #[arg(long, value_parser = parse_strategy)]
    strategy: Option<Strategy>,
    /// Local address to connect from ("Server Local IP").
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Files larger than this many bytes are not scanned (0: no limit; default 25 MiB).
    #[arg(long)]
    max_size: Option<u64>,
    /// Use REQMOD instead of RESPMOD.
    #[arg(long)]
    reqmod: bool,
    /// Preview: auto (from OPTIONS), off, or a number of bytes.
    #[arg(long)]
    preview: Option<String>,
    /// Extra ICAP header NAME:VALUE for every scan (e.g. X-FILECLOUD-USER-NAME:alice).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Send no identity or extra headers at all.
    #[arg(long)]
    no_identity_headers: bool,
    /// Trust only the CAs in this PEM file.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// TLS server name (SNI and verification) instead of the host.
    #[arg(long)]
    tls_sni: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "tls_client_key")]
    tls_client_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, requires = "tls_client_cert")]
    tls_client_key: Option<PathBuf>,
    /// Accept any TLS certificate (dangerous; logged on every connection).
    #[arg(long)]
    insecure: bool,
    /// Connect timeout, e.g. 3s or 500ms.
    #[arg(long)]
    connect_timeout: Option<String>,
    /// Idle read/write timeout.
    #[arg(long)]
    idle_timeout: Option<String>,
    /// Whole-scan deadline base (plus --deadline-per-mib per MiB).
    #[arg(long)]
    deadline: Option<String>,
    /// Deadline growth per MiB.
    #[arg(long)]
    deadline_per_mib: Option<String>,
    /// Extra attempts after a failed scan.
    #[arg(long)]
    retries: Option<u32>,
    /// Wait before the first retry (doubling each time, with jitter), e.g. 100ms.
    #[arg(long)]
    retry_backoff: Option<String>,
    /// Longest wait between retries, e.g. 2s.
    #[arg(long)]
    retry_backoff_max: Option<String>,
    /// Send no `Allow: 204` (clean files then come back as a 200 echo).
    #[arg(long)]
    no_allow_204: bool,
    /// Use a service whose OPTIONS answer has no `ISTag` (RFC 3507 requires one).
    #[arg(long)]
    lenient_istag: bool,
    /// TCP keepalive idle time (e.g. 30s), or off.
    #[arg(long)]
    tcp_keepalive: Option<String>,
    /// A limit NAME=VALUE, any key of the config file's limits section (see the README),
    /// e.g. max-head as `max_head=65536`; repeat for several.
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    limits: Vec<String>,
}

/// Quoted and escaped, for messages that echo what the user typed.
fn escape(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

/// Text from a file name or a server, printed as is unless it holds a control character
/// (a line break would forge an output line, an escape sequence would drive the terminal):
/// then quoted and escaped.
fn shown(s: &str) -> String {
    if s.chars().any(char::is_control) {
        escape(s)
    } else {
        s.to_owned()
    }
}

fn shown_path(p: &std::path::Path) -> String {
    shown(&p.to_string_lossy())
}

/// Files scanned at once, at most this many (more would only queue in the pool).
const MAX_JOBS: usize = 1024;

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    match s {
        "failover" => Ok(Strategy::Failover),
        "round-robin" | "roundrobin" => Ok(Strategy::RoundRobin),
        _ => Err("failover or round-robin".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("icap-client: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let peak = cli.print_peak_memory;
    let result = rt.block_on(run(cli));
    if peak {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: unknown");
        eprintln!("peak memory {}", hwm.trim_start_matches("VmHWM:").trim());
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("icap-client: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let mut filter = String::from("warn");
    if cli.debug {
        filter.push_str(",icap_client=debug");
    } else {
        filter.push_str(",icap_client::wire=off");
    }
    if cli.debug_wire {
        filter.push_str(",icap_client::wire=debug");
    }
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .init();
}

/// The config file (if any) with the flags applied over it.
fn settings(cli: &Cli, conn: &ConnArgs, urls: &[String]) -> Result<Settings> {
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
    if cli.debug_wire {
        s.logging.payload = true;
        s.logging.payload_body_cap = Some(cli.debug_wire_cap);
    }
    Ok(s)
}

async fn run(cli: Cli) -> Result<u8> {
    match &cli.command {
        Command::Options { urls, json, conn } => {
            let s = settings(&cli, conn, urls)?;
            let client = s.client_builder()?.build()?;
            options(&client, *json).await
        }
        Command::Scan {
            paths,
            servers,
            jobs,
            json,
            on_infected,
            delete_on_scan_fail,
            audit_log,
            no_progress,
            conn,
        } => {
            let s = settings(&cli, conn, servers)?;
            let client = s.client_builder()?.build()?;
            let mut policy = s.policy()?;
            if let Some(w) = on_infected {
                policy.on_infected = parse_action(w, s.policy.quarantine_dir.as_deref())?;
            }
            if *delete_on_scan_fail {
                policy.delete_on_scan_fail = true;
            }
            if audit_log.is_some() {
                policy.audit_log.clone_from(audit_log);
            }
            let guard = Guard::new(client, policy)?;
            scan(guard, paths, *jobs, *json, *no_progress).await
        }
        Command::Doctor { url, json, conn } => {
            let urls: Vec<String> = url.iter().cloned().collect();
            let s = settings(&cli, conn, &urls)?;
            doctor(&s, *json).await
        }
        Command::Bench(b) => match &b.command {
            Some(bench::BenchSub::Merge {
                files,
                json,
                hdr_out,
            }) => bench::merge(files, *json, hdr_out.as_deref()),
            None => {
                let s = settings(&cli, &b.args.conn, &b.args.servers)?;
                bench::bench(&b.args, &s).await
            }
        },
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0),
    )
}

async fn options(client: &Client, json: bool) -> Result<u8> {
    let reports = client.test().await;
    let mut code = 0;
    for r in &reports {
        if !r.ok {
            code = 2;
        }
        if json {
            println!("{}", serde_json::to_string(r)?);
            continue;
        }
        println!("{}: {}", r.server, if r.ok { "OK" } else { "FAILED" });
        println!(
            "  diagnosis: {}",
            serde_json::to_value(&r.diagnosis)?["kind"]
                .as_str()
                .unwrap_or("?")
        );
        println!("  hint: {}", r.hint);
        if let Some(e) = &r.error {
            println!("  error: {}", shown(&e.to_string()));
        }
        if r.diagnosis == Diagnosis::MissingIsTag {
            println!(
                "  UNUSABLE: the service sent no ISTag (RFC 3507 section 4.10.2); scans will not be sent to it"
            );
        }
        println!("  connect: {}  rtt: {}", ms(r.connect), ms(r.rtt));
        if let (Some(v), Some(c)) = (&r.tls_version, &r.tls_cipher) {
            println!("  tls: {v} {c}");
        }
        if let Some(o) = &r.options {
            println!("  methods: {}", o.methods.join(", "));
            if let Some(s) = &o.service {
                println!("  service: {}", shown(s));
            }
            if let Some(t) = &o.istag {
                println!("  istag: {}", shown(t));
            }
            println!(
                "  preview: {}  allow 204: {}  max-connections: {}  options-ttl: {}",
                o.preview.map_or("-".into(), |p| p.to_string()),
                o.allow_204,
                o.max_connections.map_or("-".into(), |p| p.to_string()),
                o.options_ttl.map_or("-".into(), |p| format!("{p} s")),
            );
            for w in &o.warnings {
                println!("  warning: {}", shown(w));
            }
        }
    }
    Ok(code)
}

fn collect(paths: &[PathBuf], out: &mut Vec<PathBuf>, errors: &mut Vec<(PathBuf, String)>) {
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut children: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    children.sort();
                    collect(&children, out, errors);
                }
                Err(e) => errors.push((p.clone(), e.to_string())),
            },
            Ok(m) if m.is_file() => out.push(p.clone()),
            Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(p) {
                Ok(t) if t.is_file() => out.push(p.clone()),
                // Symlinked folders are not followed (no loops); dangling links are skipped.
                _ => {}
            },
            Ok(_) => {}
            Err(e) => errors.push((p.clone(), e.to_string())),
        }
    }
}

fn line(o: &Outcome) -> String {
    let path = shown_path(&o.audit.path);
    let action = match &o.action {
        Action::None | Action::Kept => String::new(),
        Action::Deleted => " (deleted)".into(),
        Action::Quarantined { to } => format!(" (quarantined to {})", shown_path(to)),
        Action::ActionFailed { error } => format!(" (ACTION FAILED: {})", shown(error)),
    };
    let what = match &o.report.verdict {
        Verdict::Clean => "OK".to_owned(),
        Verdict::Infected { threats } => format!(
            "{} FOUND",
            threats
                .iter()
                .map(|t| shown(&t.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Verdict::Modified { http_status, .. } => format!(
            "MODIFIED by the server (HTTP {})",
            http_status.map_or("-".into(), |s| s.to_string())
        ),
        Verdict::NotScanned { reason } => match reason {
            NotScannedReason::TooLarge { size, limit } => {
                format!("NOT SCANNED (too large: {size} > {limit} bytes)")
            }
            NotScannedReason::Unscannable { code, status } => {
                format!("NOT SCANNED (server: {code}, status {status})")
            }
            NotScannedReason::IgnoredByServer { extension } => {
                format!("NOT SCANNED (server ignores .{extension})")
            }
            other => format!("NOT SCANNED ({other:?})"),
        },
        Verdict::Failed { error } => format!("ERROR ({error})"),
    };
    format!("{path}: {what}{action}")
}

async fn scan(
    guard: Guard,
    paths: &[PathBuf],
    jobs: usize,
    json: bool,
    no_progress: bool,
) -> Result<u8> {
    let mut files = Vec::new();
    let mut walk_errors = Vec::new();
    collect(paths, &mut files, &mut walk_errors);
    let mut code = 0u8;
    for (p, e) in &walk_errors {
        code = 2;
        if json {
            println!(
                "{}",
                json!({"path": p, "verdict": "failed", "error": {"kind": "io", "message": e}})
            );
        } else {
            println!("{}: ERROR ({})", shown_path(p), shown(e));
        }
    }
    let bar = if !json && !no_progress && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(files.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed} {msg}")
                .expect("static template is valid"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut events = guard.subscribe();
    let printer = tokio::spawn({
        let bar = bar.clone();
        async move {
            loop {
                match events.recv().await {
                    Ok(Event::Audit(_))
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Ok(e) => {
                        let text = if json {
                            serde_json::to_string(&e).unwrap_or_default()
                        } else {
                            match &e {
                                Event::Alert(a) => format!("ALERT: {}", a.message),
                                Event::Notice(n) => format!("NOTICE: {}", n.message),
                                Event::Audit(_) => String::new(),
                            }
                        };
                        bar.suspend(|| eprintln!("{text}"));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    });
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.clamp(1, MAX_JOBS)));
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in files.iter().enumerate() {
        let permit = sem.clone().acquire_owned().await?;
        let g = guard.clone();
        let f = f.clone();
        set.spawn(async move {
            let o = g.check_upload(&f, None).await;
            drop(permit);
            (i, o)
        });
    }
    let mut counts = [0usize; 5];
    let mut outcomes = Vec::new();
    while let Some(r) = set.join_next().await {
        let (i, o) = r.context("scan task")?;
        bar.inc(1);
        let k = match &o.report.verdict {
            Verdict::Clean => 0,
            Verdict::Infected { .. } => 1,
            Verdict::Modified { .. } => 2,
            Verdict::NotScanned { .. } => 3,
            Verdict::Failed { .. } => 4,
        };
        counts[k] += 1;
        code = match (code, k) {
            (_, 1 | 2) | (1, _) => 1,
            (_, 3 | 4) | (2, _) => 2,
            _ => code,
        };
        let text = if json {
            serde_json::to_string(&json!({
                "path": o.audit.path,
                "report": o.report,
                "action": o.action,
                "sha256": o.audit.sha256,
            }))?
        } else {
            line(&o)
        };
        bar.suspend(|| println!("{text}"));
        outcomes.push((i, o));
    }
    bar.finish_and_clear();
    // Let the printer drain the events of the last files.
    tokio::task::yield_now().await;
    drop(guard);
    let _ = tokio::time::timeout(Duration::from_millis(200), printer).await;
    if !json {
        eprintln!(
            "----------- SCAN SUMMARY -----------\nScanned files: {}\nClean: {}\nInfected files: {}\nModified: {}\nNot scanned: {}\nErrors: {}\nTime: {:.3} s",
            files.len(),
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            counts[4] + walk_errors.len(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(code)
}

/// The EICAR test file, assembled at run time so this binary does not itself match it.
fn eicar() -> Vec<u8> {
    let a = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$";
    let b = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    format!("{a}{b}").into_bytes()
}

struct Step {
    name: &'static str,
    pass: bool,
    detail: String,
    hint: String,
    time: Duration,
}

async fn doctor(s: &Settings, json: bool) -> Result<u8> {
    let client = s.client_builder()?.build()?;
    // `build` refuses a client without a server.
    let server = client.server(0).context("no ICAP server configured")?;
    let url = server.url().to_owned();
    let mut steps = Vec::new();

    let t = Instant::now();
    let report = client.test_server(&server).await;
    let preview = report.options.as_ref().and_then(|o| o.preview);
    steps.push(Step {
        name: "options",
        pass: report.ok,
        detail: match &report.options {
            Some(o) => {
                let mut d = format!(
                    "methods {}, preview {}, istag {}, rtt {}",
                    o.methods.join("/"),
                    o.preview.map_or("-".into(), |p| p.to_string()),
                    shown(&o.istag.clone().unwrap_or_default()),
                    ms(report.rtt)
                );
                for w in &o.warnings {
                    d.push_str("; warning: ");
                    d.push_str(&shown(w));
                }
                d
            }
            None if report.diagnosis == Diagnosis::MissingIsTag => format!(
                "UNUSABLE: no ISTag in the OPTIONS answer (RFC 3507 section 4.10.2): {}",
                report
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            None => report
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        },
        hint: if report.ok {
            String::new()
        } else {
            report.hint.clone()
        },
        time: t.elapsed(),
    });
    let tls_step = if url.starts_with("icaps://") {
        Step {
            name: "tls",
            pass: report.tls_version.is_some(),
            detail: match (&report.tls_version, &report.tls_cipher) {
                (Some(v), Some(c)) => format!(
                    "{v} {c}, certificate verified{}",
                    if s.tls.insecure {
                        " NOT (insecure mode)"
                    } else {
                        ""
                    }
                ),
                _ => report
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            },
            hint: if report.tls_version.is_some() {
                String::new()
            } else {
                report.hint.clone()
            },
            time: report.connect.unwrap_or_default(),
        }
    } else {
        Step {
            name: "tls",
            pass: true,
            detail: "plain icap:// (no TLS); use icaps:// for Secure ICAP".into(),
            hint: String::new(),
            time: Duration::ZERO,
        }
    };
    steps.push(tls_step);

    if report.ok {
        let t = Instant::now();
        let r = client
            .scan_bytes(
                &b"icap-client doctor: a clean sample\n"[..],
                &ScanMeta::new("clean.txt"),
            )
            .await;
        steps.push(Step {
            name: "clean sample",
            pass: r.verdict.is_clean(),
            detail: format!(
                "{} (status {})",
                r.verdict.label(),
                r.status.map_or("-".into(), |s| s.to_string())
            ),
            hint: match &r.verdict {
                Verdict::Clean => String::new(),
                Verdict::Failed { error } => icap_client::diagnose(error).1,
                _ => "a harmless text was not reported clean: check the server's policy".into(),
            },
            time: t.elapsed(),
        });
        let t = Instant::now();
        let r = client
            .scan_bytes(eicar(), &ScanMeta::new("eicar.com"))
            .await;
        steps.push(Step {
            name: "eicar sample",
            pass: r.verdict.is_infected(),
            detail: match &r.verdict {
                Verdict::Infected { threats } => format!("found {}", threats[0].name),
                v => v.label().to_owned(),
            },
            hint: if r.verdict.is_infected() {
                String::new()
            } else {
                "the EICAR test file was not detected: is the antivirus engine loaded with signatures?".into()
            },
            time: t.elapsed(),
        });
        // Past the preview, but never more than 8 MiB in memory whatever Preview the
        // server announced (it is a number from the peer).
        let big = usize::try_from(
            preview
                .unwrap_or(1024)
                .saturating_mul(4)
                .clamp(256 * 1024, 8 * 1024 * 1024),
        )
        .unwrap_or(256 * 1024);
        let t = Instant::now();
        let r = client
            .scan_bytes(vec![b'a'; big], &ScanMeta::new("large-sample.txt"))
            .await;
        steps.push(Step {
            name: "large sample",
            pass: r.verdict.is_clean(),
            detail: format!("{big} bytes (past the preview): {}", r.verdict.label()),
            hint: match &r.verdict {
                Verdict::Clean => String::new(),
                Verdict::Failed { error } => icap_client::diagnose(error).1,
                _ => "a large harmless file was not reported clean".into(),
            },
            time: t.elapsed(),
        });
    }
    let limit = client.max_size().unwrap_or(icap_client::DEFAULT_MAX_SIZE);
    let oversize = s.client_builder()?.max_size(Some(limit)).build()?;
    let t = Instant::now();
    let r = oversize
        .scan_reader(
            tokio::io::repeat(0),
            Some(limit.saturating_add(1)),
            &ScanMeta::new("oversize.bin"),
        )
        .await;
    steps.push(Step {
        name: "oversize sample",
        pass: matches!(
            r.verdict,
            Verdict::NotScanned {
                reason: NotScannedReason::TooLarge { .. }
            }
        ),
        detail: format!(
            "{} bytes with a {limit} byte limit: {}",
            limit.saturating_add(1),
            r.verdict.label()
        ),
        hint: String::new(),
        time: t.elapsed(),
    });

    let all = steps.iter().all(|s| s.pass);
    if json {
        let v: Vec<_> = steps
            .iter()
            .map(|s| json!({"step": s.name, "pass": s.pass, "detail": s.detail, "hint": s.hint, "ms": s.time.as_secs_f64() * 1000.0}))
            .collect();
        println!("{}", json!({"server": url, "pass": all, "steps": v}));
    } else {
        println!("icap-client doctor {url}");
        for s in &steps {
            println!(
                "  [{}] {:<16} {:>9}  {}",
                if s.pass { "PASS" } else { "FAIL" },
                s.name,
                format!("{:.1} ms", s.time.as_secs_f64() * 1000.0),
                s.detail
            );
            if !s.hint.is_empty() {
                println!("         hint: {}", s.hint);
            }
        }
        println!(
            "{}",
            if all {
                "all checks passed"
            } else {
                "some checks FAILED"
            }
        );
    }
    Ok(if all { 0 } else { 2 })
}
