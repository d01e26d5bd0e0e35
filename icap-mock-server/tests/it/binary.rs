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
