//! `icap-client scan`: scan files through the upload guard, one output line (or JSON
//! object) per file, a summary whose counts explain the exit code, clamscan's exit codes.
//!
//! A problem of the server (unreachable, TLS) is said once on stderr, with its cause;
//! each file's line then names it in a few words. The guard's per-file alerts and
//! notices repeat the file's line, so only `--json` prints them (as JSON on stderr).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use icap_client::{
    Action, AlertKind, Error, Event, Guard, NotScannedReason, Outcome, Phase, ScanMeta, Verdict,
};
use serde_json::json;

use super::files::{Walk, collect};
use super::output::{shown, shown_path};
use super::progress::Live;

/// Files scanned at once, at most this many (more would only queue in the pool).
pub(crate) const MAX_JOBS: usize = 1024;

/// A failure that is about the server rather than the file, in a few words.
fn server_trouble(e: &Error) -> Option<&'static str> {
    if e.is_connect() || e.is_unavailable() {
        Some("server unreachable")
    } else if e.timeout_phase() == Some(Phase::Connect) {
        Some("server unreachable: connect timeout")
    } else if e.is_tls() {
        Some("TLS handshake failed")
    } else {
        None
    }
}

/// The text line for one file: `path: OK`, `path: Eicar FOUND (deleted)`, ...
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
                format!("NOT SCANNED (server: {}, status {status})", shown(code))
            }
            NotScannedReason::IgnoredByServer { extension } => {
                format!("NOT SCANNED (server ignores .{})", shown(extension))
            }
            other => format!("NOT SCANNED ({other:?})"),
        },
        Verdict::Failed { error } => match server_trouble(error) {
            Some(short) => format!("ERROR ({short})"),
            None => format!("ERROR ({})", shown(&format!("{error:#}"))),
        },
    };
    format!("{path}: {what}{action}")
}

/// The counts of a run, and the exit code they make.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) clean: u64,
    pub(crate) infected: u64,
    pub(crate) modified: u64,
    /// Not scanned, whatever the reason (too large included).
    pub(crate) not_scanned: u64,
    /// Of those, too large for the size limit.
    pub(crate) too_large: u64,
    /// Scans that failed, and paths that could not be read.
    pub(crate) errors: u64,
    /// Empty files and symbolic links left out.
    pub(crate) skipped: u64,
}

impl Tally {
    fn add(&mut self, v: &Verdict) {
        let n = match v {
            Verdict::Clean => &mut self.clean,
            Verdict::Infected { .. } => &mut self.infected,
            Verdict::Modified { .. } => &mut self.modified,
            Verdict::NotScanned { reason } => {
                if matches!(reason, NotScannedReason::TooLarge { .. }) {
                    self.too_large = self.too_large.saturating_add(1);
                }
                &mut self.not_scanned
            }
            Verdict::Failed { .. } => &mut self.errors,
        };
        *n = n.saturating_add(1);
    }

    /// Files the server gave a verdict on.
    pub(crate) fn scanned(&self) -> u64 {
        self.clean
            .saturating_add(self.infected)
            .saturating_add(self.modified)
    }

    /// clamscan's: 1 something infected or modified (wins), 2 not scanned or failed, 0 clean.
    pub(crate) fn code(&self) -> u8 {
        if self.infected > 0 || self.modified > 0 {
            1
        } else if self.not_scanned > 0 || self.errors > 0 {
            2
        } else {
            0
        }
    }

