//! The server: listener, shared state, rules, journal, outage and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use icap_proto::Limits;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::connection::Connection;
use crate::journal::{DEFAULT_JOURNAL_BYTES, DEFAULT_JOURNAL_LIMIT, Journal, Transaction};
use crate::mock::{Mock, Rule};
use crate::scan::{EICAR, PatternSet};
use crate::service::{ServiceConfig, Signature};
use crate::tls;

/// Body markers that select a verdict or fault per request (see the README's triggers).
pub(crate) const FAULT_MARKER: &[u8] = b"ICAP-MOCK-FAULT:";
/// See [`FAULT_MARKER`].
pub(crate) const VERDICT_MARKER: &[u8] = b"ICAP-MOCK-VERDICT:";

/// Default whole-head deadline ([`MockServerBuilder::header_read_timeout`]).
pub const DEFAULT_HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// Whether and how the server is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outage {
    /// Normal service.
    #[default]
    None,
    /// Stop listening: connections are refused until the outage ends.
    Refuse,
    /// Accept connections and close them at once, before reading anything.
    AcceptAndClose,
}

/// Settings shared by all connections.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) services: Vec<ServiceConfig>,
    pub(crate) limits: Limits,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_capture: usize,
    pub(crate) triggers: bool,
    pub(crate) journal_limit: usize,
    pub(crate) journal_bytes: usize,
    pub(crate) trigger_delay: Duration,
    pub(crate) body_digest: bool,
    /// The upstream of services that name none (proxy mode).
    pub(crate) upstream: Option<crate::proxy::Upstream>,
    /// Where proxied exchanges are recorded.
    pub(crate) record: Option<crate::record::RecordSettings>,
    /// The recording answers are replayed from.
    pub(crate) replay: Option<Arc<crate::replay::Replay>>,
}

/// Rules and the patterns they need, replaced as a whole when a rule is added or removed.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// Rules in precedence order: most recently mounted first.
    pub(crate) rules: Arc<Vec<Arc<Rule>>>,
    pub(crate) patterns: PatternSet,
    /// The plain patterns in `patterns` order (for `Request::found`).
    pub(crate) plain: Vec<Vec<u8>>,
    pub(crate) eicar: usize,
    pub(crate) fault_marker: usize,
    pub(crate) verdict_marker: usize,
    pub(crate) generation: u64,
}

impl Compiled {
    fn build(settings: &Settings, rules: Vec<Arc<Rule>>, generation: u64) -> Self {
        let mut plain: Vec<Vec<u8>> = vec![EICAR.to_vec()];
        let mut add = |p: Vec<u8>| {
            if !p.is_empty() && !plain.contains(&p) {
                plain.push(p);
            }
        };
        for svc in &settings.services {
            for s in &svc.signatures {
                if let Signature::Bytes { pattern, .. } = s {
                    add(pattern.as_bytes().to_vec());
                }
            }
        }
        for r in &rules {
            for m in &r.mock.matchers {
                for p in m.body_patterns() {
                    add(p);
                }
            }
        }
        let capture = [FAULT_MARKER.to_vec(), VERDICT_MARKER.to_vec()];
        let patterns = PatternSet::new(&plain, &capture);
        Compiled {
            eicar: patterns
                .index_of(EICAR)
                .expect("EICAR is always in the set"),
            fault_marker: patterns
                .capture_index_of(FAULT_MARKER)
                .expect("marker is always in the set"),
            verdict_marker: patterns
                .capture_index_of(VERDICT_MARKER)
                .expect("marker is always in the set"),
            rules: Arc::new(rules),
            patterns,
            plain,
            generation,
        }
    }
}

