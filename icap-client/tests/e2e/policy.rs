//! The upload guard: delete, quarantine, report, delete on scan fail, audit, events.

use icap_client::{
    Action, AlertKind, Event, FileAction, Guard, Policy, Uploader, UserType, Verdict,
};
use icap_mock_server::MockServer;

use crate::common::{builder, client, eicar, refused_port, write};

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn infected_is_deleted_audited_and_announced() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = Guard::new(client(&server), Policy::default().with_audit_log(&audit)).unwrap();
    let mut rx = guard.subscribe();
    let path = write(dir.path(), "eicar.com", eicar());
    let who = Uploader::new("bob").with_user_type(UserType::Full);
    let o = guard.check_upload(&path, Some(&who)).await;
    assert!(o.report.verdict.is_infected());
    assert_eq!(o.action, Action::Deleted);
    assert!(!path.exists());
    let lines = audit_lines(&audit);
    let l = &lines[0];
    assert_eq!(l["verdict"], "infected");
    assert_eq!(l["action"], "deleted");
    assert_eq!(l["threats"][0], "Eicar-Test-Signature");
    assert_eq!(l["size"], 68);
    assert_eq!(
        l["sha256"],
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    );
    assert_eq!(l["uploader"]["name"], "bob");
    assert_eq!(l["server"], server.url());
    assert_eq!(l["service"], "avscan");
    assert!(l["time"].as_str().unwrap().ends_with('Z'));
    assert!(l["duration_ms"].as_f64().is_some());
    let events = drain(&mut rx);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Alert(a) if a.kind == AlertKind::Infected))
    );
    assert!(events.iter().any(|e| matches!(e, Event::Notice(n) if n.uploader.as_ref().unwrap().name.as_deref() == Some("bob"))));
    assert!(events.iter().any(|e| matches!(e, Event::Audit(_))));
}

#[tokio::test]
async fn clean_file_is_kept_and_audited() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = Guard::new(client(&server), Policy::default().with_audit_log(&audit)).unwrap();
    let path = write(dir.path(), "ok.txt", b"fine");
    let o = guard.check_upload(&path, None).await;
    assert!(o.report.verdict.is_clean());
    assert_eq!(o.action, Action::None);
    assert!(path.exists());
    assert_eq!(audit_lines(&audit)[0]["action"], "none");
}

#[tokio::test]
async fn quarantine_and_report() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("quarantine");
    let guard = Guard::new(
        client(&server),
        Policy::default().with_on_infected(FileAction::Quarantine(q.clone())),
    )
    .unwrap();
    let path = write(dir.path(), "eicar.com", eicar());
    let o = guard.check_upload(&path, None).await;
    let Action::Quarantined { to } = &o.action else {
        panic!("{:?}", o.action)
    };
    assert!(!path.exists());
    assert!(to.starts_with(&q));
    assert_eq!(std::fs::read(to).unwrap(), eicar());

    let guard = Guard::new(
        client(&server),
        Policy::default().with_on_infected(FileAction::Keep),
    )
    .unwrap();
    let path = write(dir.path(), "eicar2.com", eicar());
    let o = guard.check_upload(&path, None).await;
    assert!(o.report.verdict.is_infected());
    assert_eq!(o.action, Action::Kept);
    assert!(path.exists());
}

#[tokio::test]
async fn scan_failure_keeps_the_file_and_alerts_by_default() {
    let port = refused_port().await;
    let dir = tempfile::tempdir().unwrap();
    let guard = Guard::new(
        builder(&format!("icap://127.0.0.1:{port}/avscan"))
            .build()
            .unwrap(),
        Policy::default(),
    )
    .unwrap();
    let mut rx = guard.subscribe();
    let path = write(dir.path(), "eicar.com", eicar());
    let o = guard.check_upload(&path, None).await;
    assert!(o.report.verdict.is_failed());
    assert_eq!(o.action, Action::Kept);
    assert!(
        path.exists(),
        "never delete because of an error without delete_on_scan_fail"
    );
    assert!(
        drain(&mut rx)
            .iter()
            .any(|e| matches!(e, Event::Alert(a) if a.kind == AlertKind::ScanFailed))
    );
    // Uploads are admitted: the product did not ask to refuse them.
    assert!(guard.admit_upload().await.is_ok());
}

