//! [`MockServerBuilder`]: services, TLS, timeouts, limits, proxy, record and replay, and
//! mocks mounted before the start; [`MockServerBuilder::start`] puts the state, the
//! listener, the admin API and shutdown together into a [`MockServer`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use icap_proto::Limits;

use crate::config::{FileSettings, TlsSettings};
use crate::listener::{Listener, accept_loop};
use crate::mock::Mock;
use crate::proxy::upstream::Upstream;
use crate::record::RecordSettings;
use crate::replay::Replay;
use crate::service::ServiceConfig;
use crate::shutdown::Shutdown;
use crate::state::{Settings, State};
use crate::tls;

use crate::server::MockServer;

/// Builds a [`MockServer`].
#[derive(Debug)]
pub struct MockServerBuilder {
    listen: SocketAddr,
    services: Vec<ServiceConfig>,
    tls: TlsSetting,
    client_ca: Option<String>,
    settings: Settings,
    mocks: Vec<Mock>,
    /// The admin API's address and body limit.
    #[cfg(feature = "admin")]
    admin: Option<(SocketAddr, usize)>,
}

#[derive(Debug, Clone)]
enum TlsSetting {
    None,
    Generated,
    Pem { cert: String, key: String },
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        MockServerBuilder {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            services: Vec::new(),
            tls: TlsSetting::None,
            client_ca: None,
            settings: Settings::default(),
            mocks: Vec::new(),
            #[cfg(feature = "admin")]
            admin: None,
        }
    }
}