/// State shared by the accept loop, the connections, the admin API and the handle.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    compiled: Mutex<Arc<Compiled>>,
    next_rule: AtomicU64,
    // A ring: the oldest entries go in O(1) once a budget is reached.
    journal: Mutex<Journal>,
    next_tx: AtomicU64,
    per_service: Mutex<HashMap<String, u32>>,
    listener: Mutex<Option<TcpListener>>,
    listener_changed: Notify,
    addr: SocketAddr,
    outage: AtomicU8,
    shutdown: AtomicBool,
    pub(crate) shutdown_notify: Notify,
    tls: Option<tokio_rustls::TlsAcceptor>,
    istag_base: u64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("outage", &self.outage())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (plain pushes and
    // swaps), so a poisoned lock is used as is.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn snapshot(&self) -> Arc<Compiled> {
        lock(&self.compiled).clone()
    }

    pub(crate) fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.settings.services.iter().find(|s| s.name == name)
    }

    /// The `ISTag` value (without quotes); it changes whenever the rules change.
    pub(crate) fn istag(&self) -> String {
        let generation = self.snapshot().generation;
        format!("mock-{:x}-{generation}", self.istag_base)
    }

    pub(crate) fn add_rule(&self, mock: Mock) -> u64 {
        let id = self.next_rule.fetch_add(1, Ordering::Relaxed);
        let rule = Arc::new(Rule::new(id, mock));
        let mut c = lock(&self.compiled);
        let mut rules = vec![rule];
        rules.extend(c.rules.iter().cloned());
        *c = Arc::new(Compiled::build(
            &self.settings,
            rules,
            c.generation.wrapping_add(1),
        ));
        id
    }

    /// Removes the rules `keep` rejects; returns how many went.
    pub(crate) fn remove_rules(&self, keep: impl Fn(&Rule) -> bool) -> usize {
        let mut c = lock(&self.compiled);
        let before = c.rules.len();
        let rules: Vec<Arc<Rule>> = c.rules.iter().filter(|r| keep(r)).cloned().collect();
        let removed = before - rules.len();
        if removed > 0 {
            *c = Arc::new(Compiled::build(
                &self.settings,
                rules,
                c.generation.wrapping_add(1),
            ));
        }
        removed
    }

    pub(crate) fn next_tx_id(&self) -> u64 {
        self.next_tx.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn record(&self, tx: Transaction) {
        lock(&self.journal).push(tx);
    }

    pub(crate) fn journal(&self) -> Vec<Transaction> {
        lock(&self.journal).to_vec()
    }

    pub(crate) fn journal_bytes(&self) -> usize {
        lock(&self.journal).bytes()
    }

    pub(crate) fn clear_journal(&self) {
        lock(&self.journal).clear();
    }

    /// Counts a connection against its service's `Max-Connections`; false when full.
    pub(crate) fn attach(&self, svc: &ServiceConfig) -> bool {
        let mut m = lock(&self.per_service);
        let n = m.entry(svc.name.clone()).or_insert(0);
        if svc.max_connections.is_some_and(|max| *n >= max) {
            return false;
        }
        *n += 1;
        true
    }

    pub(crate) fn detach(&self, service: &str) {
        if let Some(n) = lock(&self.per_service).get_mut(service) {
            *n = n.saturating_sub(1);
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn outage(&self) -> Outage {
        match self.outage.load(Ordering::Acquire) {
            1 => Outage::Refuse,
            2 => Outage::AcceptAndClose,
            _ => Outage::None,
        }
    }

    /// Switches the outage mode; `Refuse` closes the listening socket before returning,
    /// and ending it listens again on the same address before returning.
    pub(crate) fn set_outage(&self, outage: Outage) -> std::io::Result<()> {
        let mut l = lock(&self.listener);
        self.outage.store(
            match outage {
                Outage::None => 0,
                Outage::Refuse => 1,
                Outage::AcceptAndClose => 2,
            },
            Ordering::Release,
        );
        match outage {
            Outage::Refuse => *l = None,
            Outage::None | Outage::AcceptAndClose => {
                if l.is_none() && !self.is_shutting_down() {
                    *l = Some(bind(self.addr)?);
                }
            }
        }
        drop(l);
        self.listener_changed.notify_waiters();
        Ok(())
    }

    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        *lock(&self.listener) = None;
        self.listener_changed.notify_waiters();
        self.shutdown_notify.notify_waiters();
    }

    /// Unmet expectations, one line each.
    pub(crate) fn unmet_expectations(&self) -> Vec<String> {
        let c = self.snapshot();
        let mut out = Vec::new();
        for r in c.rules.iter().rev() {
            if let Some(want) = r.mock.expect {
                let st = r
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !want.contains(st.applied) {
                    out.push(format!(
                        "{} expected {want} request(s), got {} (matched {})",
                        r.describe(),
                        st.applied,
                        st.matched
                    ));
                }
            }
        }
        out
    }

    /// Rules as JSON for the admin API.
    pub(crate) fn rules_json(&self) -> serde_json::Value {
        let c = self.snapshot();
        serde_json::Value::Array(
            c.rules
                .iter()
                .map(|r| {
                    let st = r
                        .state
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    serde_json::json!({
                        "id": r.id,
                        "name": r.mock.name,
                        "matched": st.matched,
                        "applied": st.applied,
                        "expect": r.mock.expect.map(|t| t.to_string()),
                    })
                })
                .collect(),
        )
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Builds a [`MockServer`].
#[derive(Debug)]
pub struct MockServerBuilder {
    listen: SocketAddr,
    services: Vec<ServiceConfig>,
    tls: TlsSetting,
    client_ca: Option<String>,
    settings: Settings,
    mocks: Vec<Mock>,
    admin: Option<SocketAddr>,
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
            settings: Settings {
                services: Vec::new(),
                limits: Limits::default(),
                header_read_timeout: DEFAULT_HEAD_DEADLINE,
                idle_timeout: Duration::from_secs(120),
                body_capture: 64 * 1024,
                triggers: true,
                journal_limit: DEFAULT_JOURNAL_LIMIT,
                journal_bytes: DEFAULT_JOURNAL_BYTES,
                trigger_delay: Duration::from_secs(5),
                body_digest: true,
                upstream: None,
                record: None,
                replay: None,
            },
            mocks: Vec::new(),
            admin: None,
        }
    }
}

impl MockServerBuilder {
    /// Proxy mode: requests to services without their own upstream, and that no rule
    /// answers, are forwarded to `upstream` (see [`crate::proxy`]).
    pub fn upstream(mut self, upstream: crate::proxy::Upstream) -> Self {
        self.settings.upstream = Some(upstream);
        self
    }

    /// Records every proxied exchange (see [`crate::record`]).
    pub fn record(mut self, settings: crate::record::RecordSettings) -> Self {
        self.settings.record = Some(settings);
        self
    }

    /// Answers from a recording instead of the built-in dialects (see [`crate::replay`]).
    pub fn replay(mut self, replay: crate::replay::Replay) -> Self {
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
    /// CA generated at start ([`MockServer::ca_pem`]).
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
    /// its head, embedded HTTP heads included (default 10 s, [`DEFAULT_HEAD_DEADLINE`]).
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
    /// throughput rather than the mock's. SHA-256 signatures still hash their bodies.
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
    pub fn journal_limit(mut self, n: usize) -> Self {
        self.settings.journal_limit = n;
        self
    }

    /// How many bytes the journal's entries may hold together, as counted by
    /// [`Transaction::held_bytes`] (oldest dropped first; default 8 MiB). The newest entry
    /// is always kept, so the journal holds at most this or one entry, whichever is larger
    /// (an entry is bounded by the decoder [`limits`](Self::limits) on heads).
    pub fn journal_bytes(mut self, bytes: usize) -> Self {
        self.settings.journal_bytes = bytes;
        self
    }

    /// Mounts a mock at start.
    pub fn mock(mut self, mock: Mock) -> Self {
        self.mocks.push(mock);
        self
    }

    /// Serves the HTTP admin API on `addr` ([`MockServer::admin_addr`]).
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.admin = Some(addr);
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
    pub async fn try_start(mut self) -> Result<MockServer, StartError> {
        if self.services.is_empty() {
            self.services.push(ServiceConfig::new("avscan"));
        }
        self.settings.services = self.services.clone();
        let (tls, ca_pem) = match &self.tls {
            TlsSetting::None => (None, None),
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
        let listener = bind(self.listen)?;
        let addr = listener.local_addr()?;
        let istag_base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let journal = Journal::new(self.settings.journal_limit, self.settings.journal_bytes);
        let shared = Arc::new(Shared {
            compiled: Mutex::new(Arc::new(Compiled::build(&self.settings, Vec::new(), 0))),
            settings: self.settings,
            next_rule: AtomicU64::new(1),
            journal: Mutex::new(journal),
            next_tx: AtomicU64::new(1),
            per_service: Mutex::new(HashMap::new()),
            listener: Mutex::new(Some(listener)),
            listener_changed: Notify::new(),
            addr,
            outage: AtomicU8::new(0),
            shutdown: AtomicBool::new(false),
            shutdown_notify: Notify::new(),
            tls,
            istag_base,
        });
        for m in self.mocks {
            shared.add_rule(m);
        }
        let admin = match self.admin {
            Some(a) => Some(crate::admin::start(shared.clone(), a).await?),
            None => None,
        };
        let task = tokio::spawn(accept_loop(shared.clone()));
        tracing::info!(%addr, tls = shared.tls.is_some(), "icap-mock-server listening");
        Ok(MockServer {
            shared,
            addr,
            ca_pem,
            task: Some(task),
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
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

async fn accept_loop(shared: Arc<Shared>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let changed = shared.listener_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if shared.is_shutting_down() {
            break;
        }
        let accepted = std::future::poll_fn(|cx| {
            if changed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            let l = lock(&shared.listener);
            match l.as_ref() {
                Some(l) => l.poll_accept(cx).map(Some),
                None => Poll::Pending,
            }
        })
        .await;
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let Some(res) = accepted else { continue };
        let (stream, peer) = match res {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if shared.outage() == Outage::AcceptAndClose {
            tracing::debug!(%peer, "outage: accepted and closed");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            match shared.tls.clone() {
                None => Connection::new(stream, Some(peer), shared).run().await,
                Some(acceptor) => {
                    let hs = tokio::time::timeout(
                        shared.settings.header_read_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match hs {
                        Ok(Ok(tls)) => Connection::new(tls, Some(peer), shared).run().await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Graceful: let connections finish their current transaction.
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            r = conns.join_next() => if r.is_none() { break },
            () = &mut grace => { conns.abort_all(); break }
        }
    }
}

/// A running mock ICAP server. Dropping it shuts it down and checks the expectations of
/// its mocks (panicking if one is unmet, unless the thread is already panicking).
#[derive(Debug)]
pub struct MockServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: Option<String>,
    task: Option<JoinHandle<()>>,
    admin: Option<crate::admin::AdminHandle>,
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

    /// `icap://127.0.0.1:PORT/<first service>` (`icaps://` with TLS).
    pub fn url(&self) -> String {
        self.url_for(&self.shared.settings.services[0].name)
    }

    /// The URL of the service `service` (which need not exist: useful for 404 tests).
    pub fn url_for(&self, service: &str) -> String {
        let scheme = if self.shared.tls.is_some() {
            "icaps"
        } else {
            "icap"
        };
        format!(
            "{scheme}://{}/{}",
            self.addr,
            service.trim_start_matches('/')
        )
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) to trust for a server started with
    /// [`MockServerBuilder::tls_generated`].
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The admin API address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// The current `ISTag` (without quotes); it changes when mocks are mounted or removed.
    pub fn istag(&self) -> String {
        self.shared.istag()
    }

    /// Starts or ends an outage. Takes effect before it returns.
    ///
    /// # Panics
    /// If listening again on the same address fails when an outage ends.
    pub fn set_outage(&self, outage: Outage) {
        self.shared
            .set_outage(outage)
            .expect("listening again after the outage");
    }

    /// The transactions received so far, oldest first.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn journal(&self) -> Vec<Transaction> {
        self.shared.journal()
    }

    /// The bytes the journal's entries hold now (at most the
    /// [`journal_bytes`](MockServerBuilder::journal_bytes) budget, or one entry if that
    /// alone is larger).
    pub fn journal_bytes(&self) -> usize {
        self.shared.journal_bytes()
    }

    /// Alias of [`MockServer::journal`] in wiremock's words.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn received_requests(&self) -> Vec<Transaction> {
        self.shared.journal()
    }

    /// Empties the journal.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn clear_journal(&self) {
        self.shared.clear_journal();
    }

    /// Removes every mock and empties the journal.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn reset(&self) {
        self.shared.remove_rules(|_| false);
        self.shared.clear_journal();
    }

    /// Checks the expectations of the mounted mocks.
    ///
    /// # Panics
    /// With a message naming each unmet expectation.
    #[allow(clippy::unused_async)] // async API, as promised to users
    pub async fn verify(&self) {
        let unmet = self.shared.unmet_expectations();
        assert!(
            unmet.is_empty(),
            "icap-mock-server: unmet expectations:\n  {}",
            unmet.join("\n  ")
        );
    }

    pub(crate) fn add_mock(&self, mock: Mock) {
        self.shared.add_rule(mock);
    }

    /// Stops accepting, lets connections finish their current transaction (up to 5 s),
    /// and waits for that. Expectations are still checked when the value drops.
    pub async fn shutdown(mut self) {
        self.shared.begin_shutdown();
        if let Some(a) = self.admin.take() {
            a.stop();
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
        if let Some(a) = self.admin.take() {
            a.stop();
        }
        if !std::thread::panicking() {
            let unmet = self.shared.unmet_expectations();
            assert!(
                unmet.is_empty(),
                "icap-mock-server: unmet expectations:\n  {}",
                unmet.join("\n  ")
            );
        }
    }
}
