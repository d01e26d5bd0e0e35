//! What a run counted, and the report made of it (text or JSON).

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(crate) use super::counts::Counts;

/// Everything of a run but the histogram: what `--hdr-out` stores next to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Summary {
    /// `closed`, `open` or `merged`.
    pub mode: String,
    /// Open loop: the target rate (scans per second; summed by merge).
    pub rate: Option<f64>,
    pub connections: u64,
    pub concurrency: u64,
    pub servers: Vec<String>,
    /// Start of the measured window, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// Length of the measured window.
    pub duration_ms: u64,
    pub warmup_ms: u64,
    pub counts: Counts,
    /// Scans and bytes completed in each whole second of the measured window.
    pub per_second: Vec<[u64; 2]>,
    /// Overall scans/s and bytes/s (merge sums the runs' rates: they ran side by side).
    pub scans_per_sec: f64,
    pub bytes_per_sec: f64,
    /// Open loop: scans due in the window that were never sent (every worker was busy).
    pub missed: u64,
    /// Scans still running when the run was stopped (Ctrl-C, or past the grace period).
    pub abandoned: u64,
    /// How long the run waited after the measured time for its last scans.
    pub drain_ms: u64,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Runs merged into this one.
    pub runs: u64,
}

impl Summary {
    /// Merges runs of several processes or machines; their per-second series are lined up
    /// by wall-clock second.
    pub(crate) fn merge(parts: &[Summary]) -> Summary {
        let mut m = Summary {
            mode: "merged".into(),
            ..Summary::default()
        };
        let first = parts
            .iter()
            .map(|p| p.start_unix_ms / 1000)
            .min()
            .unwrap_or(0);
        m.start_unix_ms = parts.iter().map(|p| p.start_unix_ms).min().unwrap_or(0);
        for p in parts {
            m.counts.add(&p.counts);
            m.connections = m.connections.saturating_add(p.connections);
            m.concurrency = m.concurrency.saturating_add(p.concurrency);
            m.duration_ms = m.duration_ms.max(p.duration_ms);
            m.warmup_ms = m.warmup_ms.max(p.warmup_ms);
            m.scans_per_sec += p.scans_per_sec;
            m.bytes_per_sec += p.bytes_per_sec;
            m.missed = m.missed.saturating_add(p.missed);
            m.abandoned = m.abandoned.saturating_add(p.abandoned);
            m.drain_ms = m.drain_ms.max(p.drain_ms);
            m.interrupted |= p.interrupted;
            m.runs = m.runs.saturating_add(p.runs.max(1));
            if let Some(r) = p.rate {
                m.rate = Some(m.rate.unwrap_or(0.0) + r);
            }
            for s in &p.servers {
                if !m.servers.contains(s) {
                    m.servers.push(s.clone());
                }
            }
            let offset = usize::try_from(p.start_unix_ms / 1000 - first).unwrap_or(usize::MAX);
            for (i, [n, b]) in p.per_second.iter().enumerate() {
                let Some(k) = offset.checked_add(i) else {
                    break;
                };
                // A gap of more than a day between runs is not one load test.
                if k > 86_400 {
                    break;
                }
                if m.per_second.len() <= k {
                    m.per_second.resize(k + 1, [0, 0]);
                }
                m.per_second[k][0] = m.per_second[k][0].saturating_add(*n);
                m.per_second[k][1] = m.per_second[k][1].saturating_add(*b);
            }
        }
        m
    }
}

/// Min, mean and max of a per-second series (the overall rate when there is no whole second).
fn spread(series: &[f64], overall: f64) -> serde_json::Value {
    if series.is_empty() {
        return json!({"min": overall, "mean": overall, "max": overall});
    }
    let (min, max, sum) = series
        .iter()
        .fold((f64::MAX, 0.0f64, 0.0f64), |(lo, hi, s), v| {
            (lo.min(*v), hi.max(*v), s + v)
        });
    #[allow(clippy::cast_precision_loss)] // a series of at most a week of seconds
    let mean = sum / series.len() as f64;
    json!({"min": min, "mean": mean, "max": max})
}

