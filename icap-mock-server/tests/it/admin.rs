//! The HTTP admin API, driven with raw HTTP/1.1 requests.

use std::net::SocketAddr;

use icap_mock_server::MockServer;
use icap_proto::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

pub(crate) async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, json) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

async fn admin_server() -> (MockServer, SocketAddr) {
    let server = MockServer::builder()
        .admin("127.0.0.1:0".parse().unwrap())
        .start()
        .await;
    let admin = server.admin_addr().unwrap();
    (server, admin)
}

#[tokio::test]
async fn health_journal_and_clear() {
    let (server, admin) = admin_server().await;
    let (st, v) = http(admin, "GET", "/health", "").await;
    assert_eq!(
        (st, v["status"].as_str(), v["outage"].as_str()),
        (200, Some("ok"), Some("none"))
    );
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "X-Client-IP: 192.0.2.7\r\nAllow: 204\r\n",
        RES_HDR,
        &one_chunk(EICAR),
    ))
    .await;
    c.answer(Method::Respmod).await;
    let (st, v) = http(admin, "GET", "/journal", "").await;
    assert_eq!(st, 200);
    let t = &v[0];
    assert_eq!(t["method"], "RESPMOD");
    assert_eq!(t["status"], 200);
    assert_eq!(t["threat"], "Eicar-Test-Signature");
    assert_eq!(t["body_len"], 68);
    assert!(
        t["icap_headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "X-Client-IP" && h[1] == "192.0.2.7")
    );
    assert_eq!(t["http_response"]["status"], 200);
    assert_eq!(http(admin, "DELETE", "/journal", "").await.0, 200);
    assert_eq!(
        http(admin, "GET", "/journal", "").await.1,
        Value::Array(vec![])
    );
    assert_eq!(http(admin, "GET", "/nope", "").await.0, 404);
    assert_eq!(http(admin, "PUT", "/journal", "").await.0, 405);
}

#[tokio::test]
async fn rules_added_and_removed() {
    let (server, admin) = admin_server().await;
    let istag = server.istag();
    let rule = r#"{"name":"zip","when":{"filename":"*.zip"},"then":{"verdict":"error","error_code":"password_protected"},"expect":1}"#;
    let (st, v) = http(admin, "POST", "/rules", rule).await;
    assert_eq!(st, 201);
    let id = v["id"].as_u64().unwrap();
    assert_ne!(server.istag(), istag);
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/f/a.zip",
        &one_chunk(b"PK"),
    ))
    .await;
    assert_eq!(
        c.answer(Method::Respmod)
            .await
            .header("X-Error-Code")
            .as_deref(),
        Some("password_protected")
    );
    let (st, v) = http(admin, "GET", "/rules", "").await;
    assert_eq!((st, v[0]["applied"].as_u64()), (200, Some(1)));
    assert_eq!(http(admin, "GET", "/verify", "").await.0, 200);
    assert_eq!(
        http(admin, "DELETE", &format!("/rules/{id}"), "").await.0,
        200
    );
    assert_eq!(
        http(admin, "DELETE", &format!("/rules/{id}"), "").await.0,
        404
    );
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/f/a.zip",
        &one_chunk(b"PK"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    // Invalid rules are refused with a reason.
    let (st, v) = http(admin, "POST", "/rules", r#"{"then":{"fault":"explode"}}"#).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("explode"));
    assert_eq!(http(admin, "POST", "/rules", "{not json").await.0, 400);
    // An unmet expectation shows in /verify.
    http(
        admin,
        "POST",
        "/rules",
        r#"{"name":"never","when":{"filename":"*.never"},"expect":1}"#,
    )
    .await;
    let (st, v) = http(admin, "GET", "/verify", "").await;
    assert_eq!(st, 409);
    assert!(v["unmet"][0].as_str().unwrap().contains("never"));
    assert_eq!(http(admin, "DELETE", "/rules", "").await.1["removed"], 1);
}

#[tokio::test(start_paused = true)]
async fn faults_next_n_requests_time_out() {
    let (server, admin) = admin_server().await;
    let (st, _) = http(
        admin,
        "POST",
        "/faults",
        r#"{"fault":"never_answer","times":2}"#,
    )
    .await;
    assert_eq!(st, 201);
    for _ in 0..2 {
        let mut c = Conn::open(server.addr()).await;
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &one_chunk(b"x"),
        ))
        .await;
        assert!(c.silent_for(std::time::Duration::from_secs(30)).await);
    }
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn outage_on_and_off() {
    let (server, admin) = admin_server().await;
    assert_eq!(
        http(admin, "POST", "/faults", r#"{"fault":"outage"}"#)
            .await
            .0,
        200
    );
    assert_eq!(
        http(admin, "GET", "/health", "").await.1["outage"],
        "refuse"
    );
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
    http(
        admin,
        "POST",
        "/faults",
        r#"{"fault":"delay","delay_ms":1}"#,
    )
    .await;
    let (st, v) = http(admin, "DELETE", "/faults", "").await;
    assert_eq!((st, v["removed"].as_u64()), (200, Some(1)));
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}