#[tokio::test]
async fn delete_on_scan_fail_deletes_audits_and_refuses_uploads() {
    let port = refused_port().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = Guard::new(
        builder(&format!("icap://127.0.0.1:{port}/avscan"))
            .build()
            .unwrap(),
        Policy::default()
            .with_delete_on_scan_fail(true)
            .with_audit_log(&audit),
    )
    .unwrap();
    let path = write(dir.path(), "report.pdf", b"%PDF");
    let o = guard.check_upload(&path, None).await;
    assert!(o.report.verdict.is_failed());
    assert_eq!(o.action, Action::Deleted);
    assert!(!path.exists());
    let l = &audit_lines(&audit)[0];
    assert_eq!(
        l["message"],
        format!("ICAP removed {} due to scan fail", path.display())
    );
    assert_eq!(l["verdict"], "failed");
    // The server is unavailable: uploads are refused, fast.
    let t = std::time::Instant::now();
    let e = guard.admit_upload().await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let e = guard.admit_upload().await.unwrap_err();
    assert!(e.is_unavailable());
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn admit_upload_with_a_live_server() {
    let server = MockServer::start().await;
    let guard = Guard::new(
        client(&server),
        Policy::default().with_delete_on_scan_fail(true),
    )
    .unwrap();
    assert!(guard.admit_upload().await.is_ok());
    // Now cached: no second OPTIONS.
    assert!(guard.admit_upload().await.is_ok());
    assert_eq!(crate::common::count_options(&server.journal().await), 1);
    server.set_outage(icap_mock_server::Outage::Refuse);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.txt", b"a");
    // The pooled connection may still answer; a fresh client sees the outage.
    let guard2 = Guard::new(
        client(&server),
        Policy::default().with_delete_on_scan_fail(true),
    )
    .unwrap();
    assert!(guard2.admit_upload().await.unwrap_err().is_unavailable());
    let o = guard2.check_upload(&path, None).await;
    assert!(matches!(o.report.verdict, Verdict::Failed { .. }));
    assert!(!path.exists());
}

#[tokio::test]
async fn too_large_is_kept_and_audited_as_not_scanned() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = Guard::new(
        builder(&server.url()).max_size(Some(10)).build().unwrap(),
        Policy::default().with_audit_log(&audit),
    )
    .unwrap();
    let path = write(dir.path(), "eicar.com", eicar());
    let o = guard.check_upload(&path, None).await;
    assert!(matches!(o.report.verdict, Verdict::NotScanned { .. }));
    assert_eq!(o.action, Action::Kept);
    assert!(path.exists());
    assert_eq!(audit_lines(&audit)[0]["verdict"], "not_scanned");
}

#[tokio::test]
async fn the_guard_forwards_its_clients_health_before_its_own_alert() {
    let port = refused_port().await;
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&format!("icap://127.0.0.1:{port}/avscan"))
        .health(icap_client::HealthConfig {
            threshold: 1,
            ..icap_client::HealthConfig::default()
        })
        .build()
        .unwrap();
    let mut health = client.subscribe();
    let guard = Guard::new(client, Policy::default()).unwrap();
    let mut rx = guard.subscribe();
    let path = write(dir.path(), "a.txt", b"a");
    assert!(
        guard
            .check_upload(&path, None)
            .await
            .report
            .verdict
            .is_failed()
    );
    let kinds: Vec<AlertKind> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            Event::Alert(a) => Some(a.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, [AlertKind::ServerDown, AlertKind::ScanFailed]);
    // The client's own channel carries the health change only.
    assert!(matches!(
        health.try_recv(),
        Ok(icap_client::HealthEvent::Down { .. })
    ));
    assert!(health.try_recv().is_err());
    // Dropping the guard closes its channel even though a client clone could live on.
    drop(guard);
    assert!(matches!(
        rx.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Closed)
    ));
}
