//! Keep-alive, the connection limit and stale pooled connections.

use std::collections::HashSet;
use std::time::Duration;

use icap_client::ScanMeta;
use icap_mock_server::{Fault, Mock, MockServer, ServiceConfig, matchers::method};

use crate::common::{builder, client, respmods};

#[tokio::test]
async fn sequential_scans_share_one_connection() {
    let server = MockServer::start().await;
    let c = client(&server);
    for _ in 0..5 {
        assert!(
            c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
                .await
                .verdict
                .is_clean()
        );
    }
    let j = server.journal().await;
    assert_eq!(j.len(), 6, "one OPTIONS, five RESPMOD");
    let peers: HashSet<_> = j.iter().map(|t| t.peer).collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(c.server(0).unwrap().idle_connections(), 1);
}

#[tokio::test]
async fn max_connections_from_options_bounds_concurrency() {
    let server = MockServer::builder()
        .service(ServiceConfig::new("avscan").max_connections(Some(2)))
        .start()
        .await;
    Mock::given(method(icap_mock_server::Method::Respmod))
        .respond_with(Fault::delay(Duration::from_millis(50)))
        .mount(&server)
        .await;
    let c = client(&server);
    // Learn the limit first.
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    assert_eq!(c.server(0).unwrap().connection_limit(), 2);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.scan_bytes(vec![b'a'; 2048], &ScanMeta::new("a")).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().verdict.is_clean());
    }
    let j = server.journal().await;
    let peers: HashSet<_> = respmods(&j).iter().map(|t| t.peer).collect();
    assert!(peers.len() <= 2, "{} connections", peers.len());
}

#[tokio::test]
async fn many_concurrent_small_scans() {
    let server = MockServer::start().await;
    let c = builder(&server.url()).max_connections(16).build().unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let body = if i % 8 == 0 {
                icap_mock_server::EICAR.to_vec()
            } else {
                vec![b'k'; 1024]
            };
            (i, c.scan_bytes(body, &ScanMeta::new("f")).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        assert_eq!(r.verdict.is_infected(), i % 8 == 0, "{i}: {r:?}");
    }
}

#[tokio::test]
async fn closed_on_reuse_is_retried_once_on_a_fresh_connection() {
    let server = MockServer::start().await;
    let c = client(&server);
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    // The server drops the (reused) connection right after the next request head, as a
    // server that timed the idle connection out at that moment would.
    Mock::given(method(icap_mock_server::Method::Respmod))
        .respond_with(Fault::close_immediately())
        .times(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::write(dir.path(), "e.com", icap_mock_server::EICAR);
    let r = c.scan_file(&path, &ScanMeta::default()).await;
    assert!(r.verdict.is_infected(), "{r:?}");
    assert_eq!(r.attempts, 2);
    let j = server.journal().await;
    let rm = respmods(&j);
    assert_eq!(rm.len(), 3);
    assert_ne!(rm[1].peer, rm[2].peer, "the retry used a new connection");
}

#[tokio::test]
async fn server_idle_timeout_then_scan_uses_a_new_connection() {
    let server = MockServer::builder()
        .idle_timeout(Duration::from_millis(50))
        .start()
        .await;
    let c = client(&server);
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    // Wait for the server's idle timer (this is the behaviour under test, not a sync).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c
        .scan_bytes(icap_mock_server::EICAR, &ScanMeta::new("e"))
        .await;
    assert!(r.verdict.is_infected(), "{r:?}");
    let j = server.journal().await;
    let rm = respmods(&j);
    assert_ne!(rm[0].peer, rm[1].peer);
}

/// A pooled connection keeps its exchange timer, which belongs to the runtime it was made
/// on. A client kept across runtimes (across `#[tokio::test]`s, say) must still scan on
/// each: the old runtime's connection is found dead and replaced, and its timer is never
/// polled (the connection remakes its timer when the runtime differs, in case it is).
#[test]
fn a_client_outlives_the_runtime_it_first_scanned_on() {
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    let server = server_rt.block_on(MockServer::start());
    let c = client(&server);
    let scan = |c: &icap_client::Client| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Twice on each runtime: the second scan reuses the connection and its timer.
        let v: Vec<_> = (0..2)
            .map(|_| {
                rt.block_on(c.scan_bytes(&b"x"[..], &ScanMeta::new("a")))
                    .verdict
            })
            .collect();
        drop(rt);
        v
    };
    for v in scan(&c).into_iter().chain(scan(&c)) {
        assert!(v.is_clean(), "{v:?}");
    }
    let j = server_rt.block_on(server.journal());
    assert_eq!(respmods(&j).len(), 4);
}
