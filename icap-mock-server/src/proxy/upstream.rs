//! Where proxy mode sends requests: the [`Upstream`] (URL, CA, timeouts, transport
//! faults, what the client gets when it fails) and its pool of idle connections.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use icap_proto::{Scheme, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::transport_faults::{Cut, TransportFaults};

/// What the client gets when the upstream fails (refuses, times out, breaks the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpstreamFailure {
    /// An ICAP status like a gateway's: `502 Bad Gateway` (refused, closed, broken
    /// answer) or `504 Gateway Timeout`, with `X-Mock-Upstream-Error` saying why, then a
    /// close. Once the answer's head has gone out a status cannot follow: the connection
    /// is reset instead.
    #[default]
    Status,
    /// Close the connection without a word.
    Close,
}

impl UpstreamFailure {
    /// `status` or `close`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "status" => Ok(UpstreamFailure::Status),
            "close" => Ok(UpstreamFailure::Close),
            _ => Err(format!("upstream failure {s:?}: use status or close")),
        }
    }
}

/// Why an upstream setting is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The URL is not `icap://host[:port]/service` or `icaps://...`.
    #[error("upstream URL {0:?} is not icap[s]://host[:port]/service")]
    InvalidUrl(String),
    /// The CA file did not parse.
    #[error("upstream CA: {0}")]
    Ca(String),
}

/// A real ICAP server to forward to.
///
/// ```
/// use icap_mock_server::proxy::{Upstream, UpstreamFailure};
/// use std::time::Duration;
/// let up = Upstream::parse("icap://127.0.0.1:1344/avscan")
///     .unwrap()
///     .with_timeout(Duration::from_secs(30))
///     .with_failure(UpstreamFailure::Close);
/// assert_eq!(up.url(), "icap://127.0.0.1:1344/avscan");
/// assert!(Upstream::parse("http://x/y").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub(crate) url: String,
    pub(crate) ca_pem: Option<String>,
    pub(crate) failure: UpstreamFailure,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_idle: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) hold_limit: u64,
    pub(crate) faults: TransportFaults,
    pub(crate) pool: PoolHandle,
}

/// Default number of body bytes held back while a body rule has not decided (1 MiB).
pub const DEFAULT_HOLD_LIMIT: u64 = 1024 * 1024;

/// Default number of idle keep-alive connections kept per upstream: icap-client's default
/// `max_connections`, so a client scanning that many files at once through the proxy finds
/// as many upstream connections waiting for its next round. With 8, a client using 16
/// connections made the proxy open 8 fresh upstream connections per round of 16 scans
/// (26 313 in one bench run, against 16 with 16 kept).
pub const DEFAULT_MAX_IDLE: usize = 32;

/// Default time an idle upstream connection is kept before it is dropped.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle upstream connections, newest last. Shared by the clones of one [`Upstream`].
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<(Box<dyn Io>, Instant)>>,
    opened: std::sync::atomic::AtomicU64,
}

/// The pool is state, not configuration: two upstreams with the same settings are equal
/// whatever their pools hold.
#[derive(Clone, Default)]
pub(crate) struct PoolHandle(pub(crate) Arc<Pool>);

impl PartialEq for PoolHandle {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for PoolHandle {}

impl std::fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.0.idle.lock().map_or(0, |v| v.len());
        f.debug_struct("Pool").field("idle", &idle).finish()
    }
}

impl Pool {
    /// The newest idle connection still fresh and still open, if any.
    pub(crate) async fn take(&self, idle_timeout: Duration) -> Option<Box<dyn Io>> {
        loop {
            let (mut io, since) = self.idle.lock().ok()?.pop()?;
            if since.elapsed() > idle_timeout {
                continue;
            }
            if still_open(&mut io).await {
                return Some(io);
            }
        }
    }

    /// Keeps `io` for the next request, dropping the oldest beyond `max_idle`.
    pub(crate) fn put(&self, io: Box<dyn Io>, max_idle: usize, idle_timeout: Duration) {
        if max_idle == 0 {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        idle.retain(|(_, since)| since.elapsed() <= idle_timeout);
        while idle.len() >= max_idle {
            idle.remove(0);
        }
        idle.push((io, Instant::now()));
    }
}

/// Whether an idle connection is still usable: a read would wait. A close, an error or
/// bytes nobody asked for all make it unusable.
async fn still_open(io: &mut Box<dyn Io>) -> bool {
    let mut byte = [0u8; 1];
    std::future::poll_fn(|cx| {
        let mut rb = tokio::io::ReadBuf::new(&mut byte);
        match Pin::new(&mut **io).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Ready(true),
            Poll::Ready(_) => Poll::Ready(false),
        }
    })
    .await
}

