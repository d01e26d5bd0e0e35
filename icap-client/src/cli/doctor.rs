//! `icap-client doctor`: a server checked end to end (OPTIONS, TLS, a clean sample,
//! EICAR, a sample past the preview, an oversize sample): PASS or FAIL per step, SKIP
//! with the reason for a step that could not run (never PASS for what was not checked),
//! and a last line with the verdict and the next step.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use icap_client::settings::Settings;
use icap_client::{Diagnosis, NotScannedReason, ScanMeta, Verdict};
use serde_json::json;

use super::files::eicar;
use super::output::{ms, shown};

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    /// Not run, or nothing to check: `detail` says why.
    Skip,
}

impl Status {
    fn of(pass: bool) -> Self {
        if pass { Status::Pass } else { Status::Fail }
    }
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One step, as printed.
struct Step {
    name: &'static str,
    status: Status,
    detail: String,
    hint: String,
    time: Duration,
}

/// Runs every step against the first configured server; 0 when all pass, 2 otherwise.
#[allow(clippy::too_many_lines)] // the doctor's steps in the order it prints them, each feeding the next
pub(crate) async fn doctor(s: &Settings, json: bool) -> Result<u8> {
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
        status: Status::of(report.ok),
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
                    .map(|e| format!("{e:#}"))
                    .unwrap_or_default()
            ),
            None => report
                .error
                .as_ref()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default(),
        },
        hint: if report.ok {
            String::new()
        } else {
            report.hint.clone()
        },
        time: t.elapsed(),
    });
    let tls_step = if !url.starts_with("icaps://") {
        Step {
            name: "tls",
            status: Status::Skip,
            detail: "plain icap:// (no TLS); use icaps:// for Secure ICAP".into(),
            hint: String::new(),
            time: Duration::ZERO,
        }
    } else if let (Some(v), Some(c)) = (&report.tls_version, &report.tls_cipher) {
        Step {
            name: "tls",
            status: Status::Pass,
            detail: format!(
                "{v} {c}, certificate verified{}",
                if s.tls.insecure {
                    " NOT (insecure mode)"
                } else {
                    ""
                }
            ),
            hint: String::new(),
            time: report.connect.unwrap_or_default(),
        }
    } else if report
        .error
        .as_ref()
        .is_some_and(icap_client::Error::is_tls)
    {
        Step {
            name: "tls",
            status: Status::Fail,
            detail: report
                .error
                .as_ref()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default(),
            hint: report.hint.clone(),
            time: report.connect.unwrap_or_default(),
        }
    } else {
        Step {
            name: "tls",
            status: Status::Skip,
            detail: "no TLS handshake was reached (see options)".into(),
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
            status: Status::of(r.verdict.is_clean()),
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
            status: Status::of(r.verdict.is_infected()),
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
            status: Status::of(r.verdict.is_clean()),
            detail: format!("{big} bytes (past the preview): {}", r.verdict.label()),
            hint: match &r.verdict {
                Verdict::Clean => String::new(),
                Verdict::Failed { error } => icap_client::diagnose(error).1,
                _ => "a large harmless file was not reported clean".into(),
            },
            time: t.elapsed(),
        });
    } else {
        for name in ["clean sample", "eicar sample", "large sample"] {
            // Each could only fail for the reason the options step gave.
            steps.push(Step {
                name,
                status: Status::Skip,
                detail: "not run: the server did not pass the OPTIONS check".into(),
                hint: String::new(),
                time: Duration::ZERO,
            });
        }
    }
    // The oversize check is the client's own size limit: it sends nothing, so it says
    // something about this setup only next to a server that works.
    if report.ok {
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
            status: Status::of(matches!(
                r.verdict,
                Verdict::NotScanned {
                    reason: NotScannedReason::TooLarge { .. }
                }
            )),
            detail: format!(
                "{} bytes with a {limit} byte limit: {}",
                limit.saturating_add(1),
                r.verdict.label()
            ),
            hint: String::new(),
            time: t.elapsed(),
        });
    } else {
        steps.push(Step {
            name: "oversize sample",
            status: Status::Skip,
            detail: "not run: the server did not pass the OPTIONS check".into(),
            hint: String::new(),
            time: Duration::ZERO,
        });
    }

    let failed = steps.iter().find(|s| s.status == Status::Fail);
    let (verdict, next) = match failed {
        None => (
            "READY".to_owned(),
            format!("scan with: icap-client scan -s {url} FILE..."),
        ),
        Some(f) if f.hint.is_empty() => (
            format!("NOT READY ({} failed)", f.name),
            format!("fix the {} check, then run doctor again", f.name),
        ),
        Some(f) => (format!("NOT READY ({} failed)", f.name), f.hint.clone()),
    };
    if json {
        let v: Vec<_> = steps
            .iter()
            .map(|s| {
                json!({
                    "step": s.name,
                    "status": s.status.word().to_ascii_lowercase(),
                    "pass": s.status == Status::Pass,
                    "detail": s.detail,
                    "hint": s.hint,
                    "ms": u64::try_from(s.time.as_millis()).unwrap_or(u64::MAX),
                })
            })
            .collect();
        println!(
            "{}",
            json!({"server": url, "pass": failed.is_none(), "verdict": verdict, "next": next, "steps": v})
        );
    } else {
        println!("icap-client doctor {url}");
        for s in &steps {
            println!(
                "  [{}] {:<16} {:>9}  {}",
                s.status.word(),
                s.name,
                if s.status == Status::Skip {
                    "-".to_owned()
                } else {
                    format!("{:.1} ms", s.time.as_secs_f64() * 1000.0)
                },
                s.detail
            );
            if !s.hint.is_empty() {
                println!("         hint: {}", s.hint);
            }
        }
        println!("verdict: {verdict}; next: {next}");
    }
    Ok(if failed.is_none() { 0 } else { 2 })
}