/// The findings of a run: lines that must not be missed.
pub(crate) fn findings(c: &Counts) -> Vec<String> {
    let mut f = Vec::new();
    if c.eicar_missed > 0 {
        f.push(format!(
            "{} of {} EICAR test bodies were NOT reported infected: this server passes malware under load",
            c.eicar_missed, c.eicar_sent
        ));
    }
    if c.clean_flagged > 0 {
        f.push(format!(
            "{} harmless bodies were reported infected (false positives)",
            c.clean_flagged
        ));
    }
    f
}

/// What the reader should know about how the run ended (not a detection finding: the exit
/// code does not change).
pub(crate) fn warnings(s: &Summary) -> Vec<String> {
    let mut w = Vec::new();
    if s.abandoned > 0 {
        w.push(format!(
            "{} scans were abandoned: still unanswered at the end of the grace period after the \
             measured time (--grace); the server serves fewer connections at once than \
             --connections {} asks, or stalled",
            s.abandoned, s.connections
        ));
    } else if s.drain_ms >= 1_000 {
        w.push(format!(
            "the run waited {:.1} s after the measured time for {} late scans; the server \
             serves fewer connections at once than --connections {} asks, or stalled (see the \
             max latency)",
            Duration::from_millis(s.drain_ms).as_secs_f64(),
            s.counts.late,
            s.connections
        ));
    }
    w
}

/// Column `k` of the per-second series, divided by `unit`.
fn per_second(s: &Summary, k: usize, unit: f64) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    s.per_second.iter().map(|p| p[k] as f64 / unit).collect()
}

/// The whole report as JSON: durations in integer ms, latencies in integer µs.
pub(crate) fn to_json(s: &Summary, h: &Histogram<u64>) -> serde_json::Value {
    let c = &s.counts;
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    json!({
        "mode": s.mode,
        "rate": s.rate,
        "servers": s.servers,
        "connections": s.connections,
        "concurrency": s.concurrency,
        "runs": s.runs.max(1),
        "duration_ms": s.duration_ms,
        "warmup_ms": s.warmup_ms,
        "interrupted": s.interrupted,
        "sent": c.sent,
        "completed": c.verdicts().saturating_add(c.errors()),
        "abandoned": s.abandoned,
        "missed": s.missed,
        "bytes": c.bytes,
        "scans_per_sec": {
            "overall": s.scans_per_sec,
            "per_second": spread(&per_second(s, 0, 1.0), s.scans_per_sec),
        },
        "mb_per_sec": {
            "overall": s.bytes_per_sec / 1e6,
            "per_second": spread(&per_second(s, 1, 1e6), s.bytes_per_sec / 1e6),
        },
        "latency_us": {
            "count": h.len(),
            "min": if h.is_empty() { 0 } else { h.min() },
            "p50": q(0.5),
            "p90": q(0.9),
            "p99": q(0.99),
            "p99_9": q(0.999),
            "max": if h.is_empty() { 0 } else { h.max() },
            "mean": h.mean().round(),
        },
        "verdicts": {
            "clean": c.clean,
            "infected": c.infected,
            "modified": c.modified,
            "not_scanned": c.not_scanned,
            "total": c.verdicts(),
        },
        "errors": {
            "refused": c.refused,
            "timeout": c.timeout,
            "protocol": c.protocol,
            "5xx": c.status_5xx,
            "overloaded": c.overloaded,
            "closed": c.closed,
            "other": c.other,
            "total": c.errors(),
        },
        "detection": {
            "eicar_sent": c.eicar_sent,
            "eicar_detected": c.eicar_detected,
            "eicar_missed": c.eicar_missed,
            "clean_flagged": c.clean_flagged,
        },
        "findings": findings(c),
        "warnings": warnings(s),
        "late": c.late,
        "drain_ms": s.drain_ms,
    })
}

fn ms(us: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = us as f64 / 1000.0;
    format!("{v:.2} ms")
}

