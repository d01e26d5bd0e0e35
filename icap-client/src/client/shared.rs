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
use crate::events::{HealthEvent, HealthSink};
use crate::server::{ServerHandle, ServerState};

pub(super) struct Inner {
    pub(super) cfg: ClientConfig,
    /// The configured extra headers, checked once by the builder.
    pub(super) static_headers: Headers,
    pub(super) servers: Vec<Arc<ServerState>>,
    /// The next round-robin start.
    pub(super) rr: AtomicUsize,
    health: broadcast::Sender<HealthEvent>,
    /// Who else hears of health changes (a [`Guard`](crate::Guard)'s channel).
    sinks: std::sync::Mutex<Vec<Box<dyn HealthSink>>>,
}

/// The log target of everything in `client/`: the one the client logged under before it
/// was split into files, so `RUST_LOG=icap_client::client=debug` keeps working.
pub(super) const LOG_TARGET: &str = "icap_client::client";

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
                sinks: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The server URLs, in configured order.
    pub fn servers(&self) -> Vec<String> {
        self.inner.servers.iter().map(|s| s.url.clone()).collect()
    }

    /// Files larger than this are not sent ([`NotScannedReason::TooLarge`](crate::NotScannedReason::TooLarge));
    /// `None`: no limit.
    pub fn max_size(&self) -> Option<u64> {
        self.inner.cfg.max_size
    }

    /// The method scans use: `RESPMOD` (default) or `REQMOD`.
    pub fn method(&self) -> Method {
        self.inner.cfg.method
    }

    /// Receives the servers' health changes (down, up) from now on. Alerts, notices and
    /// audit entries come from a [`Guard`](crate::Guard), which forwards these too.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.inner.health.subscribe()
    }

    /// Delivers every health change to `sink` too, for as long as it is alive.
    pub(crate) fn forward_health(&self, sink: impl HealthSink + 'static) {
        let mut sinks = self.inner.sinks.lock().expect("sinks lock");
        sinks.retain(|s| s.is_alive());
        sinks.push(Box::new(sink));
    }

    pub(super) fn emit_health(&self, h: HealthEvent) {
        let mut sinks = self.inner.sinks.lock().expect("sinks lock");
        sinks.retain(|s| s.is_alive());
        for s in sinks.iter() {
            s.deliver(&h);
        }
        drop(sinks);
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

#[cfg(test)]
mod tests {
    use crate::{Client, Event, Guard, HealthEvent, Policy};

    #[test]
    fn dropped_guards_leave_no_sink_behind() {
        let client = Client::builder()
            .server("icap://127.0.0.1:1344/avscan")
            .build()
            .expect("valid client");
        for _ in 0..100 {
            drop(Guard::new(client.clone(), Policy::default()).expect("guard"));
        }
        let guard = Guard::new(client.clone(), Policy::default()).expect("guard");
        assert_eq!(client.inner.sinks.lock().expect("sinks lock").len(), 1);
        let mut rx = guard.subscribe();
        let mut health = client.subscribe();
        client.emit_health(HealthEvent::Up {
            server: "icap://127.0.0.1:1344/avscan".into(),
            message: "back".into(),
        });
        assert!(matches!(rx.try_recv(), Ok(Event::Alert(a)) if a.message == "back"));
        assert!(matches!(health.try_recv(), Ok(HealthEvent::Up { .. })));
        drop(guard);
        client.emit_health(HealthEvent::Up {
            server: "icap://127.0.0.1:1344/avscan".into(),
            message: "again".into(),
        });
        assert!(client.inner.sinks.lock().expect("sinks lock").is_empty());
    }
}
