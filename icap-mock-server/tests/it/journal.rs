//! The journal as the exchange proceeds: an entry from the moment the head arrives, what
//! was written to the client, and whether the client was still there.

use std::time::{Duration, SystemTime};

use icap_mock_server::matchers::any;
use icap_mock_server::{Fault, Mock, MockServer, Request, Stage, Transaction};
use icap_proto::Method;

use crate::support::*;

/// A server whose every request is held `delay` by a fault, and a channel that says when a
/// request reached the rule.
async fn delayed(delay: Duration) -> (MockServer, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let server = MockServer::start().await;
    let (seen_tx, seen) = tokio::sync::mpsc::unbounded_channel();
    Mock::given(any())
        .respond_with(move |_: &Request| {
            let _ = seen_tx.send(());
            Fault::delay(delay)
        })
        .mount(&server)
        .await;
    (server, seen)
}

/// The journal's only entry once `done` holds for it (bounded: 200 rounds of 10 ms).
async fn entry_when(server: &MockServer, done: impl Fn(&Transaction) -> bool) -> Transaction {
    for _ in 0..200 {
        let j = server.journal().await;
        if let Some(t) = j.first().filter(|t| done(t)) {
            return t.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the entry never got there: {:?}", server.journal().await);
}

#[tokio::test(start_paused = true)]
async fn a_request_held_by_a_delay_is_in_the_journal_before_its_answer() {
    let before = SystemTime::now();
    let (server, mut seen) = delayed(Duration::from_secs(2)).await;
    let mut c = Conn::open(server.addr()).await;
    let req = respmod("avscan", "Allow: 204\r\n", RES_HDR, &one_chunk(b"hello"));
    c.send(&req).await;
    seen.recv().await.expect("the request reached the rule");
    // The delay is running: the entry is there, with its body, and no answer.
    let j = server.journal().await;
    assert_eq!(j.len(), 1, "{j:?}");
    let t = &j[0];
    assert_eq!(t.stage, Stage::Waiting);
    assert_eq!(t.method, Method::Respmod);
    assert_eq!(t.body_len, 5);
    assert_eq!(t.status, None);
    assert_eq!(t.bytes_written, 0);
    assert!(!t.client_gone);
    assert!(t.received_at >= before && t.received_at <= SystemTime::now());
    let json = t.to_json();
    assert_eq!(json["stage"], "waiting");
    assert_eq!(json["bytes_written"], 0);
    assert!(
        json["received_at"].as_str().unwrap().ends_with('Z'),
        "{json}"
    );
    assert!(json["received_at_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    // After the delay: the answer, and the entry says it was written.
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 204);
    let t = entry_when(&server, |t| t.stage == Stage::Done).await;
    assert_eq!(t.status, Some(204));
    assert!(t.bytes_written > 0);
    assert!(!t.client_gone);
    assert_eq!(t.fault.as_deref(), Some("delay"));
}

#[tokio::test(start_paused = true)]
async fn a_client_gone_during_a_delay_is_noted_and_gets_nothing() {
    let (server, mut seen) = delayed(Duration::from_secs(2)).await;
    let mut c = Conn::open(server.addr()).await;
    c.send(&respmod(
        "avscan",
        "Allow: 204\r\n",
        RES_HDR,
        &one_chunk(EICAR),
    ))
    .await;
    seen.recv().await.expect("the request reached the rule");
    let started = tokio::time::Instant::now();
    drop(c);
    let t = entry_when(&server, |t| t.stage == Stage::Done).await;
    // Noticed when the client left, not when the delay ended.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(t.client_gone, "{t:?}");
    assert_eq!(t.bytes_written, 0);
    assert_eq!(t.status, None);
    assert_eq!(t.threat, None, "no verdict was sent: {t:?}");
    assert_eq!(t.fault.as_deref(), Some("delay"));
    assert_eq!(t.to_json()["client_gone"], true);
}

/// `journal_limit(0)`: a mock for load tests. Nothing is journaled, but requests are still
/// answered by the rules and the signatures, and the rules' expectations still count.
#[tokio::test]
async fn a_journal_limit_of_zero_records_nothing_and_rules_still_count() {
    let server = MockServer::builder().journal_limit(0).start().await;
    Mock::given(any())
        .respond_with(icap_mock_server::Reply::clean())
        .expect(2)
        .named("two clean")
        .mount(&server)
        .await;
    let mut c = Conn::open(server.addr()).await;
    for _ in 0..2 {
        assert_eq!(c.scan("avscan", b"x").await.status(), 204);
    }
    server.verify().await;
    assert!(server.journal().await.is_empty());
    assert_eq!(server.journal_bytes(), 0);
    server.reset().await;
    // Signatures still scan without a journal.
    assert_ne!(
        c.scan("avscan", EICAR).await.status(),
        204,
        "EICAR is found"
    );
    assert!(server.journal().await.is_empty());
}

/// With the journal off, an unmet expectation's report says why no requests are listed.
#[tokio::test]
#[should_panic(expected = "the journal is off")]
async fn an_unmet_expectation_without_a_journal_says_the_journal_is_off() {
    let server = MockServer::builder().journal_limit(0).start().await;
    Mock::given(any())
        .respond_with(icap_mock_server::Reply::clean())
        .expect(1)
        .mount(&server)
        .await;
    server.verify().await;
}
