//! Every fault, triggers, and outages. Timing faults run on a paused clock.

use std::io::ErrorKind;
use std::time::Duration;

use icap_mock_server::matchers::any;
use icap_mock_server::{Fault, Mock, MockServer, Outage, Reply};
use icap_proto::Method;
use tokio::time::Instant;

use crate::support::*;

async fn with_fault(f: Fault) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(f).mount(&server).await;
    server
}

fn clean_req() -> Vec<u8> {
    respmod("avscan", "Allow: 204\r\n", RES_HDR, &one_chunk(b"hello"))
}

#[tokio::test(start_paused = true)]
async fn delay_before_the_response() {
    let server = with_fault(Fault::delay(Duration::from_secs(7))).await;
    let mut c = Conn::open(server.addr()).await;
    let t = Instant::now();
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(EICAR),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert!(t.elapsed() >= Duration::from_secs(7));
    // Then the normal verdict.
    assert!(a.header("X-Infection-Found").is_some());
    assert_eq!(server.journal().await[0].fault.as_deref(), Some("delay"));
}

#[tokio::test(start_paused = true)]
async fn delay_before_100_continue() {
    let server = with_fault(Fault::delay_continue(Duration::from_secs(3))).await;
    let mut c = Conn::open(server.addr()).await;
    let t = Instant::now();
    c.send(&respmod(
        "avscan",
        "Preview: 2\r\nAllow: 204\r\n",
        RES_HDR,
        &chunks(&[b"ab"], "0\r\n\r\n"),
    ))
    .await;
    assert!(c.silent_for(Duration::from_millis(2900)).await);
    assert_eq!(c.answer(Method::Respmod).await.status(), 100);
    assert!(t.elapsed() >= Duration::from_secs(3));
    c.send(&chunks(&[b"cd"], "0\r\n\r\n")).await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test(start_paused = true)]
