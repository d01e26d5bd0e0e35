//! Misbehaving servers: the verdict is never a guess and the file is never lost.

use std::time::Duration;

use icap_client::{Client, Phase, ScanMeta, Timeouts, Verdict};
use icap_mock_server::{Fault, Mock, MockServer, ServiceConfig, matchers::method};

use crate::common::{builder, eicar, refused_port, write};

fn respmod() -> icap_mock_server::matchers::MethodMatcher {
    method(icap_mock_server::Method::Respmod)
}

fn quick(url: &str) -> Client {
    builder(url)
        .timeouts(
            Timeouts::default()
                .with_connect(Duration::from_secs(2))
                .with_idle(Duration::from_secs(1))
                .with_continue_wait(Duration::from_secs(1))
                .with_deadline(Duration::from_secs(10), Duration::ZERO),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn slow_server_within_timeouts_is_fine() {
    let server = MockServer::start().await;
    Mock::given(respmod())
        .respond_with(Fault::delay(Duration::from_millis(150)))
        .mount(&server)
        .await;
    let r = quick(&server.url())
        .scan_bytes(eicar(), &ScanMeta::new("e"))
        .await;
    assert!(r.verdict.is_infected(), "{r:?}");
    Mock::given(respmod())
        .respond_with(Fault::slow_body(Duration::from_millis(20)))
        .mount(&server)
        .await;
    let r = quick(&server.url())
        .scan_bytes(eicar(), &ScanMeta::new("e"))
        .await;
    assert!(r.verdict.is_infected(), "{r:?}");
}

#[tokio::test]
async fn slow_server_beyond_idle_timeout_fails_and_keeps_the_file() {
    let server = MockServer::start().await;
    Mock::given(respmod())
        .respond_with(Fault::delay(Duration::from_secs(4)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.txt", b"data");
    let r = quick(&server.url())
        .scan_file(&path, &ScanMeta::default())
        .await;
    assert_eq!(
        r.verdict.error().unwrap().timeout_phase(),
        Some(Phase::Response),
        "{r:?}"
    );
    assert!(path.exists());
}

#[tokio::test]
async fn never_answering_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(respmod())
        .respond_with(Fault::never_answer())
        .mount(&server)
        .await;
    let r = quick(&server.url())
        .scan_bytes(eicar(), &ScanMeta::new("e"))
        .await;
    assert!(r.verdict.error().unwrap().is_timeout(), "{r:?}");
    assert!(!r.verdict.is_clean());
    // The whole-scan deadline fires even when the server trickles nothing for a long time.
    let c = builder(&server.url())
        .timeouts(
            Timeouts::default()
                .with_idle(Duration::from_secs(60))
                .with_deadline(Duration::from_millis(300), Duration::ZERO),
        )
        .build()
        .unwrap();
    let r = c.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    assert_eq!(
        r.verdict.error().unwrap().timeout_phase(),
        Some(Phase::Deadline)
    );
}

#[tokio::test]
async fn continue_timeout() {
    let server = MockServer::start().await;
    Mock::given(respmod())
        .respond_with(Fault::delay_continue(Duration::from_secs(4)))
        .mount(&server)
        .await;
    let r = quick(&server.url())
        .scan_bytes(vec![b'a'; 10_000], &ScanMeta::new("a"))
        .await;
    assert_eq!(
        r.verdict.error().unwrap().timeout_phase(),
        Some(Phase::Continue),
        "{r:?}"
    );
}

#[tokio::test]
async fn refused_connection() {
    let port = refused_port().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.txt", b"data");
    let r = quick(&format!("icap://127.0.0.1:{port}/avscan"))
        .scan_file(&path, &ScanMeta::default())
        .await;
    let e = r.verdict.error().unwrap();
    assert!(e.is_connect(), "{e:?}");
    assert!(path.exists());
}

#[tokio::test]
async fn reset_and_close_mid_body() {
    for fault in [Fault::reset_mid_body(), Fault::close_mid_body()] {
        let server = MockServer::builder()
            .service(ServiceConfig::new("avscan").preview(None))
            .start()
            .await;
        Mock::given(respmod())
            .respond_with(fault.clone())
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "big.bin", &vec![1u8; 4 * 1024 * 1024]);
        let r = quick(&server.url())
            .scan_file(&path, &ScanMeta::default())
            .await;
        let e = r
            .verdict
            .error()
            .unwrap_or_else(|| panic!("{fault:?}: {r:?}"));
        assert!(e.is_closed(), "{fault:?}: {e:?}");
        assert!(path.exists());
    }
}

#[tokio::test]
async fn early_response_stops_the_upload() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").preview(None))
        .start()
        .await;
    Mock::given(respmod())
        .respond_with(Fault::early_response().then(icap_mock_server::Reply::infected("Early.Bird")))
        .mount(&server)
        .await;
    let size = 64 * 1024 * 1024;
    let c = builder(&server.url()).max_size(None).build().unwrap();
    let r = c
        .scan_reader(tokio::io::repeat(b'z'), Some(size), &ScanMeta::new("a"))
        .await;
    assert_eq!(
        r.verdict.threats().first().map(|t| t.name.as_str()),
        Some("Early.Bird"),
        "{r:?}"
    );
    assert!(r.early_response);
    assert!(
        r.sent < size,
        "the client stopped sending after {} bytes",
        r.sent
    );
    // The connection was not reused after the early answer; the next scan works.
    server.reset().await;
    let c = quick(&server.url());
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
}

#[tokio::test]
async fn broken_replies_are_failures_never_verdicts() {
    let faults = [
        Fault::close_immediately(),
        Fault::reset(),
        Fault::close_after_preview(),
        Fault::close_mid_response(),
        Fault::truncated_response(),
        Fault::bad_chunk_size(),
        Fault::missing_terminal_chunk(),
        Fault::wrong_encapsulated(),
        Fault::unknown_status(299),
        Fault::garbage(),
    ];
    for fault in faults {
        let server = MockServer::start().await;
        Mock::given(respmod())
            .respond_with(fault.clone())
            .mount(&server)
            .await;
        for (body, name) in [(eicar(), "eicar.com"), (&b"clean text"[..], "clean.txt")] {
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), name, &[body, &[b' '; 3000][..]].concat());
            let r = quick(&server.url())
                .scan_file(&path, &ScanMeta::default())
                .await;
            match &r.verdict {
                Verdict::Failed { error } => assert!(
                    error.is_closed()
                        || error.is_protocol()
                        || error.is_timeout()
                        || error.status().is_some(),
                    "{fault:?}: {error:?}"
                ),
                // A fault that sends a well-formed infected answer before breaking is fine.
                Verdict::Infected { .. } if name == "eicar.com" => {}
                other => panic!("{fault:?} on {name}: {other:?}"),
            }
            assert!(path.exists(), "{fault:?}: file must stay");
        }
    }
}

