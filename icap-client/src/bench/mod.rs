//! `icap-client bench`: a scan-throughput load generator for any ICAP server.
//!
//! It drives the library's own [`Client`](icap_client::Client) (pool, preview, framing): the
//! numbers are those of the engine an upload product would use, not of a second ICAP
//! implementation. See `run` for the loops, `report` for what is counted and `hist` for
//! the `--hdr-out` file.

mod counts;
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
use icap_client::settings::{Settings, parse_duration_of};
use icap_client::{HealthConfig, ScanMeta};

use crate::cli::conn::ConnArgs;
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
    /// How long to wait, after --duration, for the scans still in flight before abandoning
    /// them (they count as late or abandoned, never in the rate).
    #[arg(long, default_value = "5s")]
    pub grace: String,
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
    /// Write the latency histogram (`HdrHistogram` interval log, V2 compressed, µs) and the
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
        use crate::cli::files::{Skipped, Walk, collect};
        let mut walk = Walk::default();
        collect(std::slice::from_ref(dir), &mut walk);
        // Empty files stay in the corpus (the walk sets them apart for `scan`).
        let mut files: Vec<_> = walk.files.into_iter().map(|(p, _)| p).collect();
        files.extend(
            walk.skipped
                .into_iter()
                .filter(|(_, why)| *why == Skipped::EmptyFile)
                .map(|(p, _)| p),
        );
        if let Some((p, e)) = walk.errors.first() {
            bail!("--corpus {}: {e}", crate::cli::output::shown_path(p));
        }
        if files.len() > MAX_CORPUS_FILES {
            bail!(
                "--corpus: {} files, at most {MAX_CORPUS_FILES}",
                files.len()
            );
        }
        for f in &files {
            let len = std::fs::metadata(f)
                .with_context(|| crate::cli::output::shown_path(f))?
                .len();
            held = held.saturating_add(len);
            if held > MAX_BODY_BYTES {
                bail!(
                    "--corpus: more than {MAX_BODY_BYTES} bytes; the bench holds its bodies in memory"
                );
            }
            let bytes = std::fs::read(f).with_context(|| crate::cli::output::shown_path(f))?;
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
            bail!("--corpus {}: no files", crate::cli::output::shown_path(dir));
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
            bytes: crate::cli::files::eicar().into(),
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
    if let Some(r) = a.rate
        && !(r.is_finite() && r > 0.0 && r <= MAX_RATE)
    {
        bail!("--rate {r}: above 0, at most {MAX_RATE} per second");
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
    let grace = parse_duration_of("--grace", &a.grace)?;
    let warmup = match &a.warmup {
        Some(w) => parse_duration_of("--warmup", w)?,
        None => Duration::ZERO,
    };
    let mut builder = s.client_builder()?;
    if s.health.threshold.is_none() {
        // A server marked down would fail scans without sending them: the bench measures
        // the server, so every scan goes to it and each failure is counted as what it is.
        let mut h = HealthConfig {
            threshold: u32::MAX,
            ..HealthConfig::default()
        };
        if let Some(w) = &s.health.window {
            h.window = w.get("health.window")?;
        }
        if let Some(r) = &s.health.revival {
            h.revival = r.get("health.revival")?;
        }
        builder = builder.health(h);
    }
    let client = builder
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
        grace,
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
            .with_context(|| format!("--hdr-out {}", crate::cli::output::shown_path(p)))?;
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
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", crate::cli::output::shown_path(f)))?;
        parts.push(s.unwrap_or_else(|| Summary {
            mode: "unknown".into(),
            runs: 1,
            ..Summary::default()
        }));
    }
    let summary = Summary::merge(&parts);
    finish(&summary, &total, json, hdr_out)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use clap::Parser;
    use hdrhistogram::Histogram;
    use icap_mock_server::{Fault, Mock, MockServer, matchers};

    use super::*;

    /// Runs `icap-client bench ARGS` in process, ended early by `interrupt` if given.
    async fn bench_with(args: &[&str], interrupt: Option<Duration>) -> (Summary, Histogram<u64>) {
        let argv = ["icap-client", "bench"].iter().chain(args);
        let cli = crate::Cli::try_parse_from(argv).expect("valid arguments");
        let crate::Command::Bench(b) = &cli.command else {
            panic!("not bench")
        };
        let s = crate::settings(&cli, &b.args.conn, &b.args.servers).expect("settings");
        let plan = plan(&b.args, &s, false).expect("plan");
        let stop: run::Interrupt = match interrupt {
            Some(d) => Box::pin(tokio::time::sleep(d)),
            None => Box::pin(std::future::pending()),
        };
        run::run(plan, stop).await
    }

    async fn bench(args: &[&str]) -> (Summary, Histogram<u64>) {
        bench_with(args, None).await
    }

    fn p(h: &Histogram<u64>, q: f64) -> u64 {
        h.value_at_quantile(q)
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("25MiB").unwrap(), 25 << 20);
        assert_eq!(parse_size("2KB").unwrap(), 2000);
        for bad in ["", "KiB", "1XB", "-1", "99999999999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_sizes("1KiB:70,1MiB:25,25MiB:5").unwrap(),
            vec![(1024, 70), (1 << 20, 25), (25 << 20, 5)]
        );
        assert!(parse_sizes("1KiB:0").is_err());
        assert!(parse_sizes("1KiB:x").is_err());
    }

    #[test]
    fn the_body_choice_follows_the_weights_and_the_seed() {
        let a = crate::Cli::try_parse_from([
            "icap-client",
            "bench",
            "--size",
            "10:3,20:1",
            "--infected-ratio",
            "0.25",
        ])
        .unwrap();
        let crate::Command::Bench(b) = &a.command else {
            panic!()
        };
        let bodies = bodies(&b.args).unwrap();
        let (mut eicar, mut ten, mut twenty) = (0, 0, 0);
        for n in 0..40_000 {
            let body = bodies.pick(n);
            match (body.eicar, body.bytes.len()) {
                (true, _) => eicar += 1,
                (false, 10) => ten += 1,
                (false, 20) => twenty += 1,
                other => panic!("{other:?}"),
            }
            assert_eq!(
                bodies.pick(n).bytes,
                body.bytes,
                "the same scan, the same body"
            );
        }
        assert!((9_500..10_500).contains(&eicar), "{eicar}");
        assert!((21_500..23_500).contains(&ten), "{ten}");
        assert!((7_000..8_000).contains(&twenty), "{twenty}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_add_up_and_eicar_comes_back_infected() {
        let server = MockServer::start().await;
        let (s, h) = bench(&[
            "--server",
            &server.url(),
            "--scans",
            "300",
            "--connections",
            "4",
            "--size",
            "1KiB:3,70KiB:1",
            "--infected-ratio",
            "0.2",
        ])
        .await;
        let c = &s.counts;
        assert_eq!(c.sent, 300);
        assert_eq!(c.verdicts() + c.errors(), c.sent, "{c:?}");
        assert_eq!(c.errors(), 0, "{c:?}");
        assert_eq!(h.len(), 300);
        assert!(c.eicar_sent > 30, "{c:?}");
        assert_eq!(c.eicar_detected, c.eicar_sent);
        assert_eq!(c.infected, c.eicar_sent);
        assert_eq!(c.clean, 300 - c.eicar_sent);
        assert!(report::findings(c).is_empty());
        assert_eq!(s.abandoned, 0);
        // The server saw exactly the scans the report counts (its journal is written just
        // after the answer: wait for the last one).
        let mut scans = 0;
        for _ in 0..100 {
            scans = server
                .journal()
                .await
                .iter()
                .filter(|t| t.method == icap_mock_server::Method::Respmod)
                .count();
            if scans >= 300 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(scans, 300);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_eicar_body_answered_clean_is_a_finding() {
        let server = MockServer::start().await;
        Mock::given(matchers::body_contains(icap_mock_server::EICAR))
            .respond_with(icap_mock_server::Reply::clean())
            .mount(&server)
            .await;
        let (s, h) = bench(&[
            "--server",
            &server.url(),
            "--scans",
            "40",
            "--infected-ratio",
            "0.5",
        ])
        .await;
        assert!(s.counts.eicar_missed > 0, "{:?}", s.counts);
        let text = report::to_text(&s, &h);
        assert!(text.contains("FINDING:"), "{text}");
        assert_eq!(finish(&s, &h, true, None).unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_open_loop_holds_its_rate() {
        let server = MockServer::start().await;
        let (s, h) = bench(&[
            "--server",
            &server.url(),
            "--rate",
            "200",
            "--duration",
            "3s",
            "--connections",
            "4",
        ])
        .await;
        let c = &s.counts;
        assert!(
            (570..=630).contains(&c.sent),
            "{} sent at 200/s for 3 s",
            c.sent
        );
        assert_eq!(c.verdicts() + c.errors(), c.sent);
        assert_eq!(h.len(), c.sent);
        assert!(s.missed <= 5, "missed {}", s.missed);
        assert!(s.per_second.len() >= 2);
        for [n, _] in &s.per_second {
            assert!((150..=250).contains(n), "per second: {:?}", s.per_second);
        }
    }

    /// One scan stalls for a second. A closed loop waits with it and barely notices; an
    /// open loop at 100/s has 100 scans due during the stall, whose latency counts from when
    /// they were due.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn coordinated_omission_is_corrected() {
        async fn stalled_once() -> MockServer {
            let server = MockServer::start().await;
            let seen = AtomicU64::new(0);
            Mock::given(move |_: &icap_mock_server::Request| {
                seen.fetch_add(1, Ordering::Relaxed) == 50
            })
            .respond_with(Fault::delay(Duration::from_secs(1)))
            .mount(&server)
            .await;
            server
        }
        let server = stalled_once().await;
        let (open, ho) = bench(&[
            "--server",
            &server.url(),
            "--rate",
            "100",
            "--duration",
            "3s",
        ])
        .await;
        assert!(ho.max() >= 1_000_000, "max {} µs", ho.max());
        assert!(p(&ho, 0.99) >= 500_000, "open loop p99 {} µs", p(&ho, 0.99));
        assert!(open.counts.sent >= 250, "{:?}", open.counts);

        let server = stalled_once().await;
        let (_, hc) = bench(&["--server", &server.url(), "--duration", "2s"]).await;
        assert!(
            hc.max() >= 1_000_000,
            "the stall happened: max {} µs",
            hc.max()
        );
        assert!(
            p(&hc, 0.99) < 100_000,
            "closed loop p99 {} µs",
            p(&hc, 0.99)
        );
    }

    /// A scan the server holds past the end of the measured time neither stretches the
    /// window (the rate stays that of the window) nor keeps the run going past the grace
    /// period; it is counted as late, or abandoned, and said in a note.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stragglers_do_not_dilute_the_rate_or_hold_the_run() {
        async fn first_scan_held(d: Duration) -> MockServer {
            let server = MockServer::start().await;
            let seen = AtomicU64::new(0);
            Mock::given(move |r: &icap_mock_server::Request| {
                r.method == icap_mock_server::Method::Respmod
                    && seen.fetch_add(1, Ordering::Relaxed) == 0
            })
            .respond_with(Fault::delay(d))
            .mount(&server)
            .await;
            server
        }
        // Held 10 s, grace 300 ms: abandoned, and the run ends soon after its second.
        let server = first_scan_held(Duration::from_secs(10)).await;
        let t = std::time::Instant::now();
        let (s, h) = bench(&[
            "--server",
            &server.url(),
            "--connections",
            "2",
            "--duration",
            "1s",
            "--grace",
            "300ms",
        ])
        .await;
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(s.abandoned, 1, "{:?}", s.counts);
        assert!((900..=1100).contains(&s.duration_ms), "{}", s.duration_ms);
        let c = &s.counts;
        assert_eq!(c.verdicts() + c.errors() + s.abandoned, c.sent);
        // The other worker's last scan may end just after the window: late, not counted.
        assert!(c.late <= 1, "{c:?}");
        #[allow(clippy::cast_precision_loss)]
        let rate = (c.verdicts() + c.errors() - c.late) as f64 / (s.duration_ms as f64 / 1000.0);
        assert!(
            (s.scans_per_sec - rate).abs() < 1.0,
            "{} vs {rate}",
            s.scans_per_sec
        );
        let text = report::to_text(&s, &h);
        assert!(text.contains("NOTE: 1 scans were abandoned"), "{text}");
        assert_eq!(
            report::to_json(&s, &h)["warnings"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // Held 2.5 s, grace 3 s: answered late; in the latencies, not in the rate.
        let server = first_scan_held(Duration::from_millis(2500)).await;
        let (s, h) = bench(&[
            "--server",
            &server.url(),
            "--connections",
            "2",
            "--duration",
            "1s",
            "--grace",
            "3s",
        ])
        .await;
        let c = &s.counts;
        assert_eq!(s.abandoned, 0);
        assert!((1..=2).contains(&c.late), "{c:?}");
        assert_eq!(c.verdicts() + c.errors(), c.sent);
        assert!(h.max() >= 2_500_000, "max {} µs", h.max());
        assert!((900..=1100).contains(&s.duration_ms), "{}", s.duration_ms);
        assert!(s.drain_ms >= 1_000, "{}", s.drain_ms);
        #[allow(clippy::cast_precision_loss)]
        let rate = (c.verdicts() + c.errors() - c.late) as f64 / (s.duration_ms as f64 / 1000.0);
        assert!(
            (s.scans_per_sec - rate).abs() < 1.0,
            "{} vs {rate}",
            s.scans_per_sec
        );
        let text = report::to_text(&s, &h);
        assert!(text.contains("NOTE: "), "{text}");

        // A run whose scans all end on time has no note, whatever the last scans' timing.
        let server = MockServer::start().await;
        let (s, h) = bench(&[
            "--server",
            &server.url(),
            "--connections",
            "4",
            "--duration",
            "1s",
        ])
        .await;
        assert_eq!(s.abandoned, 0);
        assert!(
            report::warnings(&s).is_empty(),
            "{}",
            report::to_text(&s, &h)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupt_reports_what_was_done() {
        let server = MockServer::start().await;
        let t = std::time::Instant::now();
        let (s, h) = bench_with(
            &["--server", &server.url(), "--duration", "60s"],
            Some(Duration::from_millis(700)),
        )
        .await;
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(s.interrupted);
        let c = &s.counts;
        assert!(c.sent > 0);
        assert_eq!(c.verdicts() + c.errors() + s.abandoned, c.sent);
        assert_eq!(h.len(), c.verdicts() + c.errors());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_are_counted_by_kind() {
        let refused = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("icap://127.0.0.1:{refused}/avscan");
        let (s, _) = bench(&["--server", &url, "--scans", "5"]).await;
        assert_eq!(s.counts.sent, 5);
        assert_eq!(s.counts.errors(), 5, "{:?}", s.counts);
        assert_eq!(s.counts.refused, 5, "{:?}", s.counts);
        assert_eq!(finish(&s, &hist::new_histogram(), true, None).unwrap(), 2);

        let server = MockServer::start().await;
        Mock::given(matchers::method(icap_mock_server::Method::Respmod))
            .respond_with(icap_mock_server::Reply::status(503))
            .mount(&server)
            .await;
        let (s, _) = bench(&["--server", &server.url(), "--scans", "5"]).await;
        assert_eq!(s.counts.overloaded, 5, "{:?}", s.counts);
    }

    /// Two runs written with --hdr-out and merged give exactly the histogram of both runs'
    /// values, and the sum of their counts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn merge_equals_one_histogram_of_both_runs() {
        let server = MockServer::start().await;
        let args = [
            "--server",
            &server.url(),
            "--scans",
            "200",
            "--connections",
            "2",
        ];
        let (s1, h1) = bench(&args).await;
        let (s2, h2) = bench(&args).await;
        let dir = tempfile::tempdir().unwrap();
        let (f1, f2) = (dir.path().join("a.hlog"), dir.path().join("b.hlog"));
        std::fs::write(&f1, hist::encode(&s1, &h1).unwrap()).unwrap();
        std::fs::write(&f2, hist::encode(&s2, &h2).unwrap()).unwrap();

        let mut both = hist::new_histogram();
        both.add(&h1).unwrap();
        both.add(&h2).unwrap();
        let (r1, g1) = hist::read_file(&f1).unwrap();
        let (r2, g2) = hist::read_file(&f2).unwrap();
        let mut merged = hist::new_histogram();
        merged.add(&g1).unwrap();
        merged.add(&g2).unwrap();
        let m = Summary::merge(&[r1.unwrap(), r2.unwrap()]);

        assert_eq!(merged.len(), 400);
        assert_eq!(merged.len(), both.len());
        for v in both.iter_recorded() {
            assert_eq!(merged.count_at(v.value_iterated_to()), v.count_at_value());
        }
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(p(&merged, q), p(&both, q), "q {q}");
        }
        assert_eq!(merged.max(), both.max());
        assert_eq!(m.counts.sent, 400);
        assert_eq!(m.counts.clean, s1.counts.clean + s2.counts.clean);
        assert_eq!(m.runs, 2);
        let j = report::to_json(&m, &merged);
        assert_eq!(j["latency_us"]["count"], 400);
        assert_eq!(j["latency_us"]["p99"], p(&both, 0.99));
    }

    async fn respmod_and_reqmod(
        server: &MockServer,
        want: u64,
    ) -> Vec<icap_mock_server::Transaction> {
        for _ in 0..100 {
            let j: Vec<_> = server
                .journal()
                .await
                .into_iter()
                .filter(|t| t.method != icap_mock_server::Method::Options)
                .collect();
            if j.len() as u64 >= want {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the server did not see {want} scans");
    }

    /// The corpus is sent file by file under each file's name; REQMOD, a fixed preview and
    /// extra headers come from the same flags as `scan`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corpus_reqmod_preview_and_headers() {
        let server = MockServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), vec![b'a'; 3000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), vec![b'b'; 5]).unwrap();
        let (s, _) = bench(&[
            "--server",
            &server.url(),
            "--scans",
            "40",
            "--corpus",
            dir.path().to_str().unwrap(),
            "--reqmod",
            "--preview",
            "16",
            "-H",
            "X-Bench:yes",
        ])
        .await;
        assert_eq!(s.counts.sent, 40);
        assert_eq!(s.counts.clean, 40, "{:?}", s.counts);
        let j = respmod_and_reqmod(&server, 40).await;
        assert_eq!(j.len(), 40);
        let mut sizes = std::collections::BTreeSet::new();
        for t in &j {
            assert_eq!(t.method, icap_mock_server::Method::Reqmod);
            if t.body_len == 3000 {
                assert_eq!(t.preview, Some(16));
            }
            assert_eq!(t.icap_header("X-Bench").as_deref(), Some("yes"));
            sizes.insert(t.body_len);
        }
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![5, 3000]);
        let bytes: u64 = j.iter().map(|t| t.body_len).sum();
        assert_eq!(s.counts.bytes, bytes);
    }
}
