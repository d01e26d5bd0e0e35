//! `icap-client`: test an ICAP server, scan files and folders, diagnose a setup.
//!
//! Exit codes (as clamscan): 0 every file clean, 1 something infected (or modified by the
//! server), 2 errors (failed or not scanned). `options` and `doctor`: 0 pass, 2 fail.
//!
//! This file starts the runtime and the logging and dispatches the subcommand; the
//! commands live in `cli/` and `bench/`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use icap_client::settings::parse_action;
use icap_client::{FileAction, Guard};

mod bench;
mod cli;

use cli::args::{Cli, Command};
use cli::settings::settings;

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
        // "Server marked down" is said once by the commands themselves (an ALERT line):
        // the library's log line would say it a second time.
        filter.push_str(",icap_client::client=error,icap_client::wire=off");
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
        // Colour only on a terminal: never escape sequences in a pipe or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .init();
}

async fn run(cli: Cli) -> Result<u8> {
    match &cli.command {
        Command::Options { urls, json, conn } => {
            let s = settings(&cli, conn, urls)?;
            let client = s.client_builder()?.build()?;
            cli::options::options(&client, *json).await
        }
        Command::Scan {
            paths,
            servers,
            jobs,
            json,
            remove,
            move_to,
            on_infected,
            delete_on_scan_fail,
            audit_log,
            no_progress,
            conn,
        } => {
            let s = settings(&cli, conn, servers)?;
            let client = s.client_builder()?.build()?;
            let mut policy = s.policy()?;
            // clamscan's convention: report unless told otherwise (--remove, --move, or
            // the config file's on_infected). The library's Policy::default() deletes.
            policy.on_infected = if *remove {
                FileAction::Delete
            } else if let Some(dir) = move_to {
                FileAction::Quarantine(dir.clone())
            } else if let Some(w) = on_infected {
                parse_action(w, s.policy.quarantine_dir.as_deref())?
            } else if s.policy.on_infected.is_some() {
                policy.on_infected
            } else {
                FileAction::Keep
            };
            if *delete_on_scan_fail {
                policy.delete_on_scan_fail = true;
            }
            if audit_log.is_some() {
                policy.audit_log.clone_from(audit_log);
            }
            let guard = Guard::new(client, policy)?;
            cli::scan::scan(guard, paths, *jobs, *json, *no_progress).await
        }
        Command::Doctor { url, json, conn } => {
            let urls: Vec<String> = url.iter().cloned().collect();
            let s = settings(&cli, conn, &urls)?;
            cli::doctor::doctor(&s, *json).await
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
