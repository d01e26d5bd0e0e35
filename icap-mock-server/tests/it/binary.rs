//! The `icap-mock-server` program: the ready lines scripts wait for, TLS CA output, config.

use std::process::Stdio;

use icap_proto::Method;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

struct Running {
    child: Child,
    lines: Vec<String>,
}

async fn run(args: &[&str], ready_lines: usize) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_icap-mock-server"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    while lines.len() < ready_lines {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), out.next_line())
            .await
            .expect("ready line in time")
            .unwrap()
            .expect("a line");
        lines.push(line);
    }
    Running { child, lines }
}

fn addr_of(line: &str, prefix: &str) -> std::net::SocketAddr {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line}"));
    rest.split('/').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn prints_ready_lines_and_serves() {
    let mut r = run(&["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"], 2).await;
    assert!(
        r.lines[0].starts_with("listening on icap://127.0.0.1:") && r.lines[0].ends_with("/avscan")
    );
    let addr = addr_of(&r.lines[0], "listening on icap://");
    let admin = addr_of(&r.lines[1], "admin on http://");
    let mut c = Conn::open(addr).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    assert!(
        c.answer(Method::Respmod)
            .await
            .header("X-Infection-Found")
            .is_some()
    );
    // The journal entry is completed just after the answer is written: wait for it.
    let mut got = (0, None);
    for _ in 0..100 {
        let (st, v) = crate::admin::http(admin, "GET", "/journal", "").await;
        got = (st, v[0]["threat"].as_str().map(str::to_owned));
        if got.1.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(got, (200, Some("Eicar-Test-Signature".to_owned())));
    r.child.kill().await.unwrap();
}

#[tokio::test]
async fn tls_writes_the_ca_and_config_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let cfg = dir.path().join("mock.toml");
    std::fs::write(
        &cfg,
        "[[service]]\nname = \"scan\"\ndialect = \"kaspersky\"\n",
    )
    .unwrap();
    let mut r = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--ca-out",
            ca.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        1,
    )
    .await;
    assert!(
        r.lines[0].starts_with("listening on icaps://127.0.0.1:") && r.lines[0].ends_with("/scan"),
        "{}",
        r.lines[0]
    );
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    r.child.kill().await.unwrap();
}

#[tokio::test]
async fn dialect_and_services_from_flags() {
    let mut r = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--dialect",
            "symantec",
            "--service",
            "first",
            "--service",
            "second=kaspersky",
        ],
        1,
    )
    .await;
    assert!(r.lines[0].ends_with("/first"), "{}", r.lines[0]);
    let addr = addr_of(&r.lines[0], "listening on icap://");
    // `first` takes the --dialect default, `second` its own.
    for (service, threat) in [
        ("first", "EICAR Test String"),
        ("second", "EICAR-Test-File"),
    ] {
        let mut c = Conn::open(addr).await;
        c.send(&respmod(service, "", RES_HDR, &one_chunk(EICAR)))
            .await;
        let text = c.answer(Method::Respmod).await.text();
        assert!(text.contains(threat), "{service}: {text}");
    }
    // avscan is not served once services are named.
    let mut c = Conn::open(addr).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(b"x")))
        .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 404);
    r.child.kill().await.unwrap();
}

#[tokio::test]
async fn dialect_alone_applies_to_avscan() {
    let mut r = run(&["--listen", "127.0.0.1:0", "--dialect", "sophos"], 1).await;
    let addr = addr_of(&r.lines[0], "listening on icap://");
    let mut c = Conn::open(addr).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    let text = c.answer(Method::Respmod).await.text();
    assert!(text.contains("EICAR-AV-Test"), "{text}");
    r.child.kill().await.unwrap();
}

fn output(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_icap-mock-server"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_dialects_and_points_at_the_config_reference() {
    let out = output(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for d in icap_mock_server::Dialect::ALL {
        assert!(text.contains(d.name()), "{} missing:\n{text}", d.name());
    }
    assert!(text.contains("--service <NAME[=DIALECT]>"), "{text}");
    assert!(text.contains("\"Configuration file\" section"), "{text}");
}

#[test]
fn unknown_dialect_is_refused_with_the_valid_names() {
    for args in [&["--dialect", "clamv"][..], &["--service", "x=clamv"][..]] {
        let out = output(args);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("unknown dialect \"clamv\"") && err.contains("c-icap, symantec"),
            "{err}"
        );
    }
}
