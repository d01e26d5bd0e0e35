//! [`ClientBuilder`]: the setters, and `build`, which checks the settings, makes the
//! static headers and TLS configuration once and the per-server state, and hands them to
//! the client.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use icap_proto::{HeaderValue, Headers, Limits, Method, OptionsRules, Scheme, Uri};

use super::cfg::ClientConfig;
use super::heads::push_header;
use super::shared::Client;
use crate::config::{HealthConfig, PreviewMode, Roots, Strategy, Timeouts, TlsOptions};
use crate::error::{Error, escaped};
use crate::identity::IdentityHeaders;
use crate::server::ServerState;
use crate::transport::Endpoint;

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
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientBuilder {
    cfg: ClientConfig,
    /// The first invalid setting, reported by `build`.
    error: Option<Error>,
}

impl ClientBuilder {
    fn fail(mut self, e: Error) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// Adds a server by URL: `icap://host[:port]/service` or `icaps://...` (Secure ICAP).
    /// Several servers are used per [`ClientBuilder::strategy`].
    pub fn server(self, url: &str) -> Self {
        if !url.contains("://") {
            return self.fail(Error::config(format!(
                "server URL {}: missing icap:// or icaps:// (icap://host:port/SERVICE)",
                escaped(url)
            )));
        }
        match url.parse::<Uri>() {
            Ok(u) if !u.service().is_empty() => {
                let mut s = self;
                s.cfg.servers.push(u);
                s
            }
            Ok(_) => self.fail(Error::config(format!(
                "server URL {url:?} names no service (icap://host:port/SERVICE)"
            ))),
            Err(e) => {
                self.fail(Error::config(format!("invalid server URL {url:?}")).with_source(e))
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
                s.cfg.servers.push(u);
                s
            }
            Err(e) => self.fail(
                Error::config(format!("invalid server {host}:{port:?}/{service}")).with_source(e),
            ),
        }
    }

