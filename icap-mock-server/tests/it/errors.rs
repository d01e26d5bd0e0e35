//! Error answers and protection against hostile clients.

use std::time::Duration;

use icap_mock_server::{Limits, Mock, MockServer, Reply, ServiceConfig, matchers::any};
use icap_proto::Method;

use crate::support::*;

#[tokio::test]
async fn malformed_requests_get_400_and_close() {
    let server = MockServer::start().await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n", // no Encapsulated
        b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nEncapsulated: res-hdr=0, res-body=5\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\nHost: x\n\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ] {
        let mut c = Conn::open(server.addr()).await;
        c.send(bad).await;
        let (bytes, _) = c.read_to_close().await;
        assert!(bytes.starts_with(b"ICAP/1.0 400 "), "{:?} -> {:?}", String::from_utf8_lossy(bad), String::from_utf8_lossy(&bytes));
    }
    // Bad chunk in the body: 400 too.
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, b"zz\r\nhello\r\n0\r\n\r\n"))
        .await;
    let (bytes, _) = c.read_to_close().await;
    assert!(
        bytes.starts_with(b"ICAP/1.0 400 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[tokio::test]
async fn unknown_method_is_501_and_bad_version_505() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(b"FROB icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    assert!(c.read_to_close().await.0.starts_with(b"ICAP/1.0 501 "));
    let mut c = Conn::open(server.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/2.0\r\nHost: x\r\n\r\n")
        .await;
    assert!(c.read_to_close().await.0.starts_with(b"ICAP/1.0 505 "));
}

#[tokio::test]
async fn unknown_service_is_404_and_the_connection_stays_usable() {
    let server = MockServer::start().await;
    assert!(server.url_for("nope").ends_with("/nope"));
    let mut c = Conn::open(server.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/nope ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(c.answer(Method::Options).await.status(), 404);
    c.send(&respmod("nope", "", RES_HDR, &one_chunk(b"body")))
        .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 404);
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"body"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    let j = server.journal().await;
    assert_eq!(
        j.iter().map(|t| t.status).collect::<Vec<_>>(),
        [Some(404), Some(404), Some(204)]
    );
}

#[tokio::test]
async fn method_not_allowed_for_the_service_is_405() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("resp").methods(&[Method::Respmod]))
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&reqmod("resp", "", "/up", &one_chunk(b"x"))).await;
    let a = c.answer(Method::Reqmod).await;
    assert_eq!(a.status(), 405);
    assert_eq!(a.header("Allow").as_deref(), Some("OPTIONS, RESPMOD"));
    c.send(b"OPTIONS icap://127.0.0.1/resp ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let o = icap_proto::OptionsResponse::from_head(&c.answer(Method::Options).await.head).unwrap();
    assert_eq!(o.methods, vec![Method::Respmod]);
}

#[tokio::test]
async fn error_500_with_x_error_code_and_bare_statuses() {
    let server = MockServer::start().await;
    Mock::given(icap_mock_server::matchers::filename("*.zip"))
        .respond_with(Reply::error(500, "password_protected"))
        .mount(&server)
        .await;
    Mock::given(icap_mock_server::matchers::filename("*.busy"))
        .respond_with(Reply::status(503))
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/a/secret.zip",
        &one_chunk(b"PK"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 500);
    assert_eq!(
        a.header("X-Error-Code").as_deref(),
        Some("password_protected")
    );
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/a/b.busy",
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 503);
}

#[tokio::test]
async fn over_max_connections_is_503() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").max_connections(Some(2)))
        .start()
        .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = Conn::open(server.addr()).await;
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &one_chunk(b"x"),
        ))
        .await;
        assert_eq!(c.answer(Method::Respmod).await.status(), 204);
        held.push(c);
    }
    let mut third = Conn::open(server.addr()).await;
    third
        .send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &one_chunk(b"x"),
        ))
        .await;
    assert_eq!(third.answer(Method::Respmod).await.status(), 503);
    // A slot frees when a connection closes.
    drop(held.pop());
    let mut ok = false;
    for _ in 0..50 {
        let mut c = Conn::open(server.addr()).await;
        c.send(&respmod(
            "avscan",
            "Allow: 204\r\n",
            RES_HDR,
            &one_chunk(b"x"),
        ))
        .await;
        if c.answer(Method::Respmod).await.status() == 204 {
            ok = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(ok, "slot never freed");
}

#[tokio::test]
async fn limits_are_enforced() {
    let server = MockServer::builder()
        .limits(Limits::default().with_max_head(512).with_max_body(1000))
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    let big = format!("X-Big: {}\r\n", "a".repeat(600));
    c.send(&respmod("avscan", &big, RES_HDR, &one_chunk(b"x")))
        .await;
    assert!(c.read_to_close().await.0.starts_with(b"ICAP/1.0 400 "));
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(&filler(2000))))
        .await;
    assert!(c.read_to_close().await.0.starts_with(b"ICAP/1.0 400 "));
}

#[tokio::test(start_paused = true)]
async fn slow_head_hits_the_header_read_timeout() {
    let server = MockServer::builder()
        .header_read_timeout(Duration::from_secs(5))
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n")
        .await;
    let started = tokio::time::Instant::now();
    let (bytes, _) = c.read_to_close().await;
    assert!(
        bytes.starts_with(b"ICAP/1.0 408 "),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_keep_alive_connections_are_closed() {
    let server = MockServer::builder()
        .idle_timeout(Duration::from_secs(30))
        .start()
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    let started = tokio::time::Instant::now();
    let (bytes, _) = c.read_to_close().await;
    assert!(bytes.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn garbage_input_never_panics_the_server() {
    let server = MockServer::start().await;
    let mut seed = 0x1234_5678_u64;
    for i in 0..60 {
        let mut c = Conn::open(server.addr()).await;
        let mut junk = respmod(
            "avscan",
            "Preview: 4\r\n",
            RES_HDR,
            &chunks(&[b"abcd"], "0\r\n\r\n"),
        );
        for _ in 0..=(i % 7) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let at = (seed >> 33) as usize % junk.len();
            junk[at] = (seed >> 17) as u8;
        }
        c.send(&junk).await;
        c.stream.shutdown_write().await;
    }
    // Still serving.
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

trait ShutdownWrite {
    async fn shutdown_write(&mut self);
}

impl ShutdownWrite for tokio::net::TcpStream {
    async fn shutdown_write(&mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.shutdown().await;
    }
}

#[tokio::test]
async fn any_matcher_is_exported() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Reply::clean())
        .expect(1)
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 200);
    server.verify().await;
}
