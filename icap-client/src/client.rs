//! The client: servers, pool, options cache, scans.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use icap_proto::{
    BodyKind, HeaderName, HeaderValue, Headers, HttpRequestHead, HttpResponseHead, Limits, Method,
    OptionsResponse, OptionsRules, RequestHead, Scheme, Uri,
};
use tokio::io::AsyncRead;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::config::{
    DEFAULT_MAX_SIZE, HealthConfig, PreviewMode, Roots, Strategy, Timeouts, TlsOptions,
};
use crate::connection::{BodyPlan, BodySource, Exchange, ExchangeError, FileStamp, Outgoing};
use crate::error::{Error, ErrorKind, Phase};
use crate::events::HealthEvent;
use crate::hex::hex;
use crate::identity::{IdentityHeaders, Uploader};
use crate::server::{ServerState, Usable};
use crate::transport::Endpoint;
use crate::verdict::{self, NotScannedReason, ScanReport, Verdict};

/// What is known about the file being scanned, besides its bytes.
///
/// ```
/// use icap_client::{ScanMeta, Uploader};
/// let meta = ScanMeta::new("report.pdf")
///     .with_uploader(Uploader::new("alice"))
///     .with_header("X-Tenant", "acme");
/// assert_eq!(meta.filename.as_deref(), Some("report.pdf"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScanMeta {
    /// The file name, sent in the embedded HTTP request line (some servers use the
    /// extension) and used for `Transfer-*` decisions.
    pub filename: Option<String>,
    /// Who uploaded it.
    pub uploader: Option<Uploader>,
    /// Extra ICAP headers for this scan (subject to the identity switch).
    pub headers: Vec<(String, String)>,
    /// `Content-Type` of the embedded HTTP message.
    pub content_type: Option<String>,
}

impl ScanMeta {
    /// Metadata with a file name.
    pub fn new(filename: impl Into<String>) -> Self {
        ScanMeta {
            filename: Some(filename.into()),
            ..ScanMeta::default()
        }
    }
    /// Sets the uploader.
    pub fn with_uploader(mut self, u: Uploader) -> Self {
        self.uploader = Some(u);
        self
    }
    /// Adds an ICAP header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Sets the `Content-Type`.
    pub fn with_content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }
}

/// A body to scan.
enum Source<'a> {
    /// A file, with its size and modification time when the scan began.
    Path(PathBuf, FileStamp),
    Bytes(Bytes),
    Reader(Option<Box<dyn AsyncRead + Unpin + Send + 'a>>),
}

impl Source<'_> {
    fn rewindable(&self) -> bool {
        !matches!(self, Source::Reader(_))
    }
}

/// Opens a file for one attempt and checks it is still the file whose size the request
/// announces.
async fn open_checked(path: &Path, stamp: FileStamp) -> Result<tokio::fs::File, Error> {
    let f = tokio::fs::File::open(path).await.map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot open {}: {e}", path.display()),
        )
        .with_source(e)
    })?;
    let now = f.metadata().await.map(|m| FileStamp::of(&m)).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot read {}: {e}", path.display()),
        )
        .with_source(e)
    })?;
    if now != stamp {
        return Err(Error::new(
            ErrorKind::Source,
            format!(
                "{} changed before it could be sent (size {} -> {})",
                path.display(),
                stamp.len,
                now.len
            ),
        ));
    }
    Ok(f)
}

/// Builds a [`Client`]. Every setting has a default except the server.
///
/// ```
/// use std::time::Duration;
/// use icap_client::{Client, IdentityHeaders, Strategy};
/// let client = Client::builder()
///     .server("icap://av1.example.net/avscan")
///     .server("icap://av2.example.net/avscan")
///     .strategy(Strategy::Failover)
///     .bind("0.0.0.0".parse().unwrap())
///     .max_size(Some(25 * 1024 * 1024))
///     .connect_timeout(Duration::from_secs(3))
///     .identity_headers(IdentityHeaders::filecloud())
///     .build()
///     .unwrap();
/// assert_eq!(client.servers().len(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use]
#[allow(clippy::struct_excessive_bools)] // independent switches of a builder, not a state
pub struct ClientBuilder {
    servers: Vec<Uri>,
    error: Option<Error>,
    strategy: Strategy,
    bind: Option<IpAddr>,
    tls: TlsOptions,
    timeouts: Timeouts,
    max_size: Option<u64>,
    method: Method,
    preview: PreviewMode,
    use_options: bool,
    options_ttl: Duration,
    identity: IdentityHeaders,
    headers: Vec<(String, String)>,
    max_connections: u32,
    pool_idle_timeout: Duration,
    health: HealthConfig,
    retries: u32,
    wire_log: Option<usize>,
    digest: bool,
    limits: Limits,
    chunk_size: usize,
    http_host: String,
    allow_204: bool,
    allow_206: bool,
    max_adapted_body: Option<u64>,
    retry_backoff: (Duration, Duration),
    options_rules: OptionsRules,
}