    /// Ordered failover (default) or round-robin over several servers.
    pub fn strategy(mut self, s: Strategy) -> Self {
        self.cfg.strategy = s;
        self
    }
    /// The local address to connect from ("Server Local IP"); default: any.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.cfg.bind = (!ip.is_unspecified()).then_some(ip);
        self
    }
    /// All TLS settings at once.
    pub fn tls(mut self, t: TlsOptions) -> Self {
        self.cfg.tls = t;
        self
    }
    /// Trust only the CAs in this PEM file.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cfg.tls.roots = Roots::CaFile(path.into());
        self
    }
    /// Trust only the CAs in this PEM string.
    pub fn tls_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.cfg.tls.roots = Roots::CaPem(pem.into());
        self
    }
    /// The TLS server name to send and verify instead of the URL's host.
    pub fn tls_sni(mut self, name: impl Into<String>) -> Self {
        self.cfg.tls.sni = Some(name.into());
        self
    }
    /// A client certificate and key (PEM files) for mutual TLS.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cfg.tls.client_cert = Some((cert.into(), key.into()));
        self
    }
    /// A client certificate and key (PEM strings) for mutual TLS.
    pub fn tls_client_cert_pem(mut self, cert: impl Into<String>, key: impl Into<String>) -> Self {
        self.cfg.tls.client_cert_pem = Some((cert.into(), key.into()));
        self
    }
    /// Accepts any server certificate. Logs a warning on every connection.
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.cfg.tls.danger_accept_invalid_certs = yes;
        self
    }
    /// All timeouts at once.
    pub fn timeouts(mut self, t: Timeouts) -> Self {
        // Fields are public: clamp here too, so no deadline can overflow.
        self.cfg.timeouts = t.clamped();
        self
    }
    /// Timeout for opening a connection.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.cfg.timeouts.connect = d;
        self
    }
    /// Files larger than this are not sent: `NotScanned { TooLarge }`. `None`: no limit.
    /// Default 25 MiB.
    pub fn max_size(mut self, n: Option<u64>) -> Self {
        self.cfg.max_size = n;
        self
    }
    /// `RESPMOD` (default) or `REQMOD`.
    pub fn method(mut self, m: Method) -> Self {
        self.cfg.method = m;
        self
    }
    /// How the preview size is chosen.
    pub fn preview(mut self, p: PreviewMode) -> Self {
        self.cfg.preview = p;
        self
    }
    /// Whether to ask the service with `OPTIONS` before scanning (default true). Without
    /// it, no preview is sent unless [`PreviewMode::Fixed`].
    pub fn use_options(mut self, yes: bool) -> Self {
        self.cfg.use_options = yes;
        self
    }
    /// How long an `OPTIONS` answer without `Options-TTL` stays valid (default 300 s).
    pub fn options_ttl(mut self, d: Duration) -> Self {
        self.cfg.options_ttl = d;
        self
    }
    /// Which identity headers to send for the uploader, or none.
    pub fn identity_headers(mut self, h: IdentityHeaders) -> Self {
        self.cfg.identity = h;
        self
    }
    /// An ICAP header sent with every scan (subject to the identity switch). Values with
    /// CR or LF are refused by [`ClientBuilder::build`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cfg.headers.push((name.into(), value.into()));
        self
    }
    /// Most connections per server (default 32); the server's `Max-Connections` lowers it.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.cfg.max_connections = n;
        self
    }
    /// How long an idle pooled connection is kept (default 30 s).
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.cfg.pool_idle_timeout = d;
        self
    }
    /// When a server counts as down and when it is retried.
    pub fn health(mut self, h: HealthConfig) -> Self {
        self.cfg.health = h;
        self
    }
    /// Extra attempts after a failed scan (default 0: only a stale pooled connection and
    /// connection failures that a failover server can take are retried).
    pub fn retries(mut self, n: u32) -> Self {
        self.cfg.retries = n;
        self
    }
    /// Logs the bytes on the wire at target `icap_client::wire` (DEBUG): every head and at
    /// most `body_cap` body bytes per message. Off by default.
    pub fn wire_log(mut self, body_cap: Option<usize>) -> Self {
        self.cfg.wire_log = body_cap;
        self
    }
    /// Compute the SHA-256 of each body (default true; the audit log and the "is this
    /// `200` an unchanged echo" check use it). Turned off, a server that answers a clean
    /// file with a `200` echo instead of `204` gets `Verdict::Modified`, never `Clean`,
    /// since the echo can no longer be proven unchanged.
    pub fn body_digest(mut self, yes: bool) -> Self {
        self.cfg.digest = yes;
        self
    }
    /// Decoder limits for responses.
    pub fn limits(mut self, l: Limits) -> Self {
        self.cfg.limits = l;
        self
    }
    /// Body bytes per chunk on the wire (default 64 KiB). A reader is read a chunk at a
    /// time; memory and files are sent [`write_batch`](Self::write_batch) at a time.
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.cfg.chunk_size = n.max(1);
        self
    }
    /// Body bytes gathered into one write (default 1 MiB,
    /// [`DEFAULT_WRITE_BATCH`](crate::DEFAULT_WRITE_BATCH)). The body goes out in
    /// `chunk_size` chunks, as many of them per vectored write as fit in this many bytes.
    /// On loopback, 64 KiB writes cost the kernel so much more per byte that a 64 MiB scan
    /// from memory ran at about two thirds of the speed, and one from a file at about a
    /// quarter (BENCHMARKS.md, "64 MiB").
    /// - Memory ([`Client::scan_bytes`](crate::Client::scan_bytes)) is sliced without a copy.
    /// - A file ([`Client::scan_file`](crate::Client::scan_file)) is read this many bytes at
    ///   a time on tokio's blocking pool, the next read running while the last one's bytes
    ///   are written: a file scan holds twice this many bytes of the file.
    /// - A reader ([`Client::scan_reader`](crate::Client::scan_reader)) is read a chunk at
    ///   a time, and its chunks are gathered only while it has bytes ready: a slow upload's
    ///   bytes go out as they come.
    ///
    /// `0`: one chunk per read and per write.
    pub fn write_batch(mut self, n: usize) -> Self {
        self.cfg.write_batch = n;
        self
    }
    /// The `Host` of the embedded HTTP request (default `upload.local`).
    pub fn http_host(mut self, h: impl Into<String>) -> Self {
        self.cfg.http_host = bytes::Bytes::from(h.into());
        self
    }

    /// Whether requests carry `Allow: 204` (default true). Without it, RFC 3507 lets the
    /// server answer `204` only to a preview; outside a preview a clean file then comes back
    /// as a `200` echo (checked byte for byte against what was sent, see
    /// [`body_digest`](Self::body_digest)), and a `204` there is a protocol error.
    pub fn allow_204(mut self, yes: bool) -> Self {
        self.cfg.allow_204 = yes;
        self
    }
    /// Whether requests carry `Allow: 206` (default false). This client does not implement
    /// partial answers (`206` with `use-original-body`): `true` makes [`build`](Self::build)
    /// fail with a configuration error rather than send a promise it cannot keep. A `206`
    /// received without `Allow: 206` is a protocol error.
    pub fn allow_206(mut self, yes: bool) -> Self {
        self.cfg.allow_206 = yes;
        self
    }
    /// The most body bytes read back from a `200` answer (the adapted or echoed file),
    /// default [`DEFAULT_MAX_ADAPTED_BODY`](crate::DEFAULT_MAX_ADAPTED_BODY). Past it the scan fails with
    /// [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) and the connection is closed. `None`: no cap (the scan
    /// deadline still bounds it).
    pub fn max_adapted_body(mut self, n: Option<u64>) -> Self {
        self.cfg.max_adapted_body = n;
        self
    }
    /// Back-off between retries (see [`retries`](Self::retries)): the first waits about
    /// `base`, each next one twice as long, capped at `max`, each with random jitter of up
    /// to half its length (default 100 ms, 2 s).
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.cfg.retry_backoff = (base, max.max(base));
        self
    }

    /// How `OPTIONS` answers are checked (icap-proto's [`OptionsRules`]): an answer without
    /// `ISTag` makes the service unusable unless `require_istag` is off (the lenient switch),
    /// and the server's `Preview`, `Options-TTL` and `Max-Connections` are clamped or ignored
    /// past their maxima (64 KiB, 30 days, 100 000), with a warning. The `max_preview` also
    /// bounds a fixed [`preview`](Self::preview) size.
    pub fn options_rules(mut self, rules: OptionsRules) -> Self {
        self.cfg.options_rules = rules;
        self
    }

    /// Builds the client. Needs a tokio runtime only when scanning.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let cfg = self.cfg;
        if cfg.servers.is_empty() {
            return Err(Error::config("no ICAP server configured"));
        }
        if let PreviewMode::Fixed(n) = cfg.preview
            && n > cfg.options_rules.max_preview
        {
            return Err(Error::config(format!(
                "preview {n} is larger than max_preview ({}); a preview is held in memory",
                cfg.options_rules.max_preview
            )));
        }
        if cfg.allow_206 {
            return Err(Error::config(
                "allow_206: this client does not implement 206 partial answers (use-original-body); \
                 leave it off",
            ));
        }
        cfg.identity.validate()?;
        let mut static_headers = Headers::new();
        for (n, v) in &cfg.headers {
            push_header(&mut static_headers, n, v)?;
        }
        HeaderValue::new(cfg.http_host.clone()).map_err(|_| Error::config("invalid HTTP host"))?;
        let tls = if cfg.servers.iter().any(|u| u.scheme() == Scheme::Icaps) {
            if cfg.tls.danger_accept_invalid_certs {
                // Under the TLS module's target: this warning must not be filtered with
                // the client's routine ones.
                tracing::warn!(target: "icap_client::tls",
                    "danger_accept_invalid_certs: TLS certificates of ICAP servers will NOT be verified"
                );
            }
            Some(crate::tls::client_config(&cfg.tls)?)
        } else {
            None
        };
        let servers = cfg
            .servers
            .iter()
            .map(|u| -> Result<_, Error> {
                let endpoint = Endpoint {
                    host: u.host().to_owned(),
                    port: u.port(),
                    tls: (u.scheme() == Scheme::Icaps).then(|| {
                        (
                            tls.clone().expect("TLS config built for icaps servers"),
                            cfg.tls.sni.clone(),
                        )
                    }),
                    bind: cfg.bind,
                };
                let start = super::heads::scan_head_start(&cfg, u)?;
                Ok(Arc::new(ServerState::new(
                    u.clone(),
                    start,
                    endpoint,
                    cfg.max_connections,
                )))
            })
            .collect::<Result<_, _>>()?;
        Ok(Client::from_parts(cfg, static_headers, servers))
    }
}

impl Client {
    /// A builder with defaults; only a server must be added.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}
