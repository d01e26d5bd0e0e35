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

/// One request on an open connection (keep-alive); the status, content type and JSON.
async fn on(
    s: &mut tokio::net::TcpStream,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, Value) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = icap_test_support::read_until(s, b"\r\n\r\n").await;
    let head = String::from_utf8(head).unwrap();
    let field = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let len: usize = field("content-length").parse().unwrap();
    let mut json = vec![0; len];
    s.read_exact(&mut json).await.unwrap();
    (
        head[9..12].parse().unwrap(),
        field("content-type"),
        serde_json::from_slice(&json).unwrap(),
    )
}

/// The README's reference rows: (method, path, example body, first status).
fn documented_routes() -> Vec<(String, String, String, u16)> {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("### Reference").unwrap()..];
    section
        .lines()
        .take_while(|l| !l.starts_with("Journal query"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let unquote = |c: &str| c.strip_prefix('`')?.strip_suffix('`').map(str::to_owned);
            let method = unquote(cells.get(1)?)?;
            let path = unquote(cells.get(2)?)?;
            let body = unquote(cells.get(4)?).unwrap_or_default();
            let status = cells.get(5)?.get(1..4)?.parse().ok()?;
            Some((method, path, body, status))
        })
        .collect()
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let rows = documented_routes();
    assert!(rows.len() >= 13, "{rows:?}");
    for (method, path, body, want) in &rows {
        let (_server, admin) = admin_server().await;
        let path = if path.contains("{id}") {
            let (st, v) = http(admin, "POST", "/rules", r#"{"name":"r"}"#).await;
            assert_eq!(st, 201);
            path.replace("{id}", &v["id"].to_string())
        } else {
            path.clone()
        };
        let (st, _) = http(admin, method, &path, body).await;
        assert_eq!(st, *want, "{method} {path} {body}");
    }
    // The server's own list (given with a 404) is the table's, no more, no less.
    let (_server, admin) = admin_server().await;
    let (st, v) = http(admin, "GET", "/nope", "").await;
    assert_eq!(st, 404);
    let mut served: Vec<String> = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let mut documented: Vec<String> = rows.iter().map(|(m, p, _, _)| format!("{m} {p}")).collect();
    served.sort();
    documented.sort();
    assert_eq!(served, documented);
}

