//! The [`Client`] itself: the shared state its clones hold (configuration, servers, the
//! round-robin counter, the health channel) and what can be read from it. The scan,
//! failover and `OPTIONS` logic lives in the sibling files, each an `impl Client` over
//! this state.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use icap_proto::{Headers, Method};
use tokio::sync::broadcast;

use super::cfg::ClientConfig;
use crate::connection::ExchangeError;
use crate::events::HealthEvent;
use crate::server::{ServerHandle, ServerState};

pub(super) struct Inner {
    pub(super) cfg: ClientConfig,
    /// The configured extra headers, checked once by the builder.
    pub(super) static_headers: Headers,
    pub(super) servers: Vec<Arc<ServerState>>,
    /// The next round-robin start.
    pub(super) rr: AtomicUsize,
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
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.servers())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The client over checked parts (see [`ClientBuilder::build`](crate::ClientBuilder::build)).
    pub(super) fn from_parts(
        cfg: ClientConfig,
        static_headers: Headers,
        servers: Vec<Arc<ServerState>>,
    ) -> Client {
        let (health, _) = broadcast::channel(1024);
        Client {
            inner: Arc::new(Inner {
                cfg,
                static_headers,
                servers,
                rr: AtomicUsize::new(0),
                health,
                forwards: std::sync::Mutex::new(Vec::new()),
            }),
        }
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

    pub(super) fn emit_health(&self, h: HealthEvent) {
        self.inner
            .forwards
            .lock()
            .expect("forwards lock")
            .retain(|f| f(&h));
        // No subscriber is fine: events are optional for the embedding product.
        let _ = self.inner.health.send(h);
    }

    /// Server `i` (in configured order): its pool and health, for monitoring and tests.
    pub fn server(&self, i: usize) -> Option<ServerHandle> {
        self.inner.servers.get(i).cloned().map(ServerHandle::new)
    }

    /// Every server, in configured order.
    pub fn server_handles(&self) -> Vec<ServerHandle> {
        self.inner
            .servers
            .iter()
            .cloned()
            .map(ServerHandle::new)
            .collect()
    }
}

/// A pooled connection that failed before any byte of an answer: the server closed it
/// while idle, so one retry on a fresh connection is safe.
pub(super) fn is_stale(e: &ExchangeError) -> bool {
    e.error.is_closed() && !e.response_started && !e.too_large
}
