//! The command line: global flags and the subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::conn::ConnArgs;
use crate::bench;

#[derive(Parser, Debug)]
#[command(
    name = "icap-client",
    version,
    about = "ICAP antivirus client: test servers, scan files, diagnose setups"
)]
pub(crate) struct Cli {
    /// TOML configuration file; flags override it.
    #[arg(long, global = true, env = "ICAP_CLIENT_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Basic debug logging (each transaction) on stderr.
    #[arg(long, global = true)]
    pub(crate) debug: bool,
    /// Network payload logging: every ICAP head, and body bytes up to --debug-wire-cap.
    #[arg(long, global = true)]
    pub(crate) debug_wire: bool,
    /// Body bytes per message in the payload log.
    #[arg(long, global = true, default_value_t = 256)]
    pub(crate) debug_wire_cap: usize,
    /// Print the peak resident memory of this process (`VmHWM`) on stderr at exit.
    #[arg(long, global = true)]
    pub(crate) print_peak_memory: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
        /// Delete infected files (clamscan's --remove). Default: report only.
        #[arg(long, conflicts_with_all = ["move_to", "on_infected"])]
        remove: bool,
        /// Move infected files into DIR (clamscan's --move). Default: report only.
        #[arg(long = "move", value_name = "DIR", conflicts_with = "on_infected")]
        move_to: Option<PathBuf>,
        /// What to do with infected files, the long form: report (default), delete,
        /// quarantine=DIR.
        #[arg(long, value_name = "ACTION")]
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