/// The report as text.
#[allow(clippy::too_many_lines)] // the report's sections in print order; one function keeps the layout in one place
#[allow(clippy::many_single_char_names)] // s, h, c, t: the summary, histogram, counts, text
pub(crate) fn to_text(s: &Summary, h: &Histogram<u64>) -> String {
    let v = to_json(s, h);
    let c = &s.counts;
    let mut t = String::new();
    let mode = match (s.mode.as_str(), s.rate) {
        ("open", Some(r)) => format!("open loop at {r} scans/s"),
        (m, _) => format!("{m} loop"),
    };
    let servers: Vec<String> = s
        .servers
        .iter()
        .map(|u| crate::cli::output::shown(u))
        .collect();
    let _ = writeln!(t, "icap-client bench: {} ({mode})", servers.join(", "));
    let _ = writeln!(
        t,
        "  {} connections, {} scans in flight, {:.1} s measured{}{}",
        s.connections,
        s.concurrency,
        Duration::from_millis(s.duration_ms).as_secs_f64(),
        if s.warmup_ms > 0 {
            format!(
                " after {:.1} s warm-up",
                Duration::from_millis(s.warmup_ms).as_secs_f64()
            )
        } else {
            String::new()
        },
        if s.interrupted { " (interrupted)" } else { "" }
    );
    let rate = &v["scans_per_sec"]["per_second"];
    let mb = &v["mb_per_sec"]["per_second"];
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    let _ = writeln!(
        t,
        "  scans:   {} sent, {} answered, {} errors{}{}",
        c.sent,
        c.verdicts(),
        c.errors(),
        if s.missed > 0 {
            format!(", {} missed (generator behind)", s.missed)
        } else {
            String::new()
        },
        if s.abandoned > 0 {
            format!(", {} abandoned in flight", s.abandoned)
        } else {
            String::new()
        },
    );
    // The last scans of a closed loop always end just after the window: say so only when
    // the wait was long enough to matter.
    if c.late > 0 && s.drain_ms >= 100 {
        let _ = writeln!(
            t,
            "           {} answered after the measured time (not in the rates); the run waited {:.2} s for its last scans",
            c.late,
            Duration::from_millis(s.drain_ms).as_secs_f64()
        );
    }
    let _ = writeln!(
        t,
        "  rate:    {:.1} scans/s (per second min {:.0} / mean {:.1} / max {:.0})",
        s.scans_per_sec,
        f(&rate["min"]),
        f(&rate["mean"]),
        f(&rate["max"])
    );
    let _ = writeln!(
        t,
        "  volume:  {:.2} MB/s (per second min {:.2} / mean {:.2} / max {:.2}), {} bytes",
        s.bytes_per_sec / 1e6,
        f(&mb["min"]),
        f(&mb["mean"]),
        f(&mb["max"]),
        c.bytes
    );
    let l = &v["latency_us"];
    let u = |k: &str| l[k].as_u64().unwrap_or(0);
    let _ = writeln!(
        t,
        "  latency: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}{}",
        ms(u("p50")),
        ms(u("p90")),
        ms(u("p99")),
        ms(u("p99_9")),
        ms(u("max")),
        if s.mode == "open" {
            "  (from the intended send time)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        t,
        "  verdicts: clean {}  infected {}  modified {}  not scanned {}",
        c.clean, c.infected, c.modified, c.not_scanned
    );
    let _ = writeln!(
        t,
        "  errors:  refused {}  timeout {}  protocol {}  5xx {}  overloaded(503) {}  closed {}  other {}",
        c.refused, c.timeout, c.protocol, c.status_5xx, c.overloaded, c.closed, c.other
    );
    if c.eicar_sent > 0 || c.clean_flagged > 0 {
        let _ = writeln!(
            t,
            "  detection: {} of {} EICAR bodies reported infected (warm-up included)",
            c.eicar_detected, c.eicar_sent
        );
    }
    for finding in findings(c) {
        let _ = writeln!(t, "FINDING: {finding}");
    }
    for warning in warnings(s) {
        let _ = writeln!(t, "NOTE: {warning}");
    }
    t
}