/// Default cap on the adapted (modified) body the client reads back: 64 MiB.
pub const DEFAULT_MAX_ADAPTED_BODY: u64 = 64 * 1024 * 1024;

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            servers: Vec::new(),
            error: None,
            strategy: Strategy::Failover,
            bind: None,
            tls: TlsOptions::default(),
            timeouts: Timeouts::default(),
            max_size: Some(DEFAULT_MAX_SIZE),
            method: Method::Respmod,
            preview: PreviewMode::Auto,
            use_options: true,
            options_ttl: Duration::from_secs(300),
            identity: IdentityHeaders::default(),
            headers: Vec::new(),
            max_connections: 32,
            pool_idle_timeout: Duration::from_secs(30),
            health: HealthConfig::default(),
            retries: 0,
            wire_log: None,
            digest: true,
            limits: Limits::default(),
            chunk_size: 64 * 1024,
            http_host: "upload.local".into(),
            allow_204: true,
            allow_206: false,
            max_adapted_body: Some(DEFAULT_MAX_ADAPTED_BODY),
            retry_backoff: (Duration::from_millis(100), Duration::from_secs(2)),
            options_rules: OptionsRules::default(),
        }
    }
}

impl ClientBuilder {
    fn fail(mut self, e: Error) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// Adds a server by URL: `icap://host[:port]/service` or `icaps://...` (Secure ICAP).
    /// Several servers are used per [`ClientBuilder::strategy`].
    pub fn server(self, url: &str) -> Self {
        match url.parse::<Uri>() {
            Ok(u) if !u.service().is_empty() => {
                let mut s = self;
                s.servers.push(u);
                s
            }
            Ok(_) => self.fail(Error::config(format!(
                "server URL {url:?} names no service (icap://host:port/SERVICE)"
            ))),
            Err(e) => {
                self.fail(Error::config(format!("invalid server URL {url:?}: {e}")).with_source(e))
            }
        }
    }

    /// Adds a server by parts: host name or IP, port (1344 is the ICAP default), service
    /// name, and whether to use TLS ("Secure ICAP").
    pub fn server_parts(self, host: &str, port: Option<u16>, service: &str, secure: bool) -> Self {
        let scheme = if secure { Scheme::Icaps } else { Scheme::Icap };
        let port = port.or(Some(1344));
        match Uri::new(scheme, host, port, service) {
            Ok(u) => {
                let mut s = self;
                s.servers.push(u);
                s
            }
            Err(e) => self.fail(
                Error::config(format!("invalid server {host}:{port:?}/{service}: {e}"))
                    .with_source(e),
            ),
        }
    }