impl MockServerBuilder {
    /// Proxy mode: requests to services without their own upstream, and that no rule
    /// answers, are forwarded to `upstream` (see [`crate::proxy`]).
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.settings.upstream = Some(upstream);
        self
    }

    /// Records every proxied exchange (see [`crate::record`]).
    pub fn record(mut self, settings: RecordSettings) -> Self {
        self.settings.record = Some(settings);
        self
    }

    /// Answers from a recording instead of the built-in dialects (see [`crate::replay`]).
    pub fn replay(mut self, replay: Replay) -> Self {
        self.settings.replay = Some(Arc::new(replay));
        self
    }

    /// Listens on `addr` instead of `127.0.0.1:0`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Adds a service (replacing one of the same name). Without any, the server has the
    /// default `avscan` service ([`ServiceConfig::new`]).
    pub fn service(mut self, service: ServiceConfig) -> Self {
        self.services.retain(|s| s.name != service.name);
        self.services.push(service);
        self
    }

    /// Serves `icaps://` with a certificate for `127.0.0.1` and `localhost`, signed by a
    /// CA generated at start ([`MockServer::ca_pem`]). Feature `tls-generate`.
    #[cfg(feature = "tls-generate")]
    pub fn tls_generated(mut self) -> Self {
        self.tls = TlsSetting::Generated;
        self
    }

    /// Serves `icaps://` with this PEM certificate chain and private key.
    pub fn tls_pem(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.tls = TlsSetting::Pem {
            cert: cert_pem.to_owned(),
            key: key_pem.to_owned(),
        };
        self
    }

    /// Requires client certificates signed by this CA (PEM) on `icaps://` (mTLS).
    pub fn client_auth_ca_pem(mut self, pem: &str) -> Self {
        self.client_ca = Some(pem.to_owned());
        self
    }

    /// The whole-head deadline: time allowed from the first byte of a request to the end of
    /// its head, embedded HTTP heads included (default 10 s, [`DEFAULT_HEAD_DEADLINE`](crate::DEFAULT_HEAD_DEADLINE)).
    /// A client that sends its head slower than that, even a byte at a time, gets
    /// `408 Request Timeout` and the connection closes. Also bounds the TLS handshake.
    /// Any value is accepted (`Duration::MAX` means no deadline).
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.settings.header_read_timeout = d;
        self
    }

    /// Time a connection may stay silent between requests or inside a body (default 120 s).
    /// Silence inside a body gets `408` and a close; between requests, just a close. Any
    /// value is accepted (`Duration::MAX` means no timeout).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.settings.idle_timeout = d;
        self
    }

    /// Decoder limits (head size, header count, preview, body, ...).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// How many body bytes [`Request::body`](crate::Request::body) keeps (default 64 KiB).
    pub fn body_capture(mut self, bytes: usize) -> Self {
        self.settings.body_capture = bytes;
        self
    }

    /// Whether the journal records the SHA-256 of each body (on by default). Hashing is
    /// most of the mock's work on large bodies; turn it off to measure a client's
    /// throughput rather than the mock's. SHA-256 signatures still hash their bodies, a
    /// recording proxy still hashes (its metadata carries the digest), and a replay
    /// always does (it matches recordings by their body's digest).
    pub fn body_digest(mut self, on: bool) -> Self {
        self.settings.body_digest = on;
        self
    }

    /// Turns the per-request triggers (body markers, file-name suffixes) on or off (on by
    /// default).
    pub fn triggers(mut self, on: bool) -> Self {
        self.settings.triggers = on;
        self
    }

    /// The delay of the `.slow` file-name trigger (default 5 s).
    pub fn trigger_delay(mut self, d: Duration) -> Self {
        self.settings.trigger_delay = d;
        self
    }

    /// How many transactions the journal keeps (oldest dropped first; default 10 000).
    ///
    /// 0 turns the journal off: nothing is recorded, no copy of a request's head is made,
    /// and [`MockServer::journal`](crate::MockServer::journal) stays empty. Rules, their
    /// expectations and [`verify`](crate::MockServer::verify) work as before (they count on
    /// their own). This is for load tests, where a journal only costs time.
    pub fn journal_limit(mut self, n: usize) -> Self {
        self.settings.journal_limit = n;
        self
    }

    /// How many bytes the journal's entries may hold together, as counted by
    /// [`Transaction::held_bytes`](crate::Transaction::held_bytes) (oldest dropped first; default 8 MiB). The newest entry
    /// is always kept, so the journal holds at most this or one entry, whichever is larger
    /// (an entry is bounded by the decoder [`limits`](Self::limits) on heads).
    pub fn journal_bytes(mut self, bytes: usize) -> Self {
        self.settings.journal_bytes = bytes;
        self
    }

    /// Takes what a configuration file sets ([`ConfigFile::settings`](crate::config::ConfigFile::settings)): its services
    /// and rules are added, its other settings replace the builder's where it gives them.
    pub fn config(mut self, file: FileSettings) -> Self {
        for s in file.services {
            self = self.service(s);
        }
        self.mocks.extend(file.mocks);
        let st = &mut self.settings;
        if let Some(d) = file.header_read_timeout {
            st.header_read_timeout = d;
        }
        if let Some(d) = file.idle_timeout {
            st.idle_timeout = d;
        }
        if let Some(n) = file.body_capture {
            st.body_capture = n;
        }
        if let Some(on) = file.triggers {
            st.triggers = on;
        }
        if let Some(d) = file.trigger_delay {
            st.trigger_delay = d;
        }
        if let Some(n) = file.journal_limit {
            st.journal_limit = n;
        }
        if let Some(n) = file.journal_bytes {
            st.journal_bytes = n;
        }
        if let Some(on) = file.body_digest {
            st.body_digest = on;
        }
        st.limits = file.limits;
        match file.tls {
            #[cfg(feature = "tls-generate")]
            Some(TlsSettings::Generated) => self = self.tls_generated(),
            #[cfg(not(feature = "tls-generate"))]
            Some(TlsSettings::Generated) => self.tls = TlsSetting::Generated,
            Some(TlsSettings::Pem { cert, key }) => self = self.tls_pem(&cert, &key),
            None => {}
        }
        if let Some(ca) = file.client_ca_pem {
            self.client_ca = Some(ca);
        }
        self
    }

    /// Mounts a mock at start.
    pub fn mock(mut self, mock: Mock) -> Self {
        self.mocks.push(mock);
        self
    }

    /// Serves the HTTP admin API on `addr` ([`MockServer::admin_addr`]). Feature `admin`.
    #[cfg(feature = "admin")]
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        let limit = self
            .admin
            .map_or(crate::admin::DEFAULT_ADMIN_BODY_LIMIT, |(_, l)| l);
        self.admin = Some((addr, limit));
        self
    }

    /// The largest request body the admin API reads (default
    /// [`DEFAULT_ADMIN_BODY_LIMIT`](crate::DEFAULT_ADMIN_BODY_LIMIT), 1 MiB); larger ones
    /// get `413`. Takes effect with [`MockServerBuilder::admin`].
    #[cfg(feature = "admin")]
    pub fn admin_body_limit(mut self, bytes: usize) -> Self {
        let addr = self
            .admin
            .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |(a, _)| a);
        self.admin = Some((addr, bytes));
        self
    }

    /// Starts the server.
    ///
    /// # Panics
    /// If it cannot listen or set up TLS; [`MockServerBuilder::try_start`] returns the error.
    pub async fn start(self) -> MockServer {
        self.try_start()
            .await
            .expect("icap-mock-server failed to start")
    }

    /// Starts the server, or says why it cannot.
    // Without the admin API nothing here awaits; async stays for the one signature.
    #[cfg_attr(not(feature = "admin"), allow(clippy::unused_async))]
    pub async fn try_start(mut self) -> Result<MockServer, StartError> {
        if self.services.is_empty() {
            self.services.push(ServiceConfig::new("avscan"));
        }
        self.settings.services = self.services.iter().cloned().map(Arc::new).collect();
        let (tls, ca_pem) = match &self.tls {
            TlsSetting::None => (None, None),
            #[cfg(not(feature = "tls-generate"))]
            TlsSetting::Generated => return Err(StartError::NoTlsGenerate),
            #[cfg(feature = "tls-generate")]
            TlsSetting::Generated => {
                let g = tls::generate(&[])?;
                let cfg = tls::server_config(&g.cert_pem, &g.key_pem, self.client_ca.as_deref())?;
                (Some(tokio_rustls::TlsAcceptor::from(cfg)), Some(g.ca_pem))
            }
            TlsSetting::Pem { cert, key } => {
                let cfg = tls::server_config(cert, key, self.client_ca.as_deref())?;
                (Some(tokio_rustls::TlsAcceptor::from(cfg)), None)
            }
        };
        let shutdown = Arc::new(Shutdown::default());
        let listener = Arc::new(Listener::bind(self.listen, shutdown.clone())?);
        let addr = listener.addr();
        let istag_base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let state = Arc::new(State::new(self.settings, istag_base));
        for m in self.mocks {
            state.add_rule(m);
        }
        #[cfg(feature = "admin")]
        let admin = match self.admin {
            Some((a, limit)) => {
                Some(crate::admin::start(state.clone(), listener.clone(), a, limit).await?)
            }
            None => None,
        };
        let is_tls = tls.is_some();
        let task = tokio::spawn(accept_loop(
            listener.clone(),
            state.clone(),
            shutdown.clone(),
            tls,
        ));
        tracing::info!(%addr, tls = is_tls, "icap-mock-server listening");
        Ok(MockServer {
            state,
            listener,
            shutdown,
            is_tls,
            addr,
            ca_pem,
            task: Some(task),
            #[cfg(feature = "admin")]
            admin,
        })
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Listening failed.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// TLS certificate generation failed.
    #[cfg(feature = "tls-generate")]
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A generated certificate was asked for (a config file's `tls.generated`), but the
    /// crate was built without the `tls-generate` feature.
    #[cfg(not(feature = "tls-generate"))]
    #[error("tls.generated needs the tls-generate feature of icap-mock-server")]
    NoTlsGenerate,
}

impl MockServer {
    /// Starts a server with the defaults on `127.0.0.1:0`: service `avscan` (RESPMOD and
    /// REQMOD), EICAR detection, the c-icap dialect.
    pub async fn start() -> Self {
        MockServerBuilder::default().start().await
    }

    /// A builder for services, TLS, timeouts, limits and mocks.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }
}
