//! `icap-client bench`: a scan-throughput load generator for any ICAP server.
//!
//! It drives the library's own [`Client`](icap_client::Client) (pool, preview, framing): the
//! numbers are those of the engine an upload product would use, not of a second ICAP
//! implementation. See `run` for the loops, `report` for what is counted and `hist` for
//! the `--hdr-out` file.

mod hist;
mod report;
mod run;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use icap_client::ScanMeta;
use icap_client::settings::{Settings, parse_duration_of};

use crate::ConnArgs;
use report::Summary;
use run::{Bodies, Body, Plan};

/// `bench` and `bench merge`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct BenchCmd {
    #[command(subcommand)]
    pub command: Option<BenchSub>,
    #[command(flatten)]
    pub args: BenchArgs,
}

/// `bench` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum BenchSub {
    /// Combine `--hdr-out` files of several runs (machines) into one report.
    Merge {
        /// Files written by `bench --hdr-out`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Also write the merged histogram (and counts) to this file.
        #[arg(long)]
        hdr_out: Option<PathBuf>,
    },
}

/// Options of a load run.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Server URL; repeat for several (with --strategy round-robin to spread the load).
    #[arg(long = "server", short = 's')]
    pub servers: Vec<String>,
    /// Connections kept alive (per server).
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Scans in flight at once (default: --connections).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Open loop: scans per second, latency counted from each scan's intended send time.
    /// Without it: closed loop (each worker sends when its last scan is answered).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured time, e.g. 30s or 2m (default 10s unless --scans is given).
    #[arg(long)]
    pub duration: Option<String>,
    /// Measured scans to send (with --duration: whichever comes first).
    #[arg(long)]
    pub scans: Option<u64>,
    /// Time spent before measuring (connections opened, caches warm), e.g. 2s.
    #[arg(long)]
    pub warmup: Option<String>,
    /// Body size, or a weighted distribution such as 1KiB:70,1MiB:25,25MiB:5.
    #[arg(long, default_value = "1KiB")]
    pub size: String,
    /// Send the files of this folder (recursively) instead of generated bodies.
    #[arg(long, conflicts_with = "size")]
    pub corpus: Option<PathBuf>,
    /// Share of scans that send the EICAR test file (0 to 1); each must come back infected.
    #[arg(long, default_value_t = 0.0)]
    pub infected_ratio: f64,
    /// Seed of the body choice (the same seed sends the same sequence).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The whole report as JSON (durations in ms, latencies in µs).
    #[arg(long)]
    pub json: bool,
    /// Write the latency histogram (HdrHistogram interval log, V2 compressed, µs) and the
    /// counts to this file, for `bench merge`.
    #[arg(long)]
    pub hdr_out: Option<PathBuf>,
    /// Never show the live progress line.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Most scans in flight.
const MAX_CONCURRENCY: usize = 100_000;
/// Most bytes of bodies held in memory (generated or read from the corpus).
const MAX_BODY_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Most corpus files.
const MAX_CORPUS_FILES: usize = 100_000;
/// Highest open-loop rate.
const MAX_RATE: f64 = 10_000_000.0;

/// Parses `100`, `100B`, `4KiB`, `1MiB`, `2GiB`, `4K`/`1M`/`2G` (binary), `4KB`/`1MB`/`2GB`
/// (decimal).
pub(crate) fn parse_size(t: &str) -> Result<u64> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .with_context(|| format!("size {t:?}: expected a number of bytes such as 1KiB or 25MiB"))?;
    let mul: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" | "m" => 1 << 20,
        "GiB" | "G" | "g" => 1 << 30,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => bail!("size {t:?}: unknown unit {u:?} (B, KiB, MiB, GiB, KB, MB, GB)"),
    };
    n.checked_mul(mul)
        .with_context(|| format!("size {t:?}: too large"))
}

/// Parses `1KiB` or `1KiB:70,1MiB:25,25MiB:5` into (size, weight) pairs.
pub(crate) fn parse_sizes(t: &str) -> Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for part in t.split(',') {
        let (size, weight) = match part.split_once(':') {
            Some((s, w)) => (
                parse_size(s)?,
                w.trim()
                    .parse::<u64>()
                    .with_context(|| format!("--size {part:?}: the weight is not a number"))?,
            ),
            None => (parse_size(part)?, 1),
        };
        if weight > 0 {
            out.push((size, weight));
        }
    }
    if out.is_empty() {
        bail!("--size {t:?}: no size with a weight above 0");
    }
    Ok(out)
}

/// Generated bodies: printable text that no scanner flags.
fn generated(size: u64) -> Bytes {
    const PATTERN: &[u8] = b"icap-client bench body, harmless text. ";
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    PATTERN
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect::<Vec<u8>>()
        .into()
}