    /// Ordered failover (default) or round-robin over several servers.
    pub fn strategy(mut self, s: Strategy) -> Self {
        self.strategy = s;
        self
    }
    /// The local address to connect from ("Server Local IP"); default: any.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.bind = (!ip.is_unspecified()).then_some(ip);
        self
    }
    /// All TLS settings at once.
    pub fn tls(mut self, t: TlsOptions) -> Self {
        self.tls = t;
        self
    }
    /// Trust only the CAs in this PEM file.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.roots = Roots::CaFile(path.into());
        self
    }
    /// Trust only the CAs in this PEM string.
    pub fn tls_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.tls.roots = Roots::CaPem(pem.into());
        self
    }
    /// The TLS server name to send and verify instead of the URL's host.
    pub fn tls_sni(mut self, name: impl Into<String>) -> Self {
        self.tls.sni = Some(name.into());
        self
    }
    /// A client certificate and key (PEM files) for mutual TLS.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client_cert = Some((cert.into(), key.into()));
        self
    }
    /// A client certificate and key (PEM strings) for mutual TLS.
    pub fn tls_client_cert_pem(mut self, cert: impl Into<String>, key: impl Into<String>) -> Self {
        self.tls.client_cert_pem = Some((cert.into(), key.into()));
        self
    }
    /// Accepts any server certificate. Logs a warning on every connection.
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.tls.danger_accept_invalid_certs = yes;
        self
    }
    /// All timeouts at once.
    pub fn timeouts(mut self, t: Timeouts) -> Self {
        // Fields are public: clamp here too, so no deadline can overflow.
        self.timeouts = t.clamped();
        self
    }
    /// Timeout for opening a connection.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.timeouts.connect = d;
        self
    }
    /// Files larger than this are not sent: `NotScanned { TooLarge }`. `None`: no limit.
    /// Default 25 MiB.
    pub fn max_size(mut self, n: Option<u64>) -> Self {
        self.max_size = n;
        self
    }
    /// `RESPMOD` (default) or `REQMOD`.
    pub fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }
    /// How the preview size is chosen.
    pub fn preview(mut self, p: PreviewMode) -> Self {
        self.preview = p;
        self
    }
    /// Whether to ask the service with `OPTIONS` before scanning (default true). Without
    /// it, no preview is sent unless [`PreviewMode::Fixed`].
    pub fn use_options(mut self, yes: bool) -> Self {
        self.use_options = yes;
        self
    }
    /// How long an `OPTIONS` answer without `Options-TTL` stays valid (default 300 s).
    pub fn options_ttl(mut self, d: Duration) -> Self {
        self.options_ttl = d;
        self
    }
    /// Which identity headers to send for the uploader, or none.
    pub fn identity_headers(mut self, h: IdentityHeaders) -> Self {
        self.identity = h;
        self
    }
    /// An ICAP header sent with every scan (subject to the identity switch). Values with
    /// CR or LF are refused by [`ClientBuilder::build`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Most connections per server (default 32); the server's `Max-Connections` lowers it.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
    /// How long an idle pooled connection is kept (default 30 s).
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.pool_idle_timeout = d;
        self
    }
    /// When a server counts as down and when it is retried.
    pub fn health(mut self, h: HealthConfig) -> Self {
        self.health = h;
        self
    }
    /// Extra attempts after a failed scan (default 0: only a stale pooled connection and
    /// connection failures that a failover server can take are retried).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }
    /// Logs the bytes on the wire at target `icap_client::wire` (DEBUG): every head and at
    /// most `body_cap` body bytes per message. Off by default.
    pub fn wire_log(mut self, body_cap: Option<usize>) -> Self {
        self.wire_log = body_cap;
        self
    }
    /// Compute the SHA-256 of each body (default true; the audit log and the "is this
    /// `200` an unchanged echo" check use it). Turned off, a server that answers a clean
    /// file with a `200` echo instead of `204` gets `Verdict::Modified`, never `Clean`,
    /// since the echo can no longer be proven unchanged.
    pub fn body_digest(mut self, yes: bool) -> Self {
        self.digest = yes;
        self
    }
    /// Decoder limits for responses.
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }
    /// Bytes read from the file per chunk (default 64 KiB).
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = n.max(1);
        self
    }
    /// The `Host` of the embedded HTTP request (default `upload.local`).
    pub fn http_host(mut self, h: impl Into<String>) -> Self {
        self.http_host = h.into();
        self
    }

    /// Whether requests carry `Allow: 204` (default true). Without it, RFC 3507 lets the
    /// server answer `204` only to a preview; outside a preview a clean file then comes back
    /// as a `200` echo (checked byte for byte against what was sent, see
    /// [`body_digest`](Self::body_digest)), and a `204` there is a protocol error.
    pub fn allow_204(mut self, yes: bool) -> Self {
        self.allow_204 = yes;
        self
    }
    /// Whether requests carry `Allow: 206` (default false). This client does not implement
    /// partial answers (`206` with `use-original-body`): `true` makes [`build`](Self::build)
    /// fail with a configuration error rather than send a promise it cannot keep. A `206`
    /// received without `Allow: 206` is a protocol error.
    pub fn allow_206(mut self, yes: bool) -> Self {
        self.allow_206 = yes;
        self
    }
    /// The most body bytes read back from a `200` answer (the adapted or echoed file),
    /// default [`DEFAULT_MAX_ADAPTED_BODY`]. Past it the scan fails with
    /// [`ErrorKind::TooLarge`] and the connection is closed. `None`: no cap (the scan
    /// deadline still bounds it).
    pub fn max_adapted_body(mut self, n: Option<u64>) -> Self {
        self.max_adapted_body = n;
        self
    }
    /// Back-off between retries (see [`retries`](Self::retries)): the first waits about
    /// `base`, each next one twice as long, capped at `max`, each with random jitter of up
    /// to half its length (default 100 ms, 2 s).
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_backoff = (base, max.max(base));
        self
    }

    /// How `OPTIONS` answers are checked (icap-proto's [`OptionsRules`]): an answer without
    /// `ISTag` makes the service unusable unless `require_istag` is off (the lenient switch),
    /// and the server's `Preview`, `Options-TTL` and `Max-Connections` are clamped or ignored
    /// past their maxima (64 KiB, 30 days, 100 000), with a warning. The `max_preview` also
    /// bounds a fixed [`preview`](Self::preview) size.
    pub fn options_rules(mut self, rules: OptionsRules) -> Self {
        self.options_rules = rules;
        self
    }

    /// Builds the client. Needs a tokio runtime only when scanning.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.servers.is_empty() {
            return Err(Error::config("no ICAP server configured"));
        }
        if let PreviewMode::Fixed(n) = self.preview
            && n > self.options_rules.max_preview
        {
            return Err(Error::config(format!(
                "preview {n} is larger than max_preview ({}); a preview is held in memory",
                self.options_rules.max_preview
            )));
        }
        if self.allow_206 {
            return Err(Error::config(
                "allow_206: this client does not implement 206 partial answers (use-original-body); \
                 leave it off",
            ));
        }
        self.identity.validate()?;
        let mut static_headers = Headers::new();
        for (n, v) in &self.headers {
            push_header(&mut static_headers, n, v)?;
        }
        HeaderValue::new(self.http_host.clone().into_bytes())
            .map_err(|_| Error::config("invalid HTTP host"))?;
        let tls = if self.servers.iter().any(|u| u.scheme() == Scheme::Icaps) {
            if self.tls.danger_accept_invalid_certs {
                tracing::warn!(
                    "danger_accept_invalid_certs: TLS certificates of ICAP servers will NOT be verified"
                );
            }
            Some(crate::tls::client_config(&self.tls)?)
        } else {
            None
        };
        let servers = self
            .servers
            .iter()
            .map(|u| {
                let endpoint = Endpoint {
                    host: u.host().to_owned(),
                    port: u.port(),
                    tls: (u.scheme() == Scheme::Icaps).then(|| {
                        (
                            tls.clone().expect("TLS config built for icaps servers"),
                            self.tls.sni.clone(),
                        )
                    }),
                    bind: self.bind,
                };
                Arc::new(ServerState::new(u.clone(), endpoint, self.max_connections))
            })
            .collect();
        let (health, _) = broadcast::channel(1024);
        Ok(Client {
            inner: Arc::new(Inner {
                cfg: self,
                static_headers,
                servers,
                rr: AtomicUsize::new(0),
                health,
                forwards: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }
}

fn push_header(h: &mut Headers, name: &str, value: &str) -> Result<(), Error> {
    let n = HeaderName::new(name.to_owned().into_bytes())
        .map_err(|e| Error::config(format!("invalid header name {name:?}: {e}")))?;
    let v = HeaderValue::new(value.to_owned().into_bytes()).map_err(|_| {
        Error::config(format!(
            "refused header {name}: value {value:?} contains CR, LF or NUL"
        ))
    })?;
    h.push(n, v);
    Ok(())
}

struct Inner {
    cfg: ClientBuilder,
    static_headers: Headers,
    servers: Vec<Arc<ServerState>>,
    rr: AtomicUsize,
    health: broadcast::Sender<HealthEvent>,
    /// Who else hears of health changes, synchronously (a [`Guard`](crate::Guard)'s
    /// channel); each returns false once it is gone and is then dropped.
    forwards: std::sync::Mutex<Vec<HealthForward>>,
}

type HealthForward = Box<dyn Fn(&HealthEvent) -> bool + Send + Sync>;

/// A scan client for one or more ICAP servers. Cheap to clone; clones share the pools,
/// caches and health state. Safe to use from many tasks at once.
///
/// ```no_run
/// # async fn demo() -> Result<(), icap_client::Error> {
/// use icap_client::{Client, ScanMeta, Verdict};
/// let client = Client::builder().server("icap://127.0.0.1:1344/avscan").build()?;
/// let report = client.scan_file("upload.bin", &ScanMeta::new("upload.bin")).await;
/// match report.verdict {
///     Verdict::Clean => {}
///     Verdict::Infected { threats } => println!("{}", threats[0].name),
///     other => println!("{}", other.label()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.servers())
            .finish_non_exhaustive()
    }
}