/// The mock's README says it next to every one-shot fault: the client retries a request
/// once when its pooled (reused) connection turns out to be dead, so a fault scheduled
/// `.times(1)` is absorbed by that retry, and `.times(2)` is what a test of the failure
/// needs.
#[tokio::test]
async fn a_one_shot_reset_is_absorbed_by_the_stale_connection_retry_and_two_are_not() {
    for (times, absorbed) in [(1, true), (2, false)] {
        let server = MockServer::start().await;
        let c = quick(&server.url());
        Mock::given(respmod())
            .respond_with(Fault::reset())
            .times(times)
            .mount(&server)
            .await;
        // The first scan: the client's OPTIONS already left its connection pooled, so the
        // RESPMOD goes out on a reused connection and its reset is retried.
        let r = c.scan_bytes(eicar(), &ScanMeta::new("e.com")).await;
        assert_eq!(r.attempts, 2, "times({times}): {r:?}");
        if absorbed {
            assert!(r.verdict.is_infected(), "times({times}): {r:?}");
        } else {
            let e = r.verdict.error().unwrap_or_else(|| panic!("{r:?}"));
            assert!(e.is_closed(), "times({times}): {e:?}");
        }
        let resets = server
            .journal_scans()
            .await
            .iter()
            .filter(|t| t.fault.as_deref() == Some("reset"))
            .count();
        assert_eq!(resets, usize::try_from(times).unwrap(), "times({times})");
    }
}