impl Upstream {
    /// Parses `icap://host[:port]/service` (port 1344 by default) or `icaps://...`
    /// (port 11344 by default; the certificate is verified against the system's web
    /// roots unless [`with_ca_pem`](Self::with_ca_pem) names a CA).
    pub fn parse(url: &str) -> Result<Self, UpstreamError> {
        let uri = Uri::parse(url.to_owned()).map_err(|_| UpstreamError::InvalidUrl(url.into()))?;
        if uri.service().is_empty() {
            return Err(UpstreamError::InvalidUrl(url.into()));
        }
        Ok(Upstream {
            url: url.to_owned(),
            ca_pem: None,
            failure: UpstreamFailure::default(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_idle: DEFAULT_MAX_IDLE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            hold_limit: DEFAULT_HOLD_LIMIT,
            faults: TransportFaults::default(),
            pool: PoolHandle::default(),
        })
    }

    /// Trusts only this CA (PEM) for `icaps://`.
    pub fn with_ca_pem(mut self, pem: &str) -> Result<Self, UpstreamError> {
        crate::tls::parse_certs(pem).map_err(UpstreamError::Ca)?;
        self.ca_pem = Some(pem.to_owned());
        Ok(self)
    }

    /// What the client gets when the upstream fails (default [`UpstreamFailure::Status`]).
    #[must_use]
    pub fn with_failure(mut self, failure: UpstreamFailure) -> Self {
        self.failure = failure;
        self
    }

    /// How long the TCP (and TLS) connect may take (default 10 s).
    #[must_use]
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long the proxy waits for the upstream's next byte (default 60 s); past it,
    /// `504` (or a close, see [`UpstreamFailure`]).
    #[must_use]
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Transport faults on the proxied path (see [`TransportFaults`]).
    #[must_use]
    pub fn with_transport_faults(mut self, faults: TransportFaults) -> Self {
        self.faults = faults;
        self
    }

    /// How many idle keep-alive connections to this upstream are kept for the next
    /// requests (default [`DEFAULT_MAX_IDLE`]; 0: a new connection per request, closed
    /// after it).
    #[must_use]
    pub fn with_max_idle(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// How long an idle upstream connection is kept (default [`DEFAULT_IDLE_TIMEOUT`]).
    /// Keep it below the upstream's own keep-alive timeout.
    #[must_use]
    pub fn with_idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// How many body bytes the proxy holds back while a mounted rule that looks at the
    /// body (`body_contains`, `body_size`, a closure, ...) has not decided yet (default
    /// [`DEFAULT_HOLD_LIMIT`]). The rule can then still answer instead of the upstream.
    /// Past the bound the request is forwarded with the held bytes first, and the
    /// journal's `note` says so; 0 forwards at once (only head rules decide).
    #[must_use]
    pub fn with_hold_limit(mut self, bytes: u64) -> Self {
        self.hold_limit = bytes;
        self
    }

    /// The hold bound (see [`with_hold_limit`](Self::with_hold_limit)).
    pub fn hold_limit(&self) -> u64 {
        self.hold_limit
    }

    /// How many connections to the upstream were opened so far (by this upstream and its
    /// clones).
    pub fn connections_opened(&self) -> u64 {
        self.pool
            .0
            .opened
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many idle connections wait in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.pool.0.idle.lock().map_or(0, |v| v.len())
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn uri(&self) -> Uri {
        Uri::parse(self.url.clone()).expect("checked by Upstream::parse")
    }

    pub(crate) async fn connect(&self) -> Result<Box<dyn Io>, String> {
        let uri = self.uri();
        let host = uri.host().trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, uri.port()))
            .await
            .map_err(|e| format!("connect {}:{}: {e}", uri.host(), uri.port()))?;
        self.pool
            .0
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        if uri.scheme() == Scheme::Icap {
            return Ok(Box::new(tcp));
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for c in crate::tls::parse_certs(pem)? {
                    roots.add(c).map_err(|e| format!("upstream CA: {e}"))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("upstream host name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS to upstream: {e}"))?;
        Ok(Box::new(tls))
    }
}

/// A new connection to `upstream`, within its connect timeout.
pub(crate) async fn connect_fresh(upstream: &Upstream) -> Result<Box<dyn Io>, Failure> {
    tokio::time::timeout(upstream.connect_timeout, upstream.connect())
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(Failure::Bad)
}

/// A byte stream to the upstream.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a proxied exchange stopped.
pub(crate) enum Failure {
    /// Upstream refused, closed or broke the protocol.
    Bad(String),
    /// Upstream went silent.
    Timeout,
    /// The client went away or broke its request.
    Client,
    /// A transport fault ended the client's connection.
    Cut(Cut),
}
