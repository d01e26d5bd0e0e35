//! icaps:// with a generated certificate, and mTLS.

use std::sync::Arc;

use icap_mock_server::MockServer;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => b
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

async fn options_over_tls(
    server: &MockServer,
    cfg: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(server.addr()).await?;
    let connector = tokio_rustls::TlsConnector::from(cfg);
    let mut tls = connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await?;
    tls.write_all(b"OPTIONS icaps://localhost/avscan ICAP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

#[tokio::test]
async fn icaps_with_a_generated_certificate() {
    let server = MockServer::builder().tls_generated().start().await;
    assert!(server.url().starts_with("icaps://127.0.0.1:"));
    let ca = server.ca_pem().expect("generated CA");
    for name in ["localhost", "127.0.0.1"] {
        let got = options_over_tls(&server, client_config(&ca, None), name)
            .await
            .unwrap();
        assert!(
            got.starts_with(b"ICAP/1.0 200 OK\r\n"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    // A client that does not trust the CA fails the handshake.
    let other = icap_mock_server::tls::generate(&[]).unwrap();
    assert!(
        options_over_tls(&server, client_config(&other.ca_pem, None), "localhost")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_ca() {
    // A client CA and a client certificate it signed.
    let client_ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let client_ca = ca_params.self_signed(&client_ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, client_ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();

    let server = MockServer::builder()
        .tls_generated()
        .client_auth_ca_pem(&client_ca.pem())
        .start()
        .await;
    let ca = server.ca_pem().unwrap();
    let with = client_config(&ca, Some((&cert.pem(), &key.serialize_pem())));
    let got = options_over_tls(&server, with, "localhost").await.unwrap();
    assert!(got.starts_with(b"ICAP/1.0 200 OK\r\n"));
    // Without a certificate the server refuses (TLS 1.3 reports it on the first read).
    let without = options_over_tls(&server, client_config(&ca, None), "localhost").await;
    assert!(without.is_err() || without.unwrap().is_empty());
}

/// TLS on either side of the proxy, independently; the upstream's certificate is verified.
#[tokio::test]
async fn the_proxy_speaks_tls_on_either_side() {
    use icap_mock_server::proxy::Upstream;
    use icap_proto::Method;

    use crate::support::Conn;

    // Plain to the client, icaps:// upstream trusted through its CA.
    let upstream = MockServer::builder().tls_generated().start().await;
    let ca = upstream.ca_pem().expect("generated CA");
    let proxy = MockServer::builder()
        .upstream(
            Upstream::parse(&upstream.url())
                .unwrap()
                .with_ca_pem(&ca)
                .unwrap(),
        )
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let a = c.answer(Method::Options).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.header("ISTag"), Some(format!("\"{}\"", upstream.istag())));

    // Verified by default: without its CA, the generated certificate is refused.
    let proxy = MockServer::builder()
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(b"OPTIONS icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\n\r\n")
        .await;
    let a = c.answer(Method::Options).await;
    assert_eq!(a.status(), 502);
    assert!(
        a.header("X-Mock-Upstream-Error")
            .is_some_and(|v| v.contains("TLS"))
    );

    // icaps:// to the client, plain upstream.
    let plain = MockServer::start().await;
    let proxy = MockServer::builder()
        .tls_generated()
        .upstream(Upstream::parse(&plain.url()).unwrap())
        .start()
        .await;
    let cfg = client_config(&proxy.ca_pem().unwrap(), None);
    let answer = options_over_tls(&proxy, cfg, "localhost").await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("ICAP/1.0 200"), "{text}");
    assert!(text.contains(&plain.istag()), "{text}");
}
