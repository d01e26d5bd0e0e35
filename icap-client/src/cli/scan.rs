//! `icap-client scan`: scan files through the upload guard, one output line (or JSON
//! object) per file, events on stderr, a summary, clamscan's exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use icap_client::{Action, Event, Guard, NotScannedReason, Outcome, Verdict};
use serde_json::json;

use super::files::collect;
use super::output::{shown, shown_path};

/// Files scanned at once, at most this many (more would only queue in the pool).
pub(crate) const MAX_JOBS: usize = 1024;

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
                format!("NOT SCANNED (server: {code}, status {status})")
            }
            NotScannedReason::IgnoredByServer { extension } => {
                format!("NOT SCANNED (server ignores .{extension})")
            }
            other => format!("NOT SCANNED ({other:?})"),
        },
        Verdict::Failed { error } => format!("ERROR ({error:#})"),
    };
    format!("{path}: {what}{action}")
}

/// Scans `paths` with `jobs` files at once and prints each outcome; the exit code.
pub(crate) async fn scan(
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
