//! `icap-client doctor`: a server checked end to end (OPTIONS, TLS, a clean sample,
//! EICAR, a sample past the preview, an oversize sample), PASS or FAIL per step.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use icap_client::settings::Settings;
use icap_client::{Diagnosis, NotScannedReason, ScanMeta, Verdict};
use serde_json::json;

use super::files::eicar;
use super::output::{ms, shown};

/// One checked step, as printed.
struct Step {
    name: &'static str,
    pass: bool,
    detail: String,
    hint: String,
    time: Duration,
}

/// Runs every step against the first configured server; 0 when all pass, 2 otherwise.
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
                    .map(|e| format!("{e:#}"))
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
