//! Several servers: failover, round-robin, marking down and bringing back.

use std::time::Duration;

use icap_client::{HealthConfig, HealthEvent, ScanMeta, Strategy};
use icap_mock_server::{MockServer, Outage};

use crate::common::{builder, eicar, refused_port, respmods};

#[tokio::test]
async fn failover_to_the_second_server_when_the_first_refuses() {
    let dead = refused_port().await;
    let live = MockServer::start().await;
    let c = builder(&format!("icap://127.0.0.1:{dead}/avscan"))
        .server(&live.url())
        .build()
        .unwrap();
    let r = c.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    assert!(r.verdict.is_infected(), "{r:?}");
    assert_eq!(r.server.as_deref(), Some(live.url().as_str()));
    assert_eq!(r.attempts, 2);
}

#[tokio::test]
async fn failover_on_503() {
    let busy = MockServer::start().await;
    icap_mock_server::Mock::given(icap_mock_server::matchers::method(
        icap_mock_server::Method::Respmod,
    ))
    .respond_with(icap_mock_server::Reply::status(503))
    .mount(&busy)
    .await;
    let live = MockServer::start().await;
    let c = builder(&busy.url()).server(&live.url()).build().unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    assert!(r.verdict.is_clean(), "{r:?}");
    assert_eq!(r.server.as_deref(), Some(live.url().as_str()));
}

#[tokio::test]
async fn round_robin_spreads_scans() {
    let a = MockServer::start().await;
    let b = MockServer::start().await;
    let c = builder(&a.url())
        .server(&b.url())
        .strategy(Strategy::RoundRobin)
        .build()
        .unwrap();
    for _ in 0..6 {
        assert!(
            c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
                .await
                .verdict
                .is_clean()
        );
    }
    assert_eq!(respmods(&a.journal().await).len(), 3);
    assert_eq!(respmods(&b.journal().await).len(), 3);
}

#[tokio::test]
async fn failures_mark_down_and_a_probe_brings_back() {
    let server = MockServer::start().await;
    let health = HealthConfig {
        threshold: 2,
        window: Duration::from_secs(60),
        revival: Duration::from_secs(3600),
    };
    let c = builder(&server.url())
        .health(health)
        .pool_idle_timeout(Duration::ZERO)
        .build()
        .unwrap();
    let mut events = c.subscribe();
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    server.set_outage(Outage::Refuse);
    for _ in 0..2 {
        let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
        assert!(r.verdict.is_failed(), "{r:?}");
    }
    assert!(c.server(0).unwrap().is_down());
    let HealthEvent::Down { server: down, .. } = events.recv().await.unwrap() else {
        panic!("server down expected")
    };
    assert_eq!(down, server.url());
    // While down: fail fast, nothing is attempted.
    server.set_outage(Outage::None);
    server.clear_journal().await;
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    assert!(r.verdict.error().unwrap().is_unavailable(), "{r:?}");
    assert_eq!(r.attempts, 0);
    assert!(server.journal().await.is_empty());
    assert!(c.check_available().await.unwrap_err().is_unavailable());

    // With the revival delay passed, an OPTIONS probe brings it back.
    let c2 = builder(&server.url())
        .health(HealthConfig {
            revival: Duration::ZERO,
            ..health
        })
        .pool_idle_timeout(Duration::ZERO)
        .build()
        .unwrap();
    server.set_outage(Outage::Refuse);
    for _ in 0..2 {
        assert!(
            c2.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
                .await
                .verdict
                .is_failed()
        );
    }
    assert!(c2.server(0).unwrap().is_down());
    server.set_outage(Outage::None);
    let mut ev2 = c2.subscribe();
    let r = c2.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    assert!(r.verdict.is_infected(), "{r:?}");
    assert!(!c2.server(0).unwrap().is_down());
    let HealthEvent::Up { server: up, .. } = ev2.recv().await.unwrap() else {
        panic!("server up expected")
    };
    assert_eq!(up, server.url());
}
