//! The load loops: closed (each worker sends its next scan when the last one is answered)
//! and open (scans are due at a fixed rate; latency is counted from when a scan was due,
//! so a stalled server shows in the percentiles instead of slowing the generator down:
//! coordinated omission corrected, as wrk2 does).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hdrhistogram::Histogram;
use icap_client::{Client, ScanMeta};

use super::hist;
use super::report::{Counts, Summary};

/// Longest series of per-second counts kept (a week).
const MAX_SECONDS: usize = 7 * 86_400;

/// One body the bench sends.
pub(crate) struct Body {
    /// The bytes (shared: a clone is a reference count).
    pub bytes: Bytes,
    /// File name and headers of the scan.
    pub meta: ScanMeta,
    /// Whether this is the EICAR test file (it must come back infected).
    pub eicar: bool,
}

/// What to send: weighted bodies and the EICAR share.
pub(crate) struct Bodies {
    /// Clean bodies with their weights.
    pub clean: Vec<(Body, u64)>,
    /// The EICAR body.
    pub eicar: Body,
    /// Share of scans that send the EICAR body, 0 to 1.
    pub infected_ratio: f64,
    /// Seed of the choice (the same seed sends the same sequence).
    pub seed: u64,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Bodies {
    /// The body of scan number `n`: the same for the same seed, whichever worker sends it.
    pub(crate) fn pick(&self, n: u64) -> &Body {
        let a = splitmix64(self.seed ^ n.wrapping_mul(0x2545_f491_4f6c_dd1d));
        #[allow(clippy::cast_precision_loss)] // 53 random bits
        let u = (a >> 11) as f64 / (1u64 << 53) as f64;
        if u < self.infected_ratio || self.clean.is_empty() {
            return &self.eicar;
        }
        let total: u64 = self
            .clean
            .iter()
            .map(|(_, w)| *w)
            .fold(0, u64::saturating_add);
        let mut r = splitmix64(a) % total.max(1);
        for (b, w) in &self.clean {
            if r < *w {
                return b;
            }
            r -= w;
        }
        &self.clean[self.clean.len() - 1].0
    }
}

/// How to run.
pub(crate) struct Plan {
    pub client: Client,
    pub bodies: Arc<Bodies>,
    /// Scans in flight (workers).
    pub concurrency: usize,
    /// Open loop: scans per second.
    pub rate: Option<f64>,
    /// Measured time (after the warm-up); `None` with `scans`.
    pub duration: Option<Duration>,
    /// Measured scans to send.
    pub scans: Option<u64>,
    pub warmup: Duration,
    /// Longest wait for the scans still in flight when the measured time is over; then they
    /// are abandoned (and counted as such).
    pub grace: Duration,
    /// A live progress line on stderr.
    pub progress: bool,
    /// For the report.
    pub connections: u64,
    pub servers: Vec<String>,
}

/// What one worker counted.
struct Stats {
    counts: Counts,
    hist: Histogram<u64>,
    per_second: Vec<[u64; 2]>,
}

impl Stats {
    fn new() -> Self {
        Stats {
            counts: Counts::default(),
            hist: hist::new_histogram(),
            per_second: Vec::new(),
        }
    }

    fn add(&mut self, o: &Stats) {
        self.counts.add(&o.counts);
        // Both use the same bounds (auto-resizing): adding cannot fail.
        let _ = self.hist.add(&o.hist);
        if self.per_second.len() < o.per_second.len() {
            self.per_second.resize(o.per_second.len(), [0, 0]);
        }
        for (a, b) in self.per_second.iter_mut().zip(&o.per_second) {
            a[0] = a[0].saturating_add(b[0]);
            a[1] = a[1].saturating_add(b[1]);
        }
    }
}

struct Shared {
    /// Tickets handed out (open loop: scan number `n` is due at `start + n / rate`).
    next: AtomicU64,
    /// Measured scans handed out (for `--scans`).
    measured: AtomicU64,
    stop: AtomicBool,
    start: Instant,
    warm_end: Instant,
    end: Option<Instant>,
}

async fn worker(plan: Arc<Plan>, shared: Arc<Shared>, stats: Arc<Mutex<Stats>>) {
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        let due = match plan.rate {
            Some(rate) => {
                #[allow(clippy::cast_precision_loss)]
                let offset = Duration::try_from_secs_f64(n as f64 / rate).unwrap_or(Duration::MAX);
                let Some(due) = shared.start.checked_add(offset) else {
                    return;
                };
                due
            }
            None => Instant::now(),
        };
        // The run is over: no scan due after the end is sent, nor one sent late past it.
        if let Some(end) = shared.end
            && (due >= end || Instant::now() >= end)
        {
            return;
        }
        let measured = due >= shared.warm_end;
        if measured
            && let Some(limit) = plan.scans
            && shared.measured.fetch_add(1, Ordering::Relaxed) >= limit
        {
            return;
        }
        if plan.rate.is_some() {
            tokio::time::sleep_until(due.into()).await;
        }
        let body = plan.bodies.pick(n);
        if measured {
            lock(&stats).counts.sent += 1;
        }
        let report = plan.client.scan_bytes(body.bytes.clone(), &body.meta).await;
        let done = Instant::now();
        let mut s = lock(&stats);
        if measured {
            hist::record(&mut s.hist, done.saturating_duration_since(due));
            s.counts
                .verdict(&report.verdict, body.bytes.len() as u64, body.eicar);
            // Answered while the run waited for its last scans: its latency is real, but
            // it is not part of the measured window's rate.
            if shared.end.is_some_and(|end| done > end) {
                s.counts.late = s.counts.late.saturating_add(1);
                s.counts.late_bytes = s.counts.late_bytes.saturating_add(body.bytes.len() as u64);
            }
            let sec = usize::try_from(done.saturating_duration_since(shared.warm_end).as_secs())
                .unwrap_or(usize::MAX);
            if sec < MAX_SECONDS {
                if s.per_second.len() <= sec {
                    s.per_second.resize(sec + 1, [0, 0]);
                }
                s.per_second[sec][0] += 1;
                s.per_second[sec][1] = s.per_second[sec][1].saturating_add(body.bytes.len() as u64);
            }
        } else {
            s.counts.check(&report.verdict, body.eicar);
        }
    }
}

