//! Verdicts against every dialect of the mock, and what they mean for the file.

use icap_client::{NotScannedReason, ScanMeta, Verdict};
use icap_mock_server::{Dialect, Mock, MockServer, ServiceConfig, matchers::filename};

use crate::common::{client, eicar, respmods, write};

#[tokio::test]
async fn clean_file_is_clean_and_stays() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "notes.txt", b"hello, world\n");
    let report = client(&server).scan_file(&path, &ScanMeta::default()).await;
    assert!(report.verdict.is_clean(), "{report:?}");
    assert_eq!(report.status, Some(204));
    assert_eq!(report.size, 13);
    assert!(path.exists());
    let j = server.journal().await;
    let t = respmods(&j)[0];
    assert_eq!(t.body_len, 13);
    assert!(t.allow_204);
    assert_eq!(t.body_sha256, report.sha256.unwrap());
    assert!(
        t.http_request
            .as_ref()
            .unwrap()
            .target()
            .ends_with(b"/notes.txt")
    );
}

#[tokio::test]
async fn eicar_is_infected_in_every_dialect() {
    for dialect in [
        Dialect::CIcap,
        Dialect::Symantec,
        Dialect::Kaspersky,
        Dialect::Sophos,
        Dialect::McAfee,
        Dialect::Plain,
    ] {
        let server = MockServer::builder()
            .service(ServiceConfig::new("avscan").dialect(dialect))
            .start()
            .await;
        let c = client(&server);
        let report = c.scan_bytes(eicar(), &ScanMeta::new("eicar.com")).await;
        match &report.verdict {
            Verdict::Infected { threats } => {
                assert!(
                    threats.iter().any(|t| t.name.contains(dialect.eicar_name())
                        || t.name.contains("block")
                        || t.name.contains("403")),
                    "{dialect:?}: {threats:?}"
                );
            }
            other => panic!("{dialect:?}: {other:?}"),
        }
        let clean = c
            .scan_bytes(&b"nothing to see"[..], &ScanMeta::new("a.txt"))
            .await;
        assert!(clean.verdict.is_clean(), "{dialect:?}: {clean:?}");
    }
}

#[tokio::test]
async fn cicap_threat_name_is_exact() {
    let server = MockServer::start().await;
    let report = client(&server)
        .scan_bytes(eicar(), &ScanMeta::new("eicar.com"))
        .await;
    assert_eq!(report.verdict.threats()[0].name, "Eicar-Test-Signature");
}

#[tokio::test]
async fn password_protected_is_not_scanned() {
    let server = MockServer::start().await;
    Mock::given(filename("*.zip"))
        .respond_with(icap_mock_server::Reply::error(500, "password_protected"))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "secret.zip", b"PK\x03\x04 encrypted");
    let report = client(&server).scan_file(&path, &ScanMeta::default()).await;
    match report.verdict {
        Verdict::NotScanned {
            reason: NotScannedReason::Unscannable { code, status },
        } => {
            assert_eq!(code, "password_protected");
            assert_eq!(status, 500);
        }
        other => panic!("{other:?}"),
    }
    assert!(path.exists());
    server.verify().await;
}

#[tokio::test]
async fn infected_rule_by_name() {
    let server = MockServer::start().await;
    Mock::given(filename("*.exe"))
        .respond_with(icap_mock_server::Reply::infected("Trojan.Test"))
        .mount(&server)
        .await;
    let report = client(&server)
        .scan_bytes(&b"MZ harmless"[..], &ScanMeta::new("setup.exe"))
        .await;
    assert_eq!(report.verdict.threats()[0].name, "Trojan.Test");
}

#[tokio::test]
async fn status_503_is_failed_not_clean() {
    let server = MockServer::start().await;
    Mock::given(icap_mock_server::matchers::method(
        icap_mock_server::Method::Respmod,
    ))
    .respond_with(icap_mock_server::Reply::status(503))
    .mount(&server)
    .await;
    for body in [&b"clean"[..], eicar()] {
        let report = client(&server).scan_bytes(body, &ScanMeta::new("f")).await;
        let err = report.verdict.error().expect("failed");
        assert_eq!(err.status(), Some(503), "{err}");
    }
}