/// Timings and facts of one `OPTIONS` exchange.
#[derive(Debug, Clone)]
pub(crate) struct OptionsTiming {
    pub(crate) connect: Option<Duration>,
    pub(crate) rtt: Duration,
    pub(crate) tls: Option<(String, String)>,
}

impl Client {
    /// A builder with defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The server URLs, in configured order.
    pub fn servers(&self) -> Vec<String> {
        self.inner.servers.iter().map(|s| s.url.clone()).collect()
    }

    /// The size limit.
    pub fn max_size(&self) -> Option<u64> {
        self.inner.cfg.max_size
    }

    /// The method scans use.
    pub fn method(&self) -> Method {
        self.inner.cfg.method
    }

    /// Receives the servers' health changes (down, up) from now on. Alerts, notices and
    /// audit entries come from a [`Guard`](crate::Guard), which forwards these too.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.inner.health.subscribe()
    }

    /// Calls `f` with every health change, in the task that noticed it, until `f` returns
    /// false.
    pub(crate) fn forward_health(&self, f: impl Fn(&HealthEvent) -> bool + Send + Sync + 'static) {
        self.inner
            .forwards
            .lock()
            .expect("forwards lock")
            .push(Box::new(f));
    }

    fn emit_health(&self, h: HealthEvent) {
        self.inner
            .forwards
            .lock()
            .expect("forwards lock")
            .retain(|f| f(&h));
        // No subscriber is fine: events are optional for the embedding product.
        let _ = self.inner.health.send(h);
    }

    /// Idle pooled connections to server `i` (for monitoring and tests).
    pub fn idle_connections(&self, i: usize) -> usize {
        self.inner.servers.get(i).map_or(0, |s| s.idle_count())
    }

    /// The connection limit in force for server `i` (configured, lowered by the server's
    /// `Max-Connections`).
    pub fn connection_limit(&self, i: usize) -> u32 {
        self.inner.servers.get(i).map_or(0, |s| s.limit())
    }

    /// Whether server `i` is currently marked down.
    pub fn is_down(&self, i: usize) -> bool {
        self.inner
            .servers
            .get(i)
            .is_some_and(|s| s.usable() != Usable::Yes)
    }

    /// Scans a file, streaming it from disk (memory stays bounded whatever its size).
    pub async fn scan_file(&self, path: impl AsRef<Path>, meta: &ScanMeta) -> ScanReport {
        let path = path.as_ref().to_path_buf();
        let stamp = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => FileStamp::of(&m),
            Ok(_) => {
                return Self::failed_now(Error::new(
                    ErrorKind::Io,
                    format!("{} is not a regular file", path.display()),
                ));
            }
            Err(e) => {
                return Self::failed_now(
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot read {}: {e}", path.display()),
                    )
                    .with_source(e),
                );
            }
        };
        let mut meta = meta.clone();
        if meta.filename.is_none() {
            meta.filename = path.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        self.scan_source(Source::Path(path, stamp), Some(stamp.len), &meta)
            .await
    }

    /// Scans bytes in memory.
    pub async fn scan_bytes(&self, body: impl Into<Bytes>, meta: &ScanMeta) -> ScanReport {
        let b: Bytes = body.into();
        let n = b.len() as u64;
        self.scan_source(Source::Bytes(b), Some(n), meta).await
    }

    /// Scans what a reader yields. With `size: None` the size limit is enforced while
    /// streaming. A reader cannot be rewound, so it is never retried.
    pub async fn scan_reader<R>(&self, reader: R, size: Option<u64>, meta: &ScanMeta) -> ScanReport
    where
        R: AsyncRead + Unpin + Send,
    {
        self.scan_source(Source::Reader(Some(Box::new(reader))), size, meta)
            .await
    }

    fn failed_now(error: Error) -> ScanReport {
        ScanReport {
            verdict: Verdict::Failed { error },
            server: None,
            service: None,
            istag: None,
            status: None,
            size: 0,
            sent: 0,
            sha256: None,
            preview: None,
            early_response: false,
            attempts: 0,
            duration: Duration::ZERO,
        }
    }

    async fn scan_source(
        &self,
        mut src: Source<'_>,
        size: Option<u64>,
        meta: &ScanMeta,
    ) -> ScanReport {
        let start = Instant::now();
        let cfg = &self.inner.cfg;
        let mut report = Self::failed_now(Error::new(ErrorKind::Unavailable, "no attempt made"));
        report.size = size.unwrap_or(0);
        if let (Some(limit), Some(size)) = (cfg.max_size, size)
            && size > limit
        {
            report.verdict = Verdict::NotScanned {
                reason: NotScannedReason::TooLarge { size, limit },
            };
            tracing::debug!(size, limit, "not scanned: larger than the size limit");
            return report;
        }
        let deadline = cfg.timeouts.deadline_for(size.unwrap_or(0));
        let span =
            tracing::debug_span!("scan", file = meta.filename.as_deref().unwrap_or("-"), size);
        let fut = tracing::Instrument::instrument(
            self.scan_servers(&mut src, size, meta, &mut report),
            span,
        );
        report.verdict = if let Ok(v) = tokio::time::timeout(deadline, fut).await {
            v
        } else {
            let error = Error::timeout(Phase::Deadline);
            // The attempt was cut off from outside: count it against its server here.
            if let Some(s) = self
                .inner
                .servers
                .iter()
                .find(|s| Some(&s.url) == report.server.as_ref())
                && s.record_failure(&cfg.health)
            {
                self.announce_down(s, &error);
            }
            Verdict::Failed { error }
        };
        report.duration = start.elapsed();
        tracing::debug!(
            verdict = report.verdict.label(),
            server = report.server.as_deref().unwrap_or("-"),
            status = report.status,
            ms = report.duration.as_millis() as u64,
            "scan finished"
        );
        report
    }

    /// The servers in the order this scan tries them.
    fn order(&self) -> Vec<Arc<ServerState>> {
        let s = &self.inner.servers;
        let start = match self.inner.cfg.strategy {
            Strategy::Failover => 0,
            Strategy::RoundRobin => self.inner.rr.fetch_add(1, Ordering::Relaxed) % s.len(),
        };
        (0..s.len())
            .map(|k| s[(start + k) % s.len()].clone())
            .collect()
    }

    async fn scan_servers(
        &self,
        src: &mut Source<'_>,
        size: Option<u64>,
        meta: &ScanMeta,
        report: &mut ScanReport,
    ) -> Verdict {
        let cfg = &self.inner.cfg;
        let mut retries_left = cfg.retries;
        let mut last: Option<Error> = None;
        let order = self.order();
        let mut k = 0usize;
        let mut tried_any = false;
        while k < order.len() {
            let server = &order[k];
            match server.usable() {
                Usable::Yes => {}
                Usable::No => {
                    k += 1;
                    continue;
                }
                Usable::Probe => {
                    if let Err(e) = self.probe(server).await {
                        last = Some(e);
                        k += 1;
                        continue;
                    }
                }
            }
            tried_any = true;
            report.server = Some(server.url.clone());
            report.service = Some(server.uri.service().to_owned());
            report.attempts += 1;
            match self.scan_on(server, src, size, meta, report).await {
                Ok(v) => {
                    if server.record_success() {
                        self.announce_up(server);
                    }
                    return v;
                }
                Err(e) => {
                    tracing::debug!(server = %server.url, error = %e, "scan attempt failed");
                    if !e.is_server_failure() {
                        return Verdict::Failed { error: e };
                    }
                    if server.record_failure(&cfg.health) {
                        self.announce_down(server, &e);
                    }
                    let nothing_processed = e.is_connect()
                        || e.is_tls()
                        || matches!(
                            e.timeout_phase(),
                            Some(Phase::Connect | Phase::TlsHandshake)
                        )
                        || e.status() == Some(503);
                    last = Some(e);
                    if retries_left > 0 && src.rewindable() {
                        let pause = backoff(cfg.retry_backoff, cfg.retries - retries_left);
                        retries_left -= 1;
                        tracing::debug!(ms = pause.as_millis() as u64, "retrying after a pause");
                        tokio::time::sleep(pause).await;
                        // The retry goes to the next server, or the same one if it is alone.
                        if order.len() > 1 {
                            k += 1;
                            if k == order.len() {
                                k = 0;
                            }
                        }
                        continue;
                    }
                    if nothing_processed && src.rewindable() {
                        k += 1;
                        continue;
                    }
                    break;
                }
            }
        }
        let error = match last {
            Some(e) => e,
            None if !tried_any => Error::new(
                ErrorKind::Unavailable,
                "every ICAP server is marked down; not sent",
            ),
            None => Error::new(ErrorKind::Unavailable, "no ICAP server could be used"),
        };
        Verdict::Failed { error }
    }

    fn announce_down(&self, s: &ServerState, e: &Error) {
        tracing::warn!(server = %s.url, error = %e, "ICAP server marked down");
        self.emit_health(HealthEvent::Down {
            server: s.url.clone(),
            message: format!("ICAP server {} is unavailable: {e}", s.url),
        });
    }

    fn announce_up(&self, s: &ServerState) {
        tracing::info!(server = %s.url, "ICAP server is back");
        self.emit_health(HealthEvent::Up {
            server: s.url.clone(),
            message: format!("ICAP server {} is available again", s.url),
        });
    }

    /// Probes a server with `OPTIONS`; success brings it back, failure keeps it down.
    async fn probe(&self, s: &ServerState) -> Result<(), Error> {
        match self.fetch_options(s).await {
            Ok((o, _)) => {
                s.store_options(o, self.inner.cfg.options_ttl);
                if s.record_success() {
                    self.announce_up(s);
                }
                Ok(())
            }
            Err(e) => {
                if e.is_server_failure() && s.mark_down(&self.inner.cfg.health) {
                    self.announce_down(s, &e);
                }
                Err(e)
            }
        }
    }

    /// Whether an upload can be scanned now: `Ok` if a server is known to be up or answers
    /// an `OPTIONS` probe; `Err(Unavailable)` at once while every server is marked down.
    pub async fn check_available(&self) -> Result<(), Error> {
        let mut last = None;
        for s in &self.inner.servers {
            match s.usable() {
                Usable::No => {}
                Usable::Yes if s.known_good() => return Ok(()),
                Usable::Yes | Usable::Probe => match self.probe(s).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = Some(e),
                },
            }
        }
        let msg = match last {
            Some(e) => format!("no ICAP server available: {e}"),
            None => "no ICAP server available (all marked down)".into(),
        };
        Err(Error::new(ErrorKind::Unavailable, msg))
    }

    async fn server_options(&self, s: &ServerState) -> Result<Arc<OptionsResponse>, Error> {
        if let Some(o) = s.cached_options() {
            return Ok(o);
        }
        let _g = s.options_refresh.lock().await;
        if let Some(o) = s.cached_options() {
            return Ok(o);
        }
        let (o, _) = self.fetch_options(s).await?;
        s.store_options(o, self.inner.cfg.options_ttl);
        Ok(s.cached_options().unwrap_or_default())
    }

    /// Sends `OPTIONS` on a pooled connection (retrying a stale one once).
    pub(crate) async fn fetch_options(
        &self,
        s: &ServerState,
    ) -> Result<(OptionsResponse, OptionsTiming), Error> {
        let cfg = &self.inner.cfg;
        let mut head = RequestHead::new(Method::Options, s.uri.clone());
        head.headers
            .append("Host", host_header(&s.uri).as_str())
            .map_err(|e| Error::config(format!("host header: {e}")))?;
        head.headers
            .append("User-Agent", USER_AGENT)
            .expect("static header is valid");
        let mut bytes = BytesMut::new();
        head.encode(&mut bytes)
            .map_err(|e| Error::config(format!("OPTIONS request: {e}")))?;
        let bytes = bytes.freeze();
        let mut fresh = false;
        loop {
            let t0 = Instant::now();
            let mut co = s
                .checkout(
                    &cfg.timeouts,
                    cfg.limits,
                    cfg.wire_log,
                    cfg.pool_idle_timeout,
                    fresh,
                )
                .await?;
            let connect = (!co.reused).then(|| t0.elapsed());
            let t1 = Instant::now();
            let out = Outgoing {
                method: Method::Options,
                allow_204: false,
                head: bytes.clone(),
                body: None,
                max_answer_body: cfg.max_adapted_body,
            };
            let res =
                tokio::time::timeout(cfg.timeouts.deadline, co.conn.exchange(out, &cfg.timeouts))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ExchangeError {
                            error: Error::timeout(Phase::Deadline),
                            response_started: true,
                            source_read: 0,
                            too_large: false,
                        })
                    });
            match res {
                Ok(ex) => {
                    let rtt = t1.elapsed();
                    let tls = co.conn.get_ref().tls_info();
                    let head = ex.head;
                    if ex.reusable {
                        s.checkin(co);
                    }
                    if head.status.as_u16() != 200 {
                        return Err(verdict::status_error(head.status.as_u16(), &head));
                    }
                    let o = OptionsResponse::from_head_with(&head, &cfg.options_rules).map_err(
                        |e| Error::protocol(format!("invalid OPTIONS answer: {e}")).with_source(e),
                    )?;
                    return Ok((o, OptionsTiming { connect, rtt, tls }));
                }
                Err(e) if co.reused && !fresh && is_stale(&e) => {
                    tracing::debug!(server = %s.url, "pooled connection was stale; retrying OPTIONS on a fresh one");
                    fresh = true;
                }
                Err(e) => return Err(e.error),
            }
        }
    }

    /// One scan on one server: `Err` for failures that say something about the server.
    async fn scan_on(
        &self,
        s: &ServerState,
        src: &mut Source<'_>,
        size: Option<u64>,
        meta: &ScanMeta,
        report: &mut ScanReport,
    ) -> Result<Verdict, Error> {
        let cfg = &self.inner.cfg;
        let method = cfg.method;
        let options = if cfg.use_options {
            let o = self.server_options(s).await?;
            if !o.methods.is_empty() && !o.supports(method) {
                return Err(Error::new(
                    ErrorKind::Status(405),
                    format!(
                        "service {} does not offer {method} (Methods: {})",
                        s.uri.service(),
                        o.methods
                            .iter()
                            .map(|m| m.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Some(o)
        } else {
            None
        };
        let ext = meta
            .filename
            .as_deref()
            .and_then(|f| Path::new(f).extension())
            .map(|e| e.to_string_lossy().into_owned());
        let transfer = match (&options, &ext) {
            (Some(o), Some(ext)) => o.transfer_for(ext),
            _ => icap_proto::options::Transfer::Preview,
        };
        if transfer == icap_proto::options::Transfer::Ignore {
            return Ok(Verdict::NotScanned {
                reason: NotScannedReason::IgnoredByServer {
                    extension: ext.unwrap_or_default(),
                },
            });
        }
        let preview = match cfg.preview {
            PreviewMode::Off => None,
            PreviewMode::Fixed(n) => Some(n),
            PreviewMode::Auto => match transfer {
                icap_proto::options::Transfer::Complete => None,
                _ => options.as_ref().and_then(|o| o.preview),
            },
        };
        report.preview = preview;
        let head = self.request_head(s, meta, size, preview)?;
        let mut fresh = false;
        loop {
            let mut co = s
                .checkout(
                    &cfg.timeouts,
                    cfg.limits,
                    cfg.wire_log,
                    cfg.pool_idle_timeout,
                    fresh,
                )
                .await?;
            // A declared size is the body: exactly that many bytes, checked by the sender.
            let mut file;
            let mut reader;
            let source = match &mut *src {
                Source::Bytes(b) => BodySource::Memory(b.clone()),
                Source::Path(p, stamp) => {
                    file = open_checked(p, *stamp).await?;
                    BodySource::File(&mut file, *stamp)
                }
                Source::Reader(r) => {
                    reader = r.take().ok_or_else(|| {
                        Error::new(ErrorKind::Io, "the reader was already consumed")
                    })?;
                    BodySource::Reader(&mut reader)
                }
            };
            let max_size = if size.is_none() { cfg.max_size } else { None };
            let out = Outgoing {
                method,
                allow_204: cfg.allow_204,
                head: head.clone(),
                body: Some(BodyPlan {
                    source,
                    preview,
                    chunk_size: cfg.chunk_size,
                    declared: size,
                    max_size,
                    digest: cfg.digest,
                }),
                max_answer_body: cfg.max_adapted_body,
            };
            match co.conn.exchange(out, &cfg.timeouts).await {
                Ok(ex) => {
                    let reusable = ex.reusable;
                    let v = self.finish(s, &ex, report);
                    if reusable {
                        s.checkin(co);
                    }
                    return v;
                }
                Err(e) if e.too_large => {
                    return Ok(Verdict::NotScanned {
                        reason: NotScannedReason::TooLarge {
                            size: e.source_read,
                            limit: cfg.max_size.unwrap_or(0),
                        },
                    });
                }
                Err(e) if co.reused && !fresh && is_stale(&e) && src.rewindable() => {
                    tracing::debug!(server = %s.url, "pooled connection was stale; retrying on a fresh one");
                    report.attempts += 1;
                    fresh = true;
                }
                Err(e) => return Err(e.error),
            }
        }
    }

    fn finish(
        &self,
        s: &ServerState,
        ex: &Exchange,
        report: &mut ScanReport,
    ) -> Result<Verdict, Error> {
        let method = self.inner.cfg.method;
        report.status = Some(ex.head.status.as_u16());
        report.istag = ex
            .head
            .istag()
            .map(|t| String::from_utf8_lossy(t).into_owned());
        report.early_response = ex.early;
        report.sent = ex.sent;
        if ex.body_complete {
            report.size = ex.sent;
        } else {
            report.size = report.size.max(ex.sent);
        }
        report.sha256 = ex.sent_sha256.map(|d| hex(&d));
        s.note_istag(ex.head.istag());
        tracing::debug!(
            status = ex.head.status.as_u16(),
            sent = ex.sent,
            received = ex.body_len,
            continued = ex.continued,
            ieof = ex.ieof,
            early = ex.early,
            reusable = ex.reusable,
            "transaction done"
        );
        match verdict::from_exchange(method, ex) {
            Verdict::Failed { error } => Err(error),
            v => Ok(v),
        }
    }

    fn request_head(
        &self,
        s: &ServerState,
        meta: &ScanMeta,
        size: Option<u64>,
        preview: Option<u64>,
    ) -> Result<Bytes, Error> {
        let cfg = &self.inner.cfg;
        let mut head = RequestHead::new(cfg.method, s.uri.clone());
        let h = &mut head.headers;
        push_header(h, "Host", &host_header(&s.uri))?;
        push_header(h, "User-Agent", USER_AGENT)?;
        if cfg.allow_204 {
            push_header(h, "Allow", "204")?;
        }
        if let Some(p) = preview {
            h.push(HeaderName::from_static("Preview"), HeaderValue::from_u64(p));
        }
        if cfg.identity.enabled {
            if let Some(u) = &meta.uploader {
                cfg.identity.apply(u, h)?;
            }
            for (n, v) in &self.inner.static_headers {
                h.push(n.clone(), v.clone());
            }
            for (n, v) in &meta.headers {
                push_header(h, n, v)?;
            }
        }
        let target = format!(
            "/{}",
            percent_encode(meta.filename.as_deref().unwrap_or("upload"))
        );
        let ctype = meta
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let bad = |e: icap_proto::EncodeError| Error::config(format!("embedded HTTP head: {e}"));
        if cfg.method == Method::Reqmod {
            let mut req = HttpRequestHead::new("POST", &target).map_err(bad)?;
            req.headers
                .append("Host", cfg.http_host.as_str())
                .map_err(bad)?;
            req.headers.append("Content-Type", ctype).map_err(bad)?;
            if let Some(n) = size {
                req.headers.push(
                    HeaderName::from_static("Content-Length"),
                    HeaderValue::from_u64(n),
                );
            }
            head.http_request = Some(req);
            head.body = Some(BodyKind::Request);
        } else {
            let mut req = HttpRequestHead::new("GET", &target).map_err(bad)?;
            req.headers
                .append("Host", cfg.http_host.as_str())
                .map_err(bad)?;
            let mut res = HttpResponseHead::new(200, "OK").map_err(bad)?;
            res.headers.append("Content-Type", ctype).map_err(bad)?;
            if let Some(n) = size {
                res.headers.push(
                    HeaderName::from_static("Content-Length"),
                    HeaderValue::from_u64(n),
                );
            }
            head.http_request = Some(req);
            head.http_response = Some(res);
            head.body = Some(BodyKind::Response);
        }
        let mut out = BytesMut::with_capacity(512);
        head.encode(&mut out)
            .map_err(|e| Error::config(format!("ICAP request: {e}")))?;
        Ok(out.freeze())
    }

    /// Sends `OPTIONS` to server `i` (bypassing the cache) and returns the answer with
    /// timings. The building block of [`Client::test`](crate::Client::test).
    pub(crate) async fn options_raw(
        &self,
        i: usize,
    ) -> Result<(OptionsResponse, OptionsTiming), Error> {
        let s = &self.inner.servers[i];
        let r = self.fetch_options(s).await;
        if let Ok((o, _)) = &r {
            s.store_options(o.clone(), self.inner.cfg.options_ttl);
            s.record_success();
        }
        r
    }
}

const USER_AGENT: &str = concat!("icap-client/", env!("CARGO_PKG_VERSION"));

/// The pause before retry number `n` (0-based): `base * 2^n`, capped at `max`, with up
/// to half of it added at random, so that clients retrying together spread out.
fn backoff((base, max): (Duration, Duration), n: u32) -> Duration {
    let exp = base
        .checked_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let jitter_ns = u64::try_from(exp.as_nanos() / 2).unwrap_or(u64::MAX);
    let jitter = if jitter_ns == 0 {
        0
    } else {
        random_u64() % jitter_ns
    };
    exp.saturating_add(Duration::from_nanos(jitter))
}

/// A random number for jitter; not for cryptography. `RandomState` is seeded per process
/// and per instance by the standard library, which is all jitter needs.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(JITTER_SEQ.fetch_add(1, Ordering::Relaxed) as u64);
    h.finish()
}

static JITTER_SEQ: AtomicUsize = AtomicUsize::new(0);

fn is_stale(e: &ExchangeError) -> bool {
    e.error.is_closed() && !e.response_started && !e.too_large
}

fn host_header(u: &Uri) -> String {
    let host = if u.host().contains(':') {
        format!("[{}]", u.host())
    } else {
        u.host().to_owned()
    };
    match u.explicit_port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `/`.
fn percent_encode(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Client {
    pub(crate) fn cfg_method(&self) -> Method {
        self.inner.cfg.method
    }
}