fn lock(m: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    // A worker that panicked left counts that are still counts.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn merged(all: &[Arc<Mutex<Stats>>]) -> Stats {
    let mut total = Stats::new();
    for s in all {
        total.add(&lock(s));
    }
    total
}

/// Whether the run stops: Ctrl-C, or a future the tests use instead.
pub(crate) type Interrupt = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs the plan; returns the run's counts and histogram. `interrupt` ends it early (the
/// report then covers what was done so far).
#[allow(clippy::too_many_lines)] // the load loop with its workers, pacing, grace and interrupt: they share one set of counters
pub(crate) async fn run(plan: Plan, interrupt: Interrupt) -> (Summary, Histogram<u64>) {
    let plan = Arc::new(plan);
    let start = Instant::now();
    let warm_end = start + plan.warmup;
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        start,
        warm_end,
        end: plan.duration.and_then(|d| warm_end.checked_add(d)),
    });
    let stats: Vec<_> = (0..plan.concurrency.max(1))
        .map(|_| Arc::new(Mutex::new(Stats::new())))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for s in &stats {
        set.spawn(worker(plan.clone(), shared.clone(), s.clone()));
    }
    let bar = if plan.progress {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .expect("static template is valid"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut interrupt = interrupt;
    let mut interrupted = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let grace_end = shared.end.map(|e| e.checked_add(plan.grace).unwrap_or(e));
    loop {
        let grace = async {
            match grace_end {
                Some(g) => tokio::time::sleep_until(g.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = set.join_next() => if r.is_none() { break },
            () = &mut interrupt => { interrupted = true; break; }
            () = grace => break,
            _ = tick.tick(), if plan.progress => {
                bar.set_message(progress_line(&merged(&stats), warm_end));
                bar.tick();
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    set.abort_all();
    while set.join_next().await.is_some() {}
    bar.finish_and_clear();
    let finish = Instant::now();
    let total = merged(&stats);
    // The window ends at the planned end, not when the last late scan came back: waiting
    // for stragglers must not dilute the rate.
    let window_end = shared.end.map_or(finish, |end| finish.min(end));
    let measured_for = window_end.saturating_duration_since(warm_end);
    let secs = measured_for.as_secs_f64();
    let mut per_second = total.per_second;
    // Only whole seconds: the last one is partial.
    per_second.truncate(usize::try_from(measured_for.as_secs()).unwrap_or(usize::MAX));
    let c = total.counts;
    let completed = c.verdicts().saturating_add(c.errors());
    let in_window = completed.saturating_sub(c.late);
    #[allow(clippy::cast_precision_loss)]
    let (scans_per_sec, bytes_per_sec) = if secs > 0.0 {
        (
            in_window as f64 / secs,
            c.bytes.saturating_sub(c.late_bytes) as f64 / secs,
        )
    } else {
        (0.0, 0.0)
    };
    let missed = match (plan.rate, shared.end) {
        (Some(rate), Some(end)) => {
            let stop = if interrupted { finish.min(end) } else { end };
            let due = |t: Instant| {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n = (t.saturating_duration_since(start).as_secs_f64() * rate).ceil() as u64;
                n
            };
            due(stop)
                .saturating_sub(due(warm_end))
                .saturating_sub(c.sent)
        }
        _ => 0,
    };
    let start_unix_ms = SystemTime::now()
        .checked_sub(finish.saturating_duration_since(warm_end))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let summary = Summary {
        mode: if plan.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .into(),
        rate: plan.rate,
        connections: plan.connections,
        concurrency: plan.concurrency as u64,
        servers: plan.servers.clone(),
        start_unix_ms,
        duration_ms: u64::try_from(measured_for.as_millis()).unwrap_or(u64::MAX),
        warmup_ms: u64::try_from(plan.warmup.as_millis()).unwrap_or(u64::MAX),
        abandoned: c.sent.saturating_sub(completed),
        drain_ms: u64::try_from(finish.saturating_duration_since(window_end).as_millis())
            .unwrap_or(u64::MAX),
        counts: c,
        per_second,
        scans_per_sec,
        bytes_per_sec,
        missed,
        interrupted,
        runs: 1,
    };
    (summary, total.hist)
}

fn progress_line(s: &Stats, warm_end: Instant) -> String {
    let now = Instant::now();
    if now < warm_end {
        return "warming up".into();
    }
    let secs = now.duration_since(warm_end).as_secs_f64().max(0.001);
    let c = &s.counts;
    let done = c.verdicts().saturating_add(c.errors());
    let q = |p: f64| {
        if s.hist.is_empty() {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let v = s.hist.value_at_quantile(p) as f64 / 1000.0;
            v
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let line = format!(
        "{done} scans  {:.0} scans/s  {:.2} MB/s  {} errors  p50 {:.2} ms  p99 {:.2} ms",
        done as f64 / secs,
        c.bytes as f64 / secs / 1e6,
        c.errors(),
        q(0.5),
        q(0.99)
    );
    line
}
