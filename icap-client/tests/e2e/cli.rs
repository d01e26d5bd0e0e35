//! The `icap-client` binary: exit codes, output, policy flags, config file.

use std::path::Path;
use std::process::Output;

use icap_mock_server::MockServer;

use crate::common::{eicar, refused_port, respmods, write};

async fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_icap-client"))
        .args(&args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run icap-client")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn options_ok_and_json() {
    let server = MockServer::start().await;
    let o = run(&["options", &server.url()]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains(": OK"));
    assert!(stdout(&o).contains("preview: 1024"));
    let o = run(&["options", &server.url(), "--json"]).await;
    assert_eq!(o.status.code(), Some(0));
    let v = &json_lines(&o)[0];
    assert_eq!(v["ok"], true);
    assert_eq!(v["diagnosis"]["kind"], "ok");
    assert_eq!(v["options"]["preview"], 1024);
    assert!(v["rtt_ms"].as_f64().is_some());
}

#[tokio::test]
async fn options_diagnoses_refused_and_wrong_service() {
    let port = refused_port().await;
    let o = run(&[
        "options",
        &format!("icap://127.0.0.1:{port}/avscan"),
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json_lines(&o)[0]["diagnosis"]["kind"], "refused");
    let server = MockServer::start().await;
    let o = run(&["options", &server.url_for("nope"), "--json"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json_lines(&o)[0]["diagnosis"]["kind"], "service_not_found");
    let tls = MockServer::builder().tls_generated().start().await;
    let o = run(&["options", &tls.url()]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("tls_untrusted"), "{}", stdout(&o));
}

#[tokio::test]
async fn scan_folder_exit_codes_and_policy() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let clean = write(dir.path(), "clean.txt", b"fine");
    let bad = write(&sub, "eicar.com", eicar());
    // All clean: 0.
    let o = run(&["scan", "--server", &server.url(), p(&clean)]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("clean.txt: OK"));
    // Report only: 1, file kept.
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--on-infected",
        "report",
        p(dir.path()),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("Eicar-Test-Signature FOUND"));
    assert!(bad.exists());
    // The default reports (as clamscan): exit 1, the file kept, and the notice says so.
    let o = run(&["scan", "-s", &server.url(), p(&bad)]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(bad.exists());
    assert!(stdout(&o).contains("Eicar-Test-Signature FOUND"), "{o:?}");
    assert!(!stdout(&o).contains("deleted"), "{o:?}");
    // The uploader's notice (JSON events on stderr) matches the policy.
    let o = run(&["scan", "-s", &server.url(), "--json", p(&bad)]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let notice = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "notice")
        .map_or_else(|| panic!("no notice in {}", stderr(&o)), |e| e.to_string());
    assert!(notice.contains("kept (policy: report only)"), "{notice}");
    assert!(!notice.contains("not accepted"), "{notice}");
    // --remove deletes; JSON lines; audit log (outside the scanned folder).
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.jsonl");
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--remove",
        "--json",
        "--jobs",
        "2",
        "--audit-log",
        p(&audit),
        p(dir.path()),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["summary"]["infected"], 1, "{lines:?}");
    assert_eq!(lines[2]["summary"]["clean"], 1);
    assert_eq!(lines[2]["summary"]["exit_code"], 1);
    assert!(lines[0]["report"]["duration_ms"].is_u64(), "{lines:?}");
    assert!(lines[2]["summary"]["duration_ms"].is_u64());
    let infected = lines
        .iter()
        .find(|l| l["report"]["verdict"] == "infected")
        .unwrap();
    assert_eq!(infected["action"]["action"], "deleted");
    assert!(!bad.exists());
    assert!(clean.exists());
    assert_eq!(std::fs::read_to_string(&audit).unwrap().lines().count(), 2);
    // Quarantine.
    let bad = write(&sub, "eicar2.com", eicar());
    let q = dir.path().join("q");
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--on-infected",
        &format!("quarantine={}", q.display()),
        p(&bad),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(!bad.exists());
    assert_eq!(std::fs::read_dir(&q).unwrap().count(), 1);
    // --move DIR, clamscan's short form of quarantine.
    let bad = write(&sub, "eicar3.com", eicar());
    let o = run(&["scan", "-s", &server.url(), "--move", p(&q), p(&bad)]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!bad.exists());
    assert_eq!(std::fs::read_dir(&q).unwrap().count(), 2);
    assert!(stdout(&o).contains("quarantined to"), "{o:?}");
    // The two forms cannot be combined.
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--remove",
        "--move",
        p(&q),
        p(&bad),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[tokio::test]
async fn scan_errors_exit_2_and_delete_on_scan_fail() {
    let port = refused_port().await;
    let url = format!("icap://127.0.0.1:{port}/avscan");
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", b"a");
    let o = run(&["scan", "-s", &url, p(&f)]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(f.exists());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ALERT"),
        "{o:?}"
    );
    let audit = dir.path().join("audit.jsonl");
    let o = run(&[
        "scan",
        "-s",
        &url,
        "--delete-on-scan-fail",
        "--audit-log",
        p(&audit),
        p(&f),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(!f.exists());
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        text.contains(&format!("ICAP removed {} due to scan fail", f.display())),
        "{text}"
    );
    // A missing file is an error too.
    let o = run(&["scan", "-s", &url, "/nonexistent/file"]).await;
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn scan_headers_size_limit_reqmod_and_config_file() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", b"0123456789");
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--header",
        "X-FILECLOUD-USER-NAME:alice",
        "-H",
        "X-FILECLOUD-USER-TYPE: guest",
        "--reqmod",
        p(&f),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let j = server.journal().await;
    let t = j
        .iter()
        .find(|t| t.method == icap_mock_server::Method::Reqmod)
        .unwrap();
    assert_eq!(
        t.icap_header("X-FILECLOUD-USER-NAME").as_deref(),
        Some("alice")
    );
    assert_eq!(
        t.icap_header("X-FILECLOUD-USER-TYPE").as_deref(),
        Some("guest")
    );

    server.clear_journal().await;
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--max-size",
        "5",
        "--json",
        p(&f),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json_lines(&o)[0]["report"]["reason"]["kind"], "too_large");
    assert!(respmods(&server.journal().await).is_empty());

    let cfg = dir.path().join("icap.toml");
    std::fs::write(
        &cfg,
        format!(
            "servers = [\"{}\"]\nmax_size = 100\n[identity]\nenabled = false\n[headers]\n\"X-Tenant\" = \"acme\"\n[policy]\non_infected = \"report\"\n",
            server.url()
        ),
    )
    .unwrap();
    let bad = write(dir.path(), "e.com", eicar());
    server.clear_journal().await;
    let o = run(&["scan", "--config", p(&cfg), p(&bad)]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(bad.exists(), "config says report");
    let j = server.journal().await;
    assert!(
        respmods(&j)[0].icap_header("X-Tenant").is_none(),
        "identity disabled"
    );
    // Flags override the file.
    let o = run(&[
        "scan",
        "--config",
        p(&cfg),
        "--on-infected",
        "delete",
        p(&bad),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(!bad.exists());
}

#[tokio::test]
async fn doctor_passes_and_fails() {
    let server = MockServer::start().await;
    let o = run(&["doctor", &server.url(), "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v = &json_lines(&o)[0];
    assert_eq!(v["pass"], true);
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "options",
            "tls",
            "clean sample",
            "eicar sample",
            "large sample",
            "oversize sample"
        ]
    );
    let o = run(&["doctor", &server.url()]).await;
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("[PASS] eicar sample"));

    // A server that finds nothing fails the EICAR check with a hint.
    let blind = MockServer::builder()
        .service(icap_mock_server::ServiceConfig::new("avscan").eicar(false))
        .start()
        .await;
    let o = run(&["doctor", &blind.url()]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("[FAIL] eicar sample"), "{}", stdout(&o));
    assert!(stdout(&o).contains("[SKIP] tls"), "{}", stdout(&o));
    assert!(
        stdout(&o)
            .lines()
            .last()
            .unwrap()
            .starts_with("verdict: NOT READY (eicar sample failed); next: the EICAR test file"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test]
async fn doctor_never_passes_what_it_did_not_check() {
    // A dead port: options fails, everything else is SKIP with the reason.
    let port = refused_port().await;
    let url = format!("icap://127.0.0.1:{port}/avscan");
    let o = run(&["doctor", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let out = stdout(&o);
    assert!(!out.contains("[PASS]"), "{out}");
    assert!(out.contains("[FAIL] options"), "{out}");
    assert!(out.contains("refused"), "{out}");
    for step in [
        "tls",
        "clean sample",
        "eicar sample",
        "large sample",
        "oversize sample",
    ] {
        assert!(out.contains(&format!("[SKIP] {step}")), "{step}: {out}");
    }
    assert_eq!(
        out.matches("not run: the server did not pass the OPTIONS check")
            .count(),
        4
    );
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("verdict: NOT READY (options failed); next: connection refused: is the ICAP server running"),
        "{last}"
    );
    // The same over icaps://: no handshake was reached, so TLS is not judged either way.
    let o = run(&[
        "doctor",
        &format!("icaps://127.0.0.1:{port}/avscan"),
        "--json",
    ])
    .await;
    assert_eq!(o.status.code(), Some(2));
    let v = &json_lines(&o)[0];
    assert_eq!(v["pass"], false);
    let status: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        ["fail", "skip", "skip", "skip", "skip", "skip"],
        "{v}"
    );
    assert!(
        v["next"].as_str().unwrap().contains("connection refused"),
        "{v}"
    );
    // A live mock: every check runs and passes (TLS is SKIP on plain icap://).
    let server = MockServer::start().await;
    let o = run(&["doctor", &server.url()]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    for step in [
        "options",
        "clean sample",
        "eicar sample",
        "large sample",
        "oversize sample",
    ] {
        assert!(out.contains(&format!("[PASS] {step}")), "{step}: {out}");
    }
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("verdict: READY; next: scan with: icap-client scan -s "),
        "{out}"
    );
    let o = run(&["doctor", &server.url(), "--json"]).await;
    let v = &json_lines(&o)[0];
    assert!(v["steps"][2]["ms"].is_u64(), "{v}");
}

#[tokio::test]
async fn doctor_over_tls_and_debug_logging() {
    let server = MockServer::builder().tls_generated().start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", server.ca_pem().unwrap().as_bytes());
    let o = run(&["doctor", &server.url(), "--tls-ca", p(&ca)]).await;
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("[PASS] tls"));
    // Payload logging shows the wire bytes on stderr; basic debug shows transactions.
    let plain = MockServer::start().await;
    let f = write(dir.path(), "a.txt", b"payload-marker");
    let o = run(&["--debug", "--debug-wire", "scan", "-s", &plain.url(), p(&f)]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("RESPMOD icap://"), "{err}");
    assert!(err.contains("payload-marker"));
    assert!(err.contains("scan finished"));
    let o = run(&["scan", "-s", &plain.url(), p(&f)]).await;
    assert!(!String::from_utf8_lossy(&o.stderr).contains("RESPMOD icap://"));
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn absurd_durations_exit_2_with_a_message_not_101() {
    let server = MockServer::start().await;
    let o = run(&[
        "options",
        &server.url(),
        "--connect-timeout",
        "99999999999999999999999h",
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--connect-timeout"), "{}", stderr(&o));
    assert!(stderr(&o).contains("too large"), "{}", stderr(&o));
    for (flag, v) in [
        ("--idle-timeout", "-1s"),
        ("--deadline", "1e300"),
        ("--retry-backoff", "soon"),
        ("--tcp-keepalive", "-2m"),
    ] {
        let arg = format!("{flag}={v}");
        let o = run(&["options", &server.url(), &arg]).await;
        assert_eq!(o.status.code(), Some(2), "{flag} {v}: {o:?}");
        assert!(stderr(&o).contains(flag), "{flag}: {}", stderr(&o));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.toml",
        format!(
            "servers = [\"{}\"]\n[timeouts]\nconnect = 1e300\n",
            server.url()
        )
        .as_bytes(),
    );
    let o = run(&["options", "--config", p(&cfg)]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("timeouts.connect"), "{}", stderr(&o));
    // Huge but valid: clamped, and the command works.
    let o = run(&[
        "options",
        &server.url(),
        "--connect-timeout",
        "1000000h",
        "--idle-timeout",
        "1000000h",
        "--tcp-keepalive",
        "off",
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[tokio::test]
async fn options_with_options_ttl_u64_max_exits_0() {
    let url = crate::settings::huge_ttl_server().await;
    let o = run(&["options", &url]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("options-ttl: 2592000 s"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("warning: Options-TTL: 18446744073709551615 clamped to 2592000 s"),
        "{}",
        stdout(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", b"fine");
    let o = run(&["scan", "-s", &url, "--preview", "off", p(&f)]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[tokio::test]
async fn no_allow_204_limits_and_jobs_flags() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", b"fine");
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--no-allow-204",
        "--preview",
        "off",
        "--retry-backoff",
        "10ms",
        "--retry-backoff-max",
        "1s",
        "--limit",
        "max_adapted_body=1048576",
        "-j",
        "3000000000000000000",
        p(&f),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let j = server.journal().await;
    assert!(!respmods(&j)[0].allow_204, "--no-allow-204");
    let o = run(&["options", &server.url(), "--limit", "max_head=40"]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stdout(&o).contains("limit"), "{}", stdout(&o));
    let o = run(&["options", &server.url(), "--limit", "max_hed=40"]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("unknown limit"), "{}", stderr(&o));
    let o = run(&["options", &server.url(), "--limit", "max_head=lots"]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[tokio::test]
async fn crlf_in_a_url_or_service_gives_a_one_line_message() {
    for args in [
        vec!["options", "icap://127.0.0.1:1/av\r\nX-Evil: 1"],
        vec![
            "options",
            "--host",
            "127.0.0.1",
            "--service",
            "av\r\nX-Evil: 1",
        ],
        vec!["options", "icap://127.0.0.1:1/avscan", "-H", "X-A\r\nB"],
        vec![
            "options",
            "icap://127.0.0.1:1/avscan",
            "--limit",
            "max\r\nhead=1",
        ],
    ] {
        let o = run(&args).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.contains(r"\r\n"), "{args:?}: {err:?}");
    }
}

#[tokio::test]
async fn doctor_with_an_absurd_preview_keeps_its_sample_bounded() {
    let url = crate::settings::raw_options_server("Preview: 99999999999\r\n").await;
    let o = run(&["doctor", &url, "--preview", "off"]).await;
    // The raw server calls EICAR clean, so doctor fails; what matters is that it ran.
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    // The codec clamps Preview to 64 KiB, and doctor bounds its sample in any case.
    assert!(
        stdout(&o).contains("262144 bytes (past the preview)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("warning: Preview: 99999999999 clamped to 65536"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test]
async fn options_and_doctor_say_when_istag_is_missing() {
    let url = crate::settings::no_istag_server().await;
    let o = run(&["options", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stdout(&o).contains("UNUSABLE"), "{}", stdout(&o));
    assert!(stdout(&o).contains("missing_is_tag"), "{}", stdout(&o));
    let o = run(&["options", &url, "--json"]).await;
    assert_eq!(json_lines(&o)[0]["diagnosis"]["kind"], "missing_is_tag");
    let o = run(&["doctor", &url]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stdout(&o).contains("[FAIL] options") && stdout(&o).contains("UNUSABLE: no ISTag"),
        "{}",
        stdout(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", b"fine");
    let o = run(&["scan", "-s", &url, "--preview", "off", p(&f)]).await;
    assert_eq!(o.status.code(), Some(2), "no ISTag: not scanned {o:?}");
    let o = run(&[
        "scan",
        "-s",
        &url,
        "--preview",
        "off",
        "--lenient-istag",
        p(&f),
    ])
    .await;
    assert_eq!(o.status.code(), Some(0), "--lenient-istag {o:?}");
}

#[tokio::test]
async fn errors_print_each_cause_once_and_say_what_to_do() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let o = run(&[
        "scan",
        "-s",
        "icaps://127.0.0.1:1/avscan",
        "--tls-ca",
        "/nonexistent/ca.pem",
        p(f.path()),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o),
        "icap-client: CA file \"/nonexistent/ca.pem\": No such file or directory (os error 2)\n"
    );
    // A connect error: the OS's reason once, in the per-file line and in the alert.
    let port = refused_port().await;
    let o = run(&["options", &format!("icap://127.0.0.1:{port}/avscan")]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("error:"))
        .expect("an error line");
    assert_eq!(
        line.trim(),
        format!("error: connect 127.0.0.1:{port}: Connection refused (os error 111)")
    );
    // Errors that say what to do.
    let o = run(&["scan", "-s", "127.0.0.1:1344/avscan", p(f.path())]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o).contains("missing icap:// or icaps://"),
        "{}",
        stderr(&o)
    );
    let o = run(&["scan", p(f.path())]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o).contains("give --server URL or --config FILE"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_dead_server_is_said_once_then_one_line_per_file() {
    let port = refused_port().await;
    let url = format!("icap://127.0.0.1:{port}/avscan");
    let dir = tempfile::tempdir().unwrap();
    for i in 0..18 {
        write(dir.path(), &format!("f{i:02}.txt"), b"data");
    }
    write(dir.path(), "empty.txt", b"");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling")).unwrap();
    let o = run(&["scan", "-s", &url, "--jobs", "4", p(dir.path())]).await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let out = stdout(&o);
    let err = stderr(&o);
    // One line per path on stdout.
    assert_eq!(out.lines().count(), 20, "{out}");
    assert_eq!(
        out.matches(": ERROR (server unreachable)").count(),
        18,
        "{out}"
    );
    assert!(out.contains("empty.txt: Empty file"), "{out}");
    assert!(out.contains("dangling: Symbolic link (dangling)"), "{out}");
    // The server's trouble once, with its cause; no per-file alert or notice, no log
    // line, no escape sequence in a pipe.
    let alerts: Vec<&str> = err.lines().filter(|l| l.starts_with("ALERT")).collect();
    assert_eq!(alerts.len(), 1, "{err}");
    assert!(alerts[0].contains(&url), "{err}");
    assert!(alerts[0].contains("Connection refused"), "{err}");
    assert!(!err.contains("NOTICE"), "{err}");
    assert!(!err.contains("WARN"), "{err}");
    assert!(!err.contains('\u{1b}') && !out.contains('\u{1b}'), "{err}");
    // The summary agrees with the exit code.
    assert!(err.contains("Errors: 18\n"), "{err}");
    assert!(err.contains("Skipped: 2 "), "{err}");
    assert!(err.contains("Exit code: 2 (18 errors)"), "{err}");
    // Log lines too are plain text in a pipe.
    let o = run(&["--debug", "scan", "-s", &url, p(dir.path())]).await;
    let err = stderr(&o);
    assert!(err.contains("DEBUG"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
}

#[tokio::test]
async fn too_large_counts_as_not_scanned_and_explains_exit_2() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let small = write(dir.path(), "small.txt", b"ok");
    let big = write(dir.path(), "big.bin", &[b'a'; 100]);
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--max-size",
        "10",
        p(&small),
        p(&big),
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = stderr(&o);
    assert!(err.contains("Scanned files: 1\n"), "{err}");
    assert!(err.contains("Not scanned: 1 (1 too large)\n"), "{err}");
    assert!(err.contains("Errors: 0\n"), "{err}");
    assert!(
        err.contains("Exit code: 2 (1 not scanned (1 too large for the size limit))"),
        "{err}"
    );
    let o = run(&[
        "scan",
        "-s",
        &server.url(),
        "--max-size",
        "10",
        "--json",
        p(&big),
    ])
    .await;
    let last = json_lines(&o).pop().unwrap();
    assert_eq!(last["summary"]["not_scanned"], 1, "{last}");
    assert_eq!(last["summary"]["too_large"], 1);
    assert_eq!(last["summary"]["exit_code"], 2);
}

#[tokio::test]
async fn scan_progress_moves_on_a_terminal_and_is_silent_in_a_pipe() {
    use icap_mock_server::{Fault, Mock};
    let server = MockServer::start().await;
    Mock::given(icap_mock_server::matchers::method(
        icap_mock_server::Method::Respmod,
    ))
    .respond_with(Fault::delay(std::time::Duration::from_millis(1500)))
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().unwrap();
    let slow = write(dir.path(), "slow-file.bin", &vec![b'a'; 200_000]);
    let url = server.url();
    let o = icap_test_support::on_terminal(
        env!("CARGO_BIN_EXE_icap-client"),
        &["scan", "-s", &url, p(&slow)],
        std::time::Duration::from_secs(30),
    )
    .await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let lines = icap_test_support::drawn_lines(&text, &["files ·", "sent"]);
    assert!(lines.len() >= 2, "no progress line in: {text:?}");
    let mut distinct = lines.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= 2, "the line never changed: {lines:?}");
    // The file in flight, its bytes and a rate.
    assert!(
        lines.iter().any(|l| l.contains("slow-file.bin")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("KiB") || l.contains("kB")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l.contains("/s")), "{lines:?}");
    assert!(text.contains("slow-file.bin: OK"), "{text}");
    // Piped: no progress at all.
    let o = run(&["scan", "-s", &server.url(), p(&slow)]).await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(!stderr(&o).contains("files ·"), "{}", stderr(&o));
    assert!(!stderr(&o).contains('\r'), "{}", stderr(&o));
}

#[tokio::test]
async fn the_config_files_on_infected_applies_when_no_flag_is_given() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.toml",
        format!(
            "servers = [\"{}\"]\n[policy]\non_infected = \"delete\"\n",
            server.url()
        )
        .as_bytes(),
    );
    let files = tempfile::tempdir().unwrap();
    let bad = write(files.path(), "e.com", eicar());
    // A flag wins over the file: kept.
    let o = run(&[
        "scan",
        "--config",
        p(&cfg),
        "--on-infected",
        "report",
        p(&bad),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(bad.exists());
    // No flag: the file's word, delete.
    let o = run(&["scan", "--config", p(&cfg), p(&bad)]).await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(!bad.exists());
    assert!(stdout(&o).contains("(deleted)"), "{o:?}");
}