    /// Why the exit code is what it is, in words.
    pub(crate) fn reason(&self) -> String {
        let mut parts = Vec::new();
        if self.infected > 0 {
            parts.push(format!("{} infected", self.infected));
        }
        if self.modified > 0 {
            parts.push(format!("{} modified by the server", self.modified));
        }
        if self.not_scanned > 0 {
            let s = if self.too_large > 0 {
                format!(
                    "{} not scanned ({} too large for the size limit)",
                    self.not_scanned, self.too_large
                )
            } else {
                format!("{} not scanned", self.not_scanned)
            };
            parts.push(s);
        }
        if self.errors > 0 {
            parts.push(format!("{} errors", self.errors));
        }
        if parts.is_empty() {
            "no infected file, no error".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Servers whose trouble was already said, shared by the event printer and the results
/// loop so that whichever notices first says it, once.
type Said = Arc<Mutex<HashSet<String>>>;

fn say_once(said: &Said, key: &str) -> bool {
    said.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key.to_owned())
}

/// For display only: f64 is exact up to 2^53 bytes.
#[allow(clippy::cast_precision_loss)]
fn megabytes(b: u64) -> f64 {
    b as f64 / 1_000_000.0
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Scans `paths` with `jobs` files at once and prints each outcome; the exit code.
#[allow(clippy::too_many_lines)] // the scan loop with its output, concurrency and exit code, which share the outcome counts
pub(crate) async fn scan(
    guard: Guard,
    paths: &[PathBuf],
    jobs: usize,
    json: bool,
    no_progress: bool,
) -> Result<u8> {
    let start = Instant::now();
    let mut walk = Walk::default();
    collect(paths, &mut walk);
    let mut tally = Tally::default();
    for (p, e) in &walk.errors {
        tally.errors = tally.errors.saturating_add(1);
        if json {
            println!(
                "{}",
                json!({"path": p, "verdict": "failed", "error": {"kind": "io", "message": e}})
            );
        } else {
            println!("{}: ERROR ({})", shown_path(p), shown(e));
        }
    }
    for (p, why) in &walk.skipped {
        tally.skipped = tally.skipped.saturating_add(1);
        if json {
            println!("{}", json!({"path": p, "skipped": why.word()}));
        } else {
            println!("{}: {}", shown_path(p), why.text());
        }
    }
    let show = !json && !no_progress && std::io::stderr().is_terminal();
    let live = Arc::new(Live::new(show, walk.files.len() as u64));
    let said: Said = Arc::default();
    let mut events = guard.subscribe();
    let printer = tokio::spawn({
        let (live, said) = (live.clone(), said.clone());
        async move {
            loop {
                match events.recv().await {
                    Ok(Event::Audit(_))
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Ok(e) if json => {
                        let text = serde_json::to_string(&e).unwrap_or_default();
                        live.suspend(|| eprintln!("{text}"));
                    }
                    Ok(Event::Alert(a)) => {
                        let server = a.server.clone().unwrap_or_default();
                        let show = match a.kind {
                            AlertKind::ServerDown => say_once(&said, &server),
                            AlertKind::ServerUp => {
                                said.lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .remove(&server);
                                true
                            }
                            // The file's own line says it.
                            _ => false,
                        };
                        if show {
                            live.suspend(|| eprintln!("ALERT: {}", shown(&a.message)));
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    });
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.clamp(1, MAX_JOBS)));
    let mut set = tokio::task::JoinSet::new();
    for (i, (f, _)) in walk.files.iter().enumerate() {
        // Print what finished meanwhile, so lines appear as files finish.
        while let Some(r) = set.try_join_next() {
            report(&r.context("scan task")?, json, &live, &said, &mut tally)?;
        }
        let permit = sem.clone().acquire_owned().await?;
        let g = guard.clone();
        let f = f.clone();
        let name = f
            .file_name()
            .map_or_else(|| f.to_string_lossy(), |n| n.to_string_lossy())
            .into_owned();
        let progress = live.start(i, name.clone());
        let live = live.clone();
        set.spawn(async move {
            let meta = ScanMeta::new(name).with_progress(progress);
            let r = g.client().scan_file(&f, &meta).await;
            let o = g.apply(&f, r, None).await;
            live.finish(i);
            drop(permit);
            o
        });
    }
    while let Some(r) = set.join_next().await {
        report(&r.context("scan task")?, json, &live, &said, &mut tally)?;
    }
    let sent = live.bytes_sent();
    // Let the printer drain the events of the last files.
    tokio::task::yield_now().await;
    drop(guard);
    let _ = tokio::time::timeout(Duration::from_millis(200), printer).await;
    live.close();
    let code = tally.code();
    let elapsed = start.elapsed();
    if json {
        println!(
            "{}",
            json!({"summary": {
                "files": walk.files.len() as u64 + tally.skipped + walk.errors.len() as u64,
                "scanned": tally.scanned(),
                "clean": tally.clean,
                "infected": tally.infected,
                "modified": tally.modified,
                "not_scanned": tally.not_scanned,
                "too_large": tally.too_large,
                "errors": tally.errors,
                "skipped": tally.skipped,
                "bytes_sent": sent,
                "duration_ms": ms(elapsed),
                "exit_code": code,
                "reason": tally.reason(),
            }})
        );
    } else {
        eprintln!(
            "----------- SCAN SUMMARY -----------\n\
             Scanned files: {}\n\
             Clean: {}\n\
             Infected files: {}\n\
             Modified: {}\n\
             Not scanned: {}{}\n\
             Errors: {}\n\
             Skipped: {} (empty files, symbolic links)\n\
             Data sent: {:.2} MB\n\
             Time: {:.3} s\n\
             Exit code: {code} ({})",
            tally.scanned(),
            tally.clean,
            tally.infected,
            tally.modified,
            tally.not_scanned,
            if tally.too_large > 0 {
                format!(" ({} too large)", tally.too_large)
            } else {
                String::new()
            },
            tally.errors,
            tally.skipped,
            megabytes(sent),
            elapsed.as_secs_f64(),
            tally.reason(),
        );
    }
    Ok(code)
}

/// Prints one finished file and counts it; a server problem is said once first.
fn report(o: &Outcome, json: bool, live: &Live, said: &Said, tally: &mut Tally) -> Result<()> {
    tally.add(&o.report.verdict);
    if json {
        let mut report = serde_json::to_value(&o.report)?;
        report["duration_ms"] = json!(ms(o.report.duration));
        let text = serde_json::to_string(&json!({
            "path": o.audit.path,
            "report": report,
            "action": o.action,
            "sha256": o.audit.sha256,
        }))?;
        live.suspend(|| println!("{text}"));
        return Ok(());
    }
    if let Verdict::Failed { error } = &o.report.verdict
        && server_trouble(error).is_some()
    {
        let server = o.report.server.clone().unwrap_or_default();
        let first = if error.is_unavailable() {
            // "Every server is marked down" follows from a trouble said already, if any.
            let mut s = said
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.is_empty() && s.insert(String::new())
        } else {
            say_once(said, &server)
        };
        if first {
            let what = if error.is_tls() {
                ""
            } else {
                " is unreachable"
            };
            let text = if server.is_empty() {
                format!("ALERT: {}", shown(&format!("{error:#}")))
            } else {
                format!(
                    "ALERT: ICAP server {}{what}: {}",
                    shown(&server),
                    shown(&format!("{error:#}"))
                )
            };
            live.suspend(|| eprintln!("{text}"));
        }
    }
    let text = line(o);
    live.suspend(|| println!("{text}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_and_its_reason_agree() {
        let mut t = Tally::default();
        assert_eq!(
            (t.code(), t.reason().as_str()),
            (0, "no infected file, no error")
        );
        t.add(&Verdict::NotScanned {
            reason: NotScannedReason::TooLarge { size: 2, limit: 1 },
        });
        assert_eq!(t.code(), 2);
        assert_eq!(t.reason(), "1 not scanned (1 too large for the size limit)");
        assert_eq!(t.scanned(), 0);
        t.add(&Verdict::Clean);
        assert_eq!(t.code(), 2);
        assert_eq!(t.scanned(), 1);
        t.add(&Verdict::Infected { threats: vec![] });
        assert_eq!(t.code(), 1);
        assert_eq!(
            t.reason(),
            "1 infected, 1 not scanned (1 too large for the size limit)"
        );
    }
}