#[tokio::test]
async fn keep_alive_json_everywhere_and_bounded_bodies() {
    let server = MockServer::builder()
        .admin("127.0.0.1:0".parse().unwrap())
        .admin_body_limit(64)
        .start()
        .await;
    let mut s = tokio::net::TcpStream::connect(server.admin_addr().unwrap())
        .await
        .unwrap();
    let (st, ct, _) = on(&mut s, "GET", "/health", "").await;
    assert_eq!((st, ct.as_str()), (200, "application/json"));
    // The same connection serves the next requests, errors included.
    let (st, ct, v) = on(&mut s, "PUT", "/journal", "").await;
    assert_eq!((st, ct.as_str()), (405, "application/json"));
    assert!(v["error"].is_string());
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(100));
    let (st, ct, v) = on(&mut s, "POST", "/rules", &big).await;
    assert_eq!((st, ct.as_str()), (413, "application/json"), "{v}");
    assert!(v["error"].as_str().unwrap().contains("64 bytes"));
    let (st, _, v) = on(&mut s, "GET", "/rules/abc", "").await;
    assert_eq!(st, 400, "{v}");
    let (st, _, v) = on(&mut s, "GET", "/journal?limt=1", "").await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("limit, after, since, service, filename, unmatched"),
        "{v}"
    );
    let (st, _, _) = on(&mut s, "GET", "/rules", "").await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn names_listed_defaults_echoed_one_vocabulary() {
    let (_server, admin) = admin_server().await;
    let (st, v) = http(admin, "POST", "/faults", r#"{"fault":"never_anwser"}"#).await;
    assert_eq!(st, 400);
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("\"never_anwser\"")
            && e.contains("never_answer")
            && e.contains("accept_and_close"),
        "{e}"
    );
    let (st, v) = http(admin, "POST", "/rules", r#"{"then":{"verdict":"infectd"}}"#).await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("scan, clean, infected"),
        "{v}"
    );
    // A delay without delay_ms says how long it waits; an alias comes back canonical.
    let (st, v) = http(admin, "POST", "/faults", r#"{"fault":"slow"}"#).await;
    assert_eq!(
        (st, v["fault"].as_str(), v["delay_ms"].as_u64()),
        (201, Some("delay"), Some(5000))
    );
    let (_, v) = http(admin, "POST", "/rules", r#"{"then":{"verdict":"error"}}"#).await;
    assert_eq!(v["then"]["status"], 500);
    assert_eq!(v["then"]["error_code"], "internal_error");
    // Outage names: what POST /faults answers is what /health reports.
    for (asked, name) in [
        ("outage", "refuse"),
        ("refuse", "refuse"),
        ("accept_and_close", "accept_and_close"),
        ("none", "none"),
    ] {
        let (st, v) = http(
            admin,
            "POST",
            "/faults",
            &format!(r#"{{"fault":"{asked}"}}"#),
        )
        .await;
        assert_eq!((st, v["outage"].as_str()), (200, Some(name)));
        assert_eq!(http(admin, "GET", "/health", "").await.1["outage"], name);
    }
}

#[tokio::test]
async fn rules_by_id_journal_filters_and_reset() {
    let (server, admin) = admin_server().await;
    let rule =
        r#"{"name":"zip","when":{"filename":"*.zip"},"then":{"verdict":"infected"},"times":5}"#;
    let id = http(admin, "POST", "/rules", rule).await.1["id"]
        .as_u64()
        .unwrap();
    let (st, v) = http(admin, "GET", &format!("/rules/{id}"), "").await;
    assert_eq!(st, 200);
    assert_eq!(v["when"]["filename"], "*.zip");
    assert_eq!(v["then"]["threat"], "Mock.Rule");
    assert_eq!(
        (v["times"].as_u64(), v["source"].as_str()),
        (Some(5), Some("admin"))
    );
    assert_eq!(
        http(admin, "GET", "/rules", "").await.1[0]["when"]["filename"],
        "*.zip"
    );
    assert_eq!(
        http(admin, "GET", &format!("/rules/{}", id + 1), "")
            .await
            .0,
        404
    );
    let mut c = Conn::open(server.addr()).await;
    for path in ["/a.zip", "/b.txt", "/c.zip"] {
        c.send(&respmod_with_url(
            "avscan",
            "Allow: 204\r\n",
            path,
            &one_chunk(b"x"),
        ))
        .await;
        c.answer(Method::Respmod).await;
    }
    let count = |q: &str| {
        let q = q.to_owned();
        async move {
            http(admin, "GET", &format!("/journal/count{q}"), "")
                .await
                .1["count"]
                .as_u64()
        }
    };
    assert_eq!(count("").await, Some(3));
    assert_eq!(count("?filename=*.zip").await, Some(2));
    assert_eq!(count("?unmatched=true").await, Some(1));
    assert_eq!(count("?unmatched=false").await, Some(2));
    assert_eq!(count("?service=other").await, Some(0));
    let all = http(admin, "GET", "/journal", "").await.1;
    let first = all[0]["id"].as_u64().unwrap();
    let (_, v) = http(admin, "GET", &format!("/journal?after={first}&limit=1"), "").await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], all[1]["id"]);
    // `since` is a time: from the second entry's own time stamp on, it and the third are
    // kept (the first too if it came in the same millisecond); after the last, none.
    let t1 = all[1]["received_at"].as_str().unwrap().to_owned();
    let last = all[2]["received_at_unix_ms"].as_u64().unwrap();
    let since = |q: String| async move {
        http(admin, "GET", &format!("/journal/count?since={q}"), "").await
    };
    let (st, v) = since(t1).await;
    assert_eq!(st, 200, "{v}");
    assert!((2..=3).contains(&v["count"].as_u64().unwrap()), "{v}");
    let (_, v) = since((last + 1).to_string()).await;
    assert_eq!(v["count"], 0, "nothing after the last entry: {v}");
    let (st, v) = since("yesterday".into()).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("RFC 3339"), "{v}");
    // Reset: rules, faults, journal and outage at once.
    http(admin, "POST", "/faults", r#"{"fault":"refuse"}"#).await;
    let (st, v) = http(admin, "POST", "/reset", "").await;
    assert_eq!(
        (st, v["removed_rules"].as_u64(), v["outage"].as_str()),
        (200, Some(1), Some("none"))
    );
    assert_eq!(count("").await, Some(0));
    assert_eq!(
        http(admin, "GET", "/rules", "").await.1,
        Value::Array(vec![])
    );
    assert_eq!(http(admin, "GET", "/health", "").await.1["outage"], "none");
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_ok());
}

