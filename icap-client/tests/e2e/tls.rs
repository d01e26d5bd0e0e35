//! Secure ICAP: verification on by default, CA files, SNI, insecure mode, mTLS, and the
//! diagnosis of each failure.

use icap_client::{Diagnosis, ScanMeta, TlsProblem};
use icap_mock_server::MockServer;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    date_time_ymd,
};

use crate::common::{builder, eicar};

async fn tls_server() -> MockServer {
    MockServer::builder().tls_generated().start().await
}

fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (Issuer::new(p, key), cert.pem())
}

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    names: &[&str],
    client: bool,
    expired: bool,
) -> (String, String) {
    let mut p =
        CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("client"),
    );
    if client {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    if expired {
        p.not_before = date_time_ymd(2001, 1, 1);
        p.not_after = date_time_ymd(2002, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn scans_over_tls_with_the_ca() {
    let server = tls_server().await;
    assert!(server.url().starts_with("icaps://"));
    let c = builder(&server.url())
        .tls_ca_pem(server.ca_pem().unwrap())
        .build()
        .unwrap();
    assert!(
        c.scan_bytes(eicar(), &ScanMeta::new("e"))
            .await
            .verdict
            .is_infected()
    );
    assert!(
        c.scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    let t = c.test_server(&c.server(0).unwrap()).await;
    assert!(t.ok, "{t:?}");
    assert!(t.tls_version.is_some());
}

#[tokio::test]
async fn untrusted_certificate_is_diagnosed() {
    let server = tls_server().await;
    let c = builder(&server.url()).build().unwrap();
    let r = c.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    let e = r.verdict.error().expect("failed");
    assert_eq!(e.tls_problem(), Some(TlsProblem::UnknownIssuer), "{e:?}");
    assert_eq!(
        c.test_server(&c.server(0).unwrap()).await.diagnosis,
        Diagnosis::TlsUntrusted
    );
    // A CA file that is not the right one: same.
    let (_, other_ca) = ca("other");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = crate::common::write(dir.path(), "ca.pem", other_ca.as_bytes());
    let c = builder(&server.url())
        .tls_ca_file(&ca_file)
        .build()
        .unwrap();
    assert_eq!(
        c.test_server(&c.server(0).unwrap()).await.diagnosis,
        Diagnosis::TlsUntrusted
    );
}

#[tokio::test]
async fn name_mismatch_is_diagnosed() {
    let server = tls_server().await;
    let c = builder(&server.url())
        .tls_ca_pem(server.ca_pem().unwrap())
        .tls_sni("wrong.example.net")
        .build()
        .unwrap();
    let r = c.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    assert_eq!(
        r.verdict.error().unwrap().tls_problem(),
        Some(TlsProblem::NameMismatch)
    );
    assert_eq!(
        c.test_server(&c.server(0).unwrap()).await.diagnosis,
        Diagnosis::TlsNameMismatch
    );
    // The right SNI override works.
    let c = builder(&server.url())
        .tls_ca_pem(server.ca_pem().unwrap())
        .tls_sni("localhost")
        .build()
        .unwrap();
    assert!(
        c.scan_bytes(eicar(), &ScanMeta::new("e"))
            .await
            .verdict
            .is_infected()
    );
}

#[tokio::test]
async fn expired_certificate_is_diagnosed() {
    let (issuer, ca_pem) = ca("test ca");
    let (cert, key) = leaf(&issuer, &["127.0.0.1", "localhost"], false, true);
    let server = MockServer::builder().tls_pem(&cert, &key).start().await;
    let c = builder(&server.url()).tls_ca_pem(ca_pem).build().unwrap();
    let t = c.test_server(&c.server(0).unwrap()).await;
    assert_eq!(t.diagnosis, Diagnosis::TlsExpired, "{t:?}");
    let r = c.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    assert_eq!(
        r.verdict.error().unwrap().tls_problem(),
        Some(TlsProblem::Expired)
    );
}

#[tokio::test]
async fn insecure_mode_accepts_anything() {
    let server = tls_server().await;
    let c = builder(&server.url())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    assert!(
        c.scan_bytes(eicar(), &ScanMeta::new("e"))
            .await
            .verdict
            .is_infected()
    );
}

#[tokio::test]
async fn plain_client_on_tls_port_fails_cleanly() {
    let server = tls_server().await;
    let url = server.url().replace("icaps://", "icap://");
    let c = builder(&url)
        .timeouts(icap_client::Timeouts::default().with_idle(std::time::Duration::from_secs(2)))
        .build()
        .unwrap();
    let r = c.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    assert!(r.verdict.is_failed(), "{r:?}");
    assert!(!c.test_server(&c.server(0).unwrap()).await.ok);
}

#[tokio::test]
async fn mutual_tls() {
    let (issuer, client_ca) = ca("client ca");
    let (cert, key) = leaf(&issuer, &["scanner.example"], true, false);
    let server = MockServer::builder()
        .tls_generated()
        .client_auth_ca_pem(&client_ca)
        .start()
        .await;
    let with = builder(&server.url())
        .tls_ca_pem(server.ca_pem().unwrap())
        .tls_client_cert_pem(cert.clone(), key.clone())
        .build()
        .unwrap();
    assert!(
        with.scan_bytes(eicar(), &ScanMeta::new("e"))
            .await
            .verdict
            .is_infected()
    );
    // From files, as the CLI and the config file give them.
    let dir = tempfile::tempdir().unwrap();
    let cf = crate::common::write(dir.path(), "c.pem", cert.as_bytes());
    let kf = crate::common::write(dir.path(), "k.pem", key.as_bytes());
    let files = builder(&server.url())
        .tls_ca_pem(server.ca_pem().unwrap())
        .tls_client_cert(cf, kf)
        .build()
        .unwrap();
    assert!(
        files
            .scan_bytes(&b"x"[..], &ScanMeta::new("a"))
            .await
            .verdict
            .is_clean()
    );
    let without = builder(&server.url())
        .tls_ca_pem(server.ca_pem().unwrap())
        .build()
        .unwrap();
    let r = without.scan_bytes(eicar(), &ScanMeta::new("e")).await;
    let e = r.verdict.error().expect("failed");
    assert!(e.is_tls() || e.is_closed(), "{e:?}");
}

/// A server that reads the `ClientHello` and answers with a fatal `handshake_failure` alert,
/// as a TLS server with nothing in common with the client does.
async fn handshake_failure_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "icaps://localhost:{}/avscan",
        l.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).await.unwrap_or(0) > 0 {
                    // Record: alert (21), TLS 1.2, length 2; fatal (2), handshake_failure (40).
                    let _ = s.write_all(&[21, 3, 3, 0, 2, 2, 40]).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn handshake_failure_is_a_refusal_unless_a_client_certificate_was_sent() {
    let url = handshake_failure_server().await;
    let c = builder(&url).build().unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    let e = r.verdict.error().expect("failed");
    assert_eq!(e.tls_problem(), Some(TlsProblem::Refused), "{e:?}");
    assert_eq!(e.to_string(), "the server refused the TLS handshake");
    assert!(
        format!("{e:#}").starts_with("the server refused the TLS handshake: "),
        "{e:#}"
    );
    let t = c.test_server(&c.server(0).unwrap()).await;
    assert_eq!(t.diagnosis, Diagnosis::TlsOther, "{t:?}");
    assert!(t.hint.contains("refused the TLS handshake"), "{}", t.hint);

    let (issuer, _) = ca("client ca");
    let (cert, key) = leaf(&issuer, &["scanner.example"], true, false);
    let c = builder(&url)
        .tls_client_cert_pem(cert, key)
        .build()
        .unwrap();
    let r = c.scan_bytes(&b"x"[..], &ScanMeta::new("a")).await;
    let e = r.verdict.error().expect("failed");
    assert_eq!(
        e.tls_problem(),
        Some(TlsProblem::ClientCertRejected),
        "{e:?}"
    );
    assert!(
        format!("{e:#}").starts_with("the server rejected the client certificate: "),
        "{e:#}"
    );
    assert_eq!(
        c.test_server(&c.server(0).unwrap()).await.diagnosis,
        Diagnosis::TlsClientCert
    );
}