fn bodies(a: &BenchArgs) -> Result<Bodies> {
    if !(0.0..=1.0).contains(&a.infected_ratio) {
        bail!("--infected-ratio {}: between 0 and 1", a.infected_ratio);
    }
    let mut clean = Vec::new();
    let mut held = 0u64;
    if let Some(dir) = &a.corpus {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        crate::collect(std::slice::from_ref(dir), &mut files, &mut errors);
        if let Some((p, e)) = errors.first() {
            bail!("--corpus {}: {e}", crate::shown_path(p));
        }
        if files.len() > MAX_CORPUS_FILES {
            bail!(
                "--corpus: {} files, at most {MAX_CORPUS_FILES}",
                files.len()
            );
        }
        for f in &files {
            let len = std::fs::metadata(f)
                .with_context(|| crate::shown_path(f))?
                .len();
            held = held.saturating_add(len);
            if held > MAX_BODY_BYTES {
                bail!(
                    "--corpus: more than {MAX_BODY_BYTES} bytes; the bench holds its bodies in memory"
                );
            }
            let bytes = std::fs::read(f).with_context(|| crate::shown_path(f))?;
            let name = f
                .file_name()
                .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
            clean.push((
                Body {
                    bytes: bytes.into(),
                    meta: ScanMeta::new(name),
                    eicar: false,
                },
                1,
            ));
        }
        if clean.is_empty() && a.infected_ratio < 1.0 {
            bail!("--corpus {}: no files", crate::shown_path(dir));
        }
    } else {
        for (size, weight) in parse_sizes(&a.size)? {
            held = held.saturating_add(size);
            if held > MAX_BODY_BYTES {
                bail!("--size: bodies of more than {MAX_BODY_BYTES} bytes in all");
            }
            clean.push((
                Body {
                    bytes: generated(size),
                    meta: ScanMeta::new(format!("bench-{size}.txt")),
                    eicar: false,
                },
                weight,
            ));
        }
    }
    Ok(Bodies {
        clean,
        eicar: Body {
            bytes: crate::eicar().into(),
            meta: ScanMeta::new("eicar.com"),
            eicar: true,
        },
        infected_ratio: a.infected_ratio,
        seed: a.seed,
    })
}

/// The plan of `bench` with these settings.
pub(crate) fn plan(a: &BenchArgs, s: &Settings, progress: bool) -> Result<Plan> {
    if a.connections == 0 {
        bail!("--connections: at least 1");
    }
    let concurrency = a.concurrency.unwrap_or(a.connections as usize);
    if concurrency == 0 || concurrency > MAX_CONCURRENCY {
        bail!("--concurrency {concurrency}: 1 to {MAX_CONCURRENCY}");
    }
    if let Some(r) = a.rate {
        if !(r.is_finite() && r > 0.0 && r <= MAX_RATE) {
            bail!("--rate {r}: above 0, at most {MAX_RATE} per second");
        }
    }
    if a.scans == Some(0) {
        bail!("--scans: at least 1");
    }
    let duration = match (&a.duration, a.scans) {
        (Some(d), _) => Some(parse_duration_of("--duration", d)?),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    if duration == Some(Duration::ZERO) {
        bail!("--duration: above 0");
    }
    let warmup = match &a.warmup {
        Some(w) => parse_duration_of("--warmup", w)?,
        None => Duration::ZERO,
    };
    let client = s
        .client_builder()?
        .max_connections(a.connections)
        // A retry would hide the failure it recovers from: each error is counted instead.
        .retries(s.retries.unwrap_or(0))
        .body_digest(false)
        .build()?;
    Ok(Plan {
        servers: client.servers(),
        client,
        bodies: Arc::new(bodies(a)?),
        concurrency,
        rate: a.rate,
        duration,
        scans: a.scans,
        warmup,
        progress,
        connections: u64::from(a.connections),
    })
}

fn ctrl_c() -> run::Interrupt {
    Box::pin(async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler: the run ends by its own bounds.
            std::future::pending::<()>().await;
        }
    })
}

/// Prints the report and writes the histogram file; the exit code: 1 on a finding
/// (an EICAR body not reported infected), 2 when no scan was answered, else 0.
fn finish(
    summary: &Summary,
    h: &hdrhistogram::Histogram<u64>,
    json: bool,
    hdr_out: Option<&Path>,
) -> Result<u8> {
    if let Some(p) = hdr_out {
        std::fs::write(p, hist::encode(summary, h)?)
            .with_context(|| format!("--hdr-out {}", crate::shown_path(p)))?;
    }
    if json {
        println!("{}", report::to_json(summary, h));
    } else {
        print!("{}", report::to_text(summary, h));
    }
    Ok(if !report::findings(&summary.counts).is_empty() {
        1
    } else if summary.counts.verdicts() == 0 {
        2
    } else {
        0
    })
}

/// `icap-client bench`.
pub(crate) async fn bench(a: &BenchArgs, s: &Settings) -> Result<u8> {
    let progress = !a.json && !a.no_progress && std::io::stderr().is_terminal();
    let plan = plan(a, s, progress)?;
    let (summary, h) = run::run(plan, ctrl_c()).await;
    finish(&summary, &h, a.json, a.hdr_out.as_deref())
}

/// `icap-client bench merge FILES...`.
pub(crate) fn merge(files: &[PathBuf], json: bool, hdr_out: Option<&Path>) -> Result<u8> {
    let mut parts = Vec::new();
    let mut total = hist::new_histogram();
    for f in files {
        let (s, h) = hist::read_file(f)?;
        total
            .add(&h)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", crate::shown_path(f)))?;
        parts.push(s.unwrap_or_else(|| Summary {
            mode: "unknown".into(),
            runs: 1,
            ..Summary::default()
        }));
    }
    let summary = Summary::merge(&parts);
    finish(&summary, &total, json, hdr_out)
}
