//! Shared helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use icap_client::{Client, ClientBuilder, IdentityHeaders, Timeouts};
use icap_mock_server::MockServer;

/// A builder for `url` with short timeouts so failing tests fail fast.
pub(crate) fn builder(url: &str) -> ClientBuilder {
    Client::builder()
        .server(url)
        .timeouts(
            Timeouts::default()
                .with_connect(Duration::from_secs(2))
                .with_idle(Duration::from_secs(5))
                .with_continue_wait(Duration::from_secs(5))
                .with_deadline(Duration::from_secs(20), Duration::from_millis(100)),
        )
        .identity_headers(IdentityHeaders::filecloud())
}

pub(crate) fn client(server: &MockServer) -> Client {
    builder(&server.url()).build().expect("valid test client")
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

pub(crate) fn eicar() -> &'static [u8] {
    icap_mock_server::EICAR
}

/// A port with nothing listening on it.
pub(crate) async fn refused_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

pub(crate) fn respmods(j: &[icap_mock_server::Transaction]) -> Vec<&icap_mock_server::Transaction> {
    j.iter()
        .filter(|t| t.method == icap_mock_server::Method::Respmod)
        .collect()
}

pub(crate) fn count_options(j: &[icap_mock_server::Transaction]) -> usize {
    j.iter()
        .filter(|t| t.method == icap_mock_server::Method::Options)
        .count()
}