async fn slow_body_between_response_chunks() {
    let server = with_fault(Fault::slow_body(Duration::from_secs(1))).await;
    let mut c = Conn::open(server.addr()).await;
    let t = Instant::now();
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    let a = c.answer(Method::Respmod).await;
    assert!(a.header("X-Infection-Found").is_some());
    // The block page is about 215 bytes of chunked body: at least one pause.
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test(start_paused = true)]
async fn never_answer_lets_the_client_timeout_fire() {
    let server = with_fault(Fault::never_answer()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    assert!(c.silent_for(Duration::from_secs(60)).await);
    let j = server.journal().await;
    assert_eq!(
        (j[0].status, j[0].fault.as_deref()),
        (None, Some("never_answer"))
    );
    assert!(j[0].complete);
}

#[tokio::test]
async fn close_immediately_and_reset() {
    let server = with_fault(Fault::close_immediately()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    let (bytes, _) = c.read_to_close().await;
    assert!(bytes.is_empty());

    let server = with_fault(Fault::reset()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    let (bytes, err) = c.read_to_close().await;
    assert!(bytes.is_empty());
    assert_eq!(err, Some(ErrorKind::ConnectionReset));
}

#[tokio::test]
async fn close_after_preview() {
    let server = with_fault(Fault::close_after_preview()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Preview: 2\r\n",
        RES_HDR,
        &chunks(&[b"ab"], "0\r\n\r\n"),
    ))
    .await;
    let (bytes, _) = c.read_to_close().await;
    assert!(bytes.is_empty());
    assert_eq!(server.journal().await[0].preview_bytes, 2);
}

#[tokio::test]
async fn reset_and_close_mid_body() {
    for (f, want) in [
        (Fault::reset_mid_body(), Some(ErrorKind::ConnectionReset)),
        (Fault::close_mid_body(), None),
    ] {
        let server = with_fault(f).await;
        let mut c = Conn::open(server.addr()).await;
        // Head and the first chunk only; the rest never gets a chance.
        let req = respmod("avscan", "", RES_HDR, b"5\r\nhello\r\n");
        c.send(&req).await;
        let (bytes, err) = c.read_to_close().await;
        assert!(bytes.is_empty());
        assert_eq!(err, want);
        let j = server.journal().await;
        assert_eq!(j[0].body_len, 5);
        assert!(!j[0].complete);
    }
}

#[tokio::test]
async fn close_mid_response() {
    let server = with_fault(Fault::close_mid_response()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    let (bytes, _) = c.read_to_close().await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("ICAP/1.0 200 OK\r\n") && text.contains("HTTP/1.0 403"),
        "{text}"
    );
    assert!(!text.ends_with("0\r\n\r\n"));
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    assert!(
        c.try_answer(Method::Respmod)
            .await
            .unwrap_err()
            .starts_with("closed after")
    );
}

#[tokio::test]
async fn truncated_response() {
    let server = with_fault(Fault::truncated_response()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    let (bytes, _) = c.read_to_close().await;
    assert!(bytes.starts_with(b"ICAP/1.0 2"));
    assert!(
        !bytes.windows(4).any(|w| w == b"\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[tokio::test]
async fn bad_chunk_size() {
    let server = with_fault(Fault::bad_chunk_size()).await;
    let mut c = Conn::open(server.addr()).await;
    // Clean with Allow: 204 has no body to break: the block page is sent instead.
    c.send(&clean_req()).await;
    let err = c.try_answer(Method::Respmod).await.unwrap_err();
    assert!(err.contains("chunk"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn missing_terminal_chunk() {
    let server = with_fault(Fault::missing_terminal_chunk().then(Reply::clean())).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(b"hello")))
        .await;
    let r = tokio::time::timeout(Duration::from_secs(30), c.try_answer(Method::Respmod)).await;
    assert!(r.is_err(), "the answer must never complete: {r:?}");
}

#[tokio::test]
async fn wrong_encapsulated() {
    let server = with_fault(Fault::wrong_encapsulated()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod("avscan", "", RES_HDR, &one_chunk(EICAR)))
        .await;
    let err = c.try_answer(Method::Respmod).await.unwrap_err();
    assert!(err.contains("decode error"), "{err}");
}

#[tokio::test]
async fn unknown_status() {
    let server = with_fault(Fault::unknown_status(299)).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 299);
    assert!(a.text().starts_with("ICAP/1.0 299 "));
}

#[tokio::test]
async fn garbage() {
    let server = with_fault(Fault::garbage()).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    let (bytes, _) = c.read_to_close().await;
    assert_eq!(bytes.len(), 64);
    assert!(!bytes.starts_with(b"ICAP/"));
}

#[tokio::test]
async fn early_response_while_the_body_is_still_coming() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Fault::early_response())
        .times(1)
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    // Only the head: the answer must come before any body byte is sent.
    let full = respmod("avscan", "", RES_HDR, &one_chunk(b"late body"));
    let head_len = full.len() - one_chunk(b"late body").len();
    c.send(&full[..head_len]).await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 200);
    assert!(
        a.header("X-Infection-Found")
            .unwrap()
            .contains("Mock.EarlyResponse")
    );
    // The client may finish its body; the connection then serves the next request.
    c.send(&full[head_len..]).await;
    c.send(&clean_req()).await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn scheduled_faults_first_n() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(Fault::close_immediately())
        .times(2)
        .mount(&server)
        .await;
    for _ in 0..2 {
        let mut c = Conn::open(server.addr()).await;
        c.send(&clean_req()).await;
        assert!(c.read_to_close().await.0.is_empty());
    }
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test]
async fn outage_refuse_and_accept_and_close() {
    let server = MockServer::start().await;
    server.set_outage(Outage::Refuse);
    let err = tokio::net::TcpStream::connect(server.addr())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    server.set_outage(Outage::None);
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);

    server.set_outage(Outage::AcceptAndClose);
    let mut c2 = Conn::open(server.addr()).await;
    c2.send(&clean_req()).await;
    let (bytes, _) = c2.read_to_close().await;
    assert!(bytes.is_empty());
    // Connections opened before the outage keep working.
    c.send(&clean_req()).await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    server.set_outage(Outage::None);
}

#[tokio::test]
async fn body_marker_triggers() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "",
        RES_HDR,
        &one_chunk(b"text ICAP-MOCK-VERDICT:infected:Marker.Virus more"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert!(
        a.header("X-Infection-Found")
            .unwrap()
            .contains("Threat=Marker.Virus;")
    );
    c.send(&respmod(
        "avscan",
        "",
        RES_HDR,
        &one_chunk(b"ICAP-MOCK-VERDICT:error:password_protected"),
    ))
    .await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(
        (a.status(), a.header("X-Error-Code").as_deref()),
        (500, Some("password_protected"))
    );
    c.send(&respmod(
        "avscan",
        "",
        RES_HDR,
        &chunks(
            &[b"xx ICAP-MOCK-FA", b"ULT:unknown_status:", b"418\n"],
            "0\r\n\r\n",
        ),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 418);
    c.send(&respmod(
        "avscan",
        "",
        RES_HDR,
        &one_chunk(b"ICAP-MOCK-FAULT:garbage"),
    ))
    .await;
    assert!(c.try_answer(Method::Respmod).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn file_name_triggers() {
    let server = MockServer::start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/x/report.infected",
        &one_chunk(b"x"),
    ))
    .await;
    assert!(
        c.answer(Method::Respmod)
            .await
            .header("X-Infection-Found")
            .is_some()
    );
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/x/a.encrypted",
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 500);
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/x/a.unavailable",
        &one_chunk(b"x"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 503);
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/x/big.slow",
        &one_chunk(b"x"),
    ))
    .await;
    let t = Instant::now();
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    assert!(t.elapsed() >= Duration::from_secs(5));
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/x/ICAP-MOCK-FAULT:close_immediately",
        &one_chunk(b"x"),
    ))
    .await;
    assert!(c.read_to_close().await.0.is_empty());
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "",
        "/x/file.timeout",
        &one_chunk(b"x"),
    ))
    .await;
    assert!(c.silent_for(Duration::from_secs(100)).await);
}

#[tokio::test]
async fn triggers_can_be_switched_off() {
    let server = MockServer::builder().triggers(false).start().await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/x/report.infected",
        &one_chunk(b"ICAP-MOCK-FAULT:garbage"),
    ))
    .await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_finishes_the_running_transaction() {
    let server = MockServer::start().await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    Mock::given(any())
        .respond_with(move |_: &icap_mock_server::Request| {
            let _ = seen_tx.send(());
            Fault::delay(Duration::from_secs(2))
        })
        .mount(&server)
        .await;
    let addr = server.addr();
    let mut c = Conn::open(server.addr()).await;
    c.send(&clean_req()).await;
    seen.recv().await.expect("the request reached the rule");
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    shutdown.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
