//! `icap-client bench` and `bench merge` through the binary: the JSON report, the
//! `--hdr-out` file, merge, the exit code of a finding, quiet when piped.

use std::process::Output;

use icap_mock_server::{Mock, MockServer, Reply, matchers};

async fn run(args: &[&str]) -> Output {
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_icap-client"))
            .args(args)
            .env_remove("RUST_LOG")
            .output(),
    )
    .await
    .expect("bench ends by itself")
    .expect("run icap-client")
}

fn json(o: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_json_writes_histograms_and_merges_them() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = [dir.path().join("a.hlog"), dir.path().join("b.hlog")];
    let mut runs = Vec::new();
    for f in &files {
        let o = run(&[
            "bench",
            "--server",
            &server.url(),
            "--scans",
            "100",
            "--connections",
            "2",
            "--infected-ratio",
            "0.1",
            "--json",
            "--hdr-out",
            f.to_str().unwrap(),
        ])
        .await;
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        // Piped: no progress line.
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v = json(&o);
        assert_eq!(v["sent"], 100);
        assert_eq!(v["completed"], 100);
        assert_eq!(
            v["verdicts"]["total"].as_u64().unwrap() + v["errors"]["total"].as_u64().unwrap(),
            100
        );
        assert_eq!(v["latency_us"]["count"], 100);
        assert!(v["latency_us"]["p50"].as_u64().unwrap() > 0);
        assert!(v["latency_us"]["p99"].as_u64() <= v["latency_us"]["max"].as_u64());
        assert!(v["duration_ms"].is_u64());
        assert!(v["detection"]["eicar_sent"].as_u64().unwrap() > 0);
        assert_eq!(
            v["detection"]["eicar_detected"],
            v["detection"]["eicar_sent"]
        );
        assert_eq!(v["verdicts"]["infected"], v["detection"]["eicar_sent"]);
        assert_eq!(v["findings"].as_array().unwrap().len(), 0);
        let log = std::fs::read_to_string(f).unwrap();
        assert!(log.starts_with('#'), "{log}");
        assert!(log.contains("#icap-client-bench: {"), "{log}");
        // The interval line: V2 compressed histograms start with this base64 text.
        assert!(log.lines().any(|l| l.contains(",HISTF")), "{log}");
        runs.push(v);
    }
    let o = run(&[
        "bench",
        "merge",
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let m = json(&o);
    assert_eq!(m["runs"], 2);
    assert_eq!(m["sent"], 200);
    assert_eq!(m["latency_us"]["count"], 200);
    let sum = |k: &str, f: &str| runs[0][k][f].as_u64().unwrap() + runs[1][k][f].as_u64().unwrap();
    assert_eq!(m["verdicts"]["clean"], sum("verdicts", "clean"));
    assert_eq!(m["detection"]["eicar_sent"], sum("detection", "eicar_sent"));
    let lo = runs[0]["latency_us"]["max"]
        .as_u64()
        .max(runs[1]["latency_us"]["max"].as_u64());
    assert_eq!(m["latency_us"]["max"].as_u64(), lo);

    let o = run(&["bench", "merge", files[0].to_str().unwrap()]).await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("latency: p50"), "{text}");
    assert!(text.contains("errors:  refused 0"), "{text}");
    let o = run(&["bench", "merge", dir.path().to_str().unwrap()]).await;
    assert_eq!(o.status.code(), Some(2), "a folder is not a histogram log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undetected_eicar_body_is_a_finding_and_exits_1() {
    let server = MockServer::start().await;
    Mock::given(matchers::body_contains(icap_mock_server::EICAR))
        .respond_with(Reply::clean())
        .mount(&server)
        .await;
    let o = run(&[
        "bench",
        "--server",
        &server.url(),
        "--scans",
        "20",
        "--infected-ratio",
        "1",
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("FINDING: 20 of 20 EICAR test bodies were NOT reported infected"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_numbers_are_refused() {
    for args in [
        &["bench", "--server", "icap://127.0.0.1:1/x", "--rate", "0"][..],
        &["bench", "--server", "icap://127.0.0.1:1/x", "--rate", "NaN"],
        &[
            "bench",
            "--server",
            "icap://127.0.0.1:1/x",
            "--connections",
            "0",
        ],
        &[
            "bench",
            "--server",
            "icap://127.0.0.1:1/x",
            "--infected-ratio",
            "2",
        ],
        &[
            "bench",
            "--server",
            "icap://127.0.0.1:1/x",
            "--size",
            "99999999GiB",
        ],
        &[
            "bench",
            "--server",
            "icap://127.0.0.1:1/x",
            "--size",
            "3GiB",
        ],
        &[
            "bench",
            "--server",
            "icap://127.0.0.1:1/x",
            "--duration",
            "soon",
        ],
    ] {
        let o = run(args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
}

/// Ctrl-C (SIGINT) ends a long run at once with the report of what was done.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_prints_the_report_so_far() {
    let server = MockServer::start().await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_icap-client"))
        .args([
            "bench",
            "--server",
            &server.url(),
            "--duration",
            "60s",
            "--json",
        ])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("ends soon after Ctrl-C")
        .unwrap();
    let v = json(&o);
    assert_eq!(v["interrupted"], true);
    assert!(v["sent"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        v["sent"].as_u64().unwrap(),
        v["completed"].as_u64().unwrap() + v["abandoned"].as_u64().unwrap()
    );
    assert!(v["duration_ms"].as_u64().unwrap() < 10_000);
}

/// TLS (icaps://) with the CA given as for `scan`; without it, every scan is an error of
/// kind `other` (TLS) and the exit code is 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_over_tls() {
    let server = MockServer::builder().tls_generated().start().await;
    assert!(server.url().starts_with("icaps://"));
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem().unwrap()).unwrap();
    let o = run(&[
        "bench",
        "--server",
        &server.url(),
        "--scans",
        "30",
        "--connections",
        "2",
        "--tls-ca",
        ca.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = json(&o);
    assert_eq!(v["verdicts"]["clean"], 30, "{v}");
    let o = run(&["bench", "--server", &server.url(), "--scans", "3", "--json"]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let v = json(&o);
    assert_eq!(v["errors"]["other"], 3, "{v}");
}

/// On a terminal the live line moves: run under a pseudo-terminal (util-linux `script`,
/// which Debian always has; `icap_test_support::on_terminal`), the progress line shows scans/s, MB/s, errors and p50/p99,
/// and is redrawn with new figures while the run goes on.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_moves_on_a_terminal() {
    let server = MockServer::start().await;
    let url = server.url();
    let o = icap_test_support::on_terminal(
        env!("CARGO_BIN_EXE_icap-client"),
        &[
            "bench",
            "--server",
            &url,
            "--duration",
            "2500ms",
            "--connections",
            "2",
        ],
        std::time::Duration::from_secs(30),
    )
    .await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    // Progress lines are redrawn in place ("\r" or cursor moves), each with the live figures.
    let lines = icap_test_support::drawn_lines(&text, &["scans/s", "errors  p50"]);
    assert!(lines.len() >= 2, "no moving progress line in: {text:?}");
    let mut distinct = lines.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 2, "the line never changed: {lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("MB/s") && l.contains("p99"))
    );
    // The report follows, once.
    assert_eq!(text.matches("icap-client bench: ").count(), 1, "{text}");

    // Piped, the same run shows no progress line at all.
    let o = run(&["bench", "--server", &server.url(), "--duration", "1s"]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
