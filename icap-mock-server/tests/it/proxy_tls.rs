//! TLS on either side of the proxy, independently: plain to the client with icaps
//! upstream (the upstream's certificate verified, by default against the web roots, here
//! against a named CA), and icaps to the client with a plain upstream.

use std::sync::Arc;

use icap_mock_server::MockServer;
use icap_mock_server::proxy::Upstream;
use icap_proto::Method;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn eicar_request() -> Vec<u8> {
    respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/eicar.com",
        &chunks(&[EICAR], "0\r\n\r\n"),
    )
}

fn clean_request() -> Vec<u8> {
    respmod_with_url(
        "avscan",
        "Allow: 204\r\n",
        "/clean.txt",
        &chunks(&[b"hello"], "0\r\n\r\n"),
    )
}

async fn scans_seen(server: &MockServer) -> usize {
    server
        .journal()
        .await
        .iter()
        .filter(|t| t.method == Method::Respmod)
        .count()
}

#[tokio::test]
async fn plain_to_the_client_icaps_to_a_verified_upstream() {
    let upstream = MockServer::builder().tls_generated().start().await;
    assert!(upstream.url().starts_with("icaps://"));
    let ca = upstream.ca_pem().expect("a generated CA");
    let proxy = MockServer::builder()
        .upstream(
            Upstream::parse(&upstream.url())
                .unwrap()
                .with_ca_pem(&ca)
                .unwrap(),
        )
        .start()
        .await;
    assert!(proxy.url().starts_with("icap://"));

    let mut c = Conn::open(proxy.addr()).await;
    c.send(&clean_request()).await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 204);
    c.send(&eicar_request()).await;
    let a = c.answer(Method::Respmod).await;
    assert!(
        a.header("X-Infection-Found").is_some(),
        "the upstream's verdict came back: {}",
        a.text()
    );
    assert_eq!(
        scans_seen(&upstream).await,
        2,
        "both went through TLS upstream"
    );
}

#[tokio::test]
async fn an_upstream_certificate_that_does_not_verify_is_a_gateway_error() {
    // A CA that did not sign the upstream's certificate: the handshake must fail and the
    // request must never reach the upstream.
    let upstream = MockServer::builder().tls_generated().start().await;
    let other = icap_mock_server::tls::generate(&[]).unwrap();
    let proxy = MockServer::builder()
        .upstream(
            Upstream::parse(&upstream.url())
                .unwrap()
                .with_ca_pem(&other.ca_pem)
                .unwrap(),
        )
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&clean_request()).await;
    let a = c.answer(Method::Respmod).await;
    assert_eq!(a.status(), 502, "{}", a.text());
    assert_eq!(scans_seen(&upstream).await, 0);

    // The system's web roots (the default) do not know a generated CA either.
    let proxy = MockServer::builder()
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .start()
        .await;
    let mut c = Conn::open(proxy.addr()).await;
    c.send(&clean_request()).await;
    assert_eq!(c.answer(Method::Respmod).await.status(), 502);
    assert_eq!(scans_seen(&upstream).await, 0);
}

/// Reads one answer head (up to the blank line) from any stream.
async fn head_of<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut byte))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before the head ended: {buf:?}");
        buf.push(byte[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn icaps_to_the_client_plain_upstream() {
    let upstream = MockServer::start().await;
    let proxy = MockServer::builder()
        .tls_generated()
        .upstream(Upstream::parse(&upstream.url()).unwrap())
        .start()
        .await;
    assert!(proxy.url().starts_with("icaps://"));
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(proxy.ca_pem().unwrap().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the proxy's own certificate verifies");
    tls.write_all(&clean_request()).await.unwrap();
    let head = head_of(&mut tls).await;
    assert!(head.starts_with("ICAP/1.0 204 "), "{head}");
    assert_eq!(scans_seen(&upstream).await, 1, "forwarded over plain TCP");
}