/// `priority` in a config file's `[[rule]]` orders rules as in Rust (lower first, then the
/// first mounted); `GET /rules` shows config rules with their `when`/`then` and
/// `"source":"config"`; a fault switched on through `POST /faults` (priority 0) overrides
/// the rules mounted before it, even one of priority 1.
#[tokio::test]
async fn config_rules_have_priorities_and_show_what_they_were_written_as() {
    let toml = r#"
[[rule]]
name = "first mounted, default priority"
when = { filename = "*.txt" }
then = { verdict = "clean" }

[[rule]]
name = "mounted second, priority 1"
when = { filename = "*.txt" }
then = { verdict = "infected", threat = "Config.Priority" }
priority = 1
"#;
    let file = icap_mock_server::config::ConfigFile::from_toml(toml).unwrap();
    let server = MockServer::builder()
        .config(file.settings().unwrap())
        .admin("127.0.0.1:0".parse().unwrap())
        .start()
        .await;
    let admin = server.admin_addr().unwrap();
    let scan = || async {
        let mut c = Conn::open(server.addr()).await;
        c.send(&respmod_with_url(
            "avscan",
            "Allow: 204\r\n",
            "/a.txt",
            &one_chunk(b"hello"),
        ))
        .await;
        c.answer(Method::Respmod).await
    };
    let a = scan().await;
    assert!(
        a.header("X-Infection-Found")
            .is_some_and(|v| v.contains("Config.Priority")),
        "the priority-1 rule answers: {}",
        a.text()
    );
    let (st, rules) = http(admin, "GET", "/rules", "").await;
    assert_eq!(st, 200);
    let rules = rules.as_array().unwrap().clone();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(
        rules[0]["name"], "mounted second, priority 1",
        "precedence order"
    );
    assert_eq!(rules[0]["priority"], 1);
    assert_eq!(rules[1]["priority"], 5);
    for r in &rules {
        assert_eq!(r["source"], "config", "{r}");
        assert_eq!(r["when"]["filename"], "*.txt", "{r}");
        assert!(r["then"]["verdict"].is_string(), "{r}");
    }
    // A fault switched on now wins over both.
    let (st, _) = http(
        admin,
        "POST",
        "/faults",
        r#"{"fault":"unknown_status","status":599}"#,
    )
    .await;
    assert_eq!(st, 201);
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/a.txt",
        &one_chunk(b"hi"),
    ))
    .await
    .unwrap();
    let head = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        icap_test_support::read_until(&mut s, b"\r\n\r\n"),
    )
    .await
    .expect("an answer head in time");
    assert!(
        String::from_utf8_lossy(&head).starts_with("ICAP/1.0 599"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// Rules mounted in Rust show what they were built from when their matchers and responder
/// can say it (the built-in ones can); a closure shows only its counters.
#[tokio::test]
async fn code_rules_describe_built_in_matchers_and_replies() {
    use icap_mock_server::{Fault, Mock, Reply, matchers};
    let (server, admin) = admin_server().await;
    Mock::given(matchers::filename("*.zip"))
        .and(matchers::method(Method::Respmod))
        .and(matchers::not(matchers::icap_header_exists("X-Skip")))
        .respond_with(Reply::error(500, "password_protected"))
        .named("zip")
        .mount(&server)
        .await;
    Mock::given(matchers::body_size(10..=20))
        .respond_with(Fault::reset())
        .mount(&server)
        .await;
    Mock::given(|r: &icap_mock_server::Request| r.body_len > 3)
        .respond_with(Reply::clean())
        .mount(&server)
        .await;
    let (st, rules) = http(admin, "GET", "/rules", "").await;
    assert_eq!(st, 200);
    let rules = rules.as_array().unwrap().clone();
    assert_eq!(rules.len(), 3, "{rules:?}");
    let zip = &rules[0];
    assert_eq!(zip["source"], "code", "{zip}");
    assert_eq!(zip["when"][0]["filename"], "*.zip", "{zip}");
    assert_eq!(zip["when"][1]["method"], "RESPMOD", "{zip}");
    assert_eq!(
        zip["when"][2]["not"]["icap_header"]["name"], "X-Skip",
        "{zip}"
    );
    assert!(
        zip["then"]["reply"]
            .as_str()
            .unwrap()
            .contains("password_protected"),
        "{zip}"
    );
    let reset = &rules[1];
    assert_eq!(reset["when"][0]["body_size_min"], 10, "{reset}");
    assert_eq!(reset["when"][0]["body_size_max"], 20, "{reset}");
    assert_eq!(reset["then"]["fault"], "reset", "{reset}");
    let closure = &rules[2];
    assert_eq!(closure["source"], "code");
    assert!(
        closure.get("when").is_none(),
        "a closure has no text: {closure}"
    );
    drop(server);
}
