//! Per-server state: the keep-alive pool, the cached `OPTIONS` answer and health.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use icap_proto::{Limits, OptionsResponse, OptionsWarning, RequestStart, Uri};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::{HealthConfig, Timeouts, instant_after};
use crate::connection::Connection;
use crate::error::Error;
use crate::transport::{Endpoint, Transport, connect};

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// A pooled connection checked out for one transaction, holding a slot of the server's
/// connection limit until it is returned or dropped.
pub(crate) struct Checkout {
    pub(crate) conn: Connection<Transport>,
    pub(crate) reused: bool,
    _permit: OwnedSemaphorePermit,
}

struct Idle {
    conn: Connection<Transport>,
    since: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct CachedOptions {
    pub(crate) options: Arc<OptionsResponse>,
    pub(crate) expires: Instant,
}

#[derive(Debug, Default)]
struct Health {
    failures: VecDeque<Instant>,
    down_until: Option<Instant>,
    ever_ok: bool,
}

/// What the health state says about using a server now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usable {
    /// Not marked down: scan on it.
    Yes,
    /// Down, and its revival delay has passed: probe it first.
    Probe,
    /// Marked down and still within its revival delay: skip it.
    No,
}

pub(crate) struct ServerState {
    pub(crate) uri: Uri,
    /// What every scan head to this server starts with, encoded once
    /// (`client::heads::scan_head_start`).
    pub(crate) scan_head_start: RequestStart,
    pub(crate) url: String,
    pub(crate) endpoint: Endpoint,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    /// Current connection limit: min(configured, server's Max-Connections).
    limit: Mutex<u32>,
    configured_limit: u32,
    options: Mutex<Option<CachedOptions>>,
    /// The warnings of the last `OPTIONS` answer, already logged.
    warned: Mutex<Vec<OptionsWarning>>,
    pub(crate) options_refresh: tokio::sync::Mutex<()>,
    health: Mutex<Health>,
}

impl ServerState {
    pub(crate) fn new(
        uri: Uri,
        scan_head_start: RequestStart,
        endpoint: Endpoint,
        max_connections: u32,
    ) -> Self {
        let max = max_connections.max(1);
        ServerState {
            url: uri.to_string(),
            scan_head_start,
            uri,
            endpoint,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(max as usize)),
            limit: Mutex::new(max),
            configured_limit: max,
            options: Mutex::new(None),
            warned: Mutex::new(Vec::new()),
            options_refresh: tokio::sync::Mutex::new(()),
            health: Mutex::new(Health::default()),
        }
    }

    /// A connection: an idle pooled one if any is alive, else a new one. Waits while the
    /// server's connection limit is reached.
    pub(crate) async fn checkout(
        &self,
        t: &Timeouts,
        limits: Limits,
        wire_cap: Option<usize>,
        idle_timeout: Duration,
        fresh: bool,
    ) -> Result<Checkout, Error> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if fresh {
            // A fresh connection replaces idle ones (they are probably stale too), which
            // also keeps open connections within the limit.
            self.idle.lock().expect("pool lock").clear();
        } else {
            while let Some(mut idle) = self.pop_idle() {
                if idle.since.elapsed() < idle_timeout && !idle.conn.is_closed_by_peer() {
                    return Ok(Checkout {
                        conn: idle.conn,
                        reused: true,
                        _permit: permit,
                    });
                }
                tracing::debug!(server = %self.url, "dropping a pooled connection the server closed or that idled too long");
            }
        }
        // Boxed: connecting (TCP, then TLS) is rare next to pooled checkouts, and inline
        // its state would be carried by every scan's future.
        let stream = Box::pin(connect(&self.endpoint, t)).await?;
        let id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(server = %self.url, conn = id, "connected");
        Ok(Checkout {
            conn: Connection::new(stream, limits, wire_cap, id),
            reused: false,
            _permit: permit,
        })
    }

    fn pop_idle(&self) -> Option<Idle> {
        self.idle.lock().expect("pool lock").pop()
    }

    /// Returns a connection after a clean transaction.
    pub(crate) fn checkin(&self, c: Checkout) {
        let mut conn = c.conn;
        conn.set_idle();
        let limit = *self.limit.lock().expect("limit lock") as usize;
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < limit {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections in the pool (for tests and stats).
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }

    pub(crate) fn cached_options(&self) -> Option<Arc<OptionsResponse>> {
        let g = self.options.lock().expect("options lock");
        g.as_ref()
            .filter(|c| Instant::now() < c.expires)
            .map(|c| c.options.clone())
    }

    pub(crate) fn store_options(&self, o: OptionsResponse, default_ttl: Duration) {
        let ttl = o.options_ttl.unwrap_or(default_ttl);
        if let Some(m) = o.max_connections {
            self.set_limit(m);
        }
        {
            // Each warning once: an answer refreshed every Options-TTL repeats the same ones.
            // Only the last answer's are remembered, so memory stays bounded.
            let mut seen = self.warned.lock().expect("warned lock");
            for w in o.warnings.iter().filter(|w| !seen.contains(w)) {
                tracing::warn!(server = %self.url, "OPTIONS: {w}");
            }
            seen.clone_from(&o.warnings);
        }
        *self.options.lock().expect("options lock") = Some(CachedOptions {
            options: Arc::new(o),
            // Options-TTL comes from the server: any number, up to u64::MAX seconds.
            expires: instant_after(Instant::now(), ttl),
        });
    }

    /// Forgets the cached `OPTIONS` if a response carried a different `ISTag`.
    pub(crate) fn note_istag(&self, istag: Option<&[u8]>) {
        let Some(tag) = istag else { return };
        let mut g = self.options.lock().expect("options lock");
        if let Some(c) = g.as_ref()
            && let Some(known) = &c.options.istag
            && known.as_bytes() != tag
        {
            tracing::debug!(server = %self.url, old = %known, new = %String::from_utf8_lossy(tag), "ISTag changed; OPTIONS will be refreshed");
            *g = None;
        }
    }

    /// Applies the server's `Max-Connections` (never above the configured limit).
    fn set_limit(&self, server_max: u32) {
        let target = server_max.clamp(1, self.configured_limit);
        let mut cur = self.limit.lock().expect("limit lock");
        if target > *cur {
            self.permits.add_permits((target - *cur) as usize);
        } else if target < *cur {
            let k = *cur - target;
            if let Ok(p) = self.permits.try_acquire_many(k) {
                p.forget();
            } else {
                // Permits in use cannot be taken back now; take them as they come back.
                let sem = self.permits.clone();
                tokio::spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(k).await {
                        p.forget();
                    }
                });
            }
        }
        *cur = target;
    }

    /// The connection limit in force.
    pub(crate) fn limit(&self) -> u32 {
        *self.limit.lock().expect("limit lock")
    }

    pub(crate) fn usable(&self) -> Usable {
        let h = self.health.lock().expect("health lock");
        match h.down_until {
            None => Usable::Yes,
            Some(t) if Instant::now() >= t => Usable::Probe,
            Some(_) => Usable::No,
        }
    }

    /// Whether the server answered recently (options cached, not down).
    pub(crate) fn known_good(&self) -> bool {
        self.usable() == Usable::Yes
            && self.health.lock().expect("health lock").ever_ok
            && self.cached_options().is_some()
    }

    pub(crate) fn record_success(&self) -> bool {
        let mut h = self.health.lock().expect("health lock");
        h.failures.clear();
        h.ever_ok = true;
        h.down_until.take().is_some()
    }

    /// Counts a failure; returns true if the server just went down.
    pub(crate) fn record_failure(&self, cfg: &HealthConfig) -> bool {
        let now = Instant::now();
        let mut h = self.health.lock().expect("health lock");
        while h
            .failures
            .front()
            .is_some_and(|&t| now.duration_since(t) > cfg.window)
        {
            h.failures.pop_front();
        }
        h.failures.push_back(now);
        if h.down_until.is_some() {
            // A failed probe: stay down for another revival delay.
            h.down_until = Some(instant_after(now, cfg.revival));
            return false;
        }
        if h.failures.len() >= cfg.threshold.max(1) as usize {
            h.down_until = Some(instant_after(now, cfg.revival));
            self.idle.lock().expect("pool lock").clear();
            return true;
        }
        false
    }

    /// Marks the server down now (a failed probe is decisive).
    pub(crate) fn mark_down(&self, cfg: &HealthConfig) -> bool {
        let mut h = self.health.lock().expect("health lock");
        let was_up = h.down_until.is_none();
        h.down_until = Some(instant_after(Instant::now(), cfg.revival));
        was_up
    }
}

/// One configured server as seen from outside the client: its URL, pool and health.
/// Cheap to clone; it reads the live state the client uses.
///
/// ```
/// use icap_client::Client;
/// let client = Client::builder().server("icap://127.0.0.1:1344/avscan").build().unwrap();
/// let server = client.server(0).unwrap();
/// assert_eq!(server.url(), "icap://127.0.0.1:1344/avscan");
/// assert!(!server.is_down());
/// assert_eq!(server.idle_connections(), 0);
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    state: Arc<ServerState>,
}

impl ServerHandle {
    pub(crate) fn new(state: Arc<ServerState>) -> Self {
        ServerHandle { state }
    }

    pub(crate) fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// The server URL, as configured.
    pub fn url(&self) -> &str {
        &self.state.url
    }

    /// Idle pooled connections, ready for the next scan.
    pub fn idle_connections(&self) -> usize {
        self.state.idle_count()
    }

    /// The connection limit in force: the configured one, lowered by the server's
    /// `Max-Connections`.
    pub fn connection_limit(&self) -> u32 {
        self.state.limit()
    }

    /// Whether the server is marked down now (scans skip it until its revival delay has
    /// passed and a probe succeeds).
    pub fn is_down(&self) -> bool {
        self.state.usable() != Usable::Yes
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("url", &self.state.url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ServerState {
        let uri: Uri = "icap://127.0.0.1/avscan".parse().unwrap();
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port: 1344,
            tls: None,
            bind: None,
        };
        let start = RequestStart::new(
            icap_proto::Method::Respmod,
            &uri,
            &icap_proto::Headers::new(),
        )
        .expect("a valid start");
        ServerState::new(uri, start, ep, 8)
    }

    #[tokio::test(start_paused = true)]
    async fn options_cache_follows_ttl_and_istag() {
        let s = state();
        let mut o = OptionsResponse::new(vec![icap_proto::Method::Respmod], "tag-1");
        o.options_ttl = Some(Duration::from_secs(10));
        o.max_connections = Some(3);
        s.store_options(o.clone(), Duration::from_secs(300));
        assert_eq!(s.limit(), 3);
        assert!(s.cached_options().is_some());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(s.cached_options().is_none(), "expired after Options-TTL");
        s.store_options(o, Duration::from_secs(300));
        s.note_istag(Some(b"tag-1"));
        assert!(s.cached_options().is_some());
        s.note_istag(Some(b"tag-2"));
        assert!(s.cached_options().is_none(), "ISTag changed");
    }

    #[test]
    fn each_options_warning_is_remembered_once() {
        let s = state();
        let mut o = OptionsResponse::new(vec![icap_proto::Method::Respmod], "tag-1");
        let w = OptionsWarning::Conflicting { header: "Preview" };
        o.warnings = vec![w.clone()];
        s.store_options(o.clone(), Duration::from_secs(1));
        assert_eq!(*s.warned.lock().unwrap(), vec![w]);
        o.warnings.clear();
        s.store_options(o, Duration::from_secs(1));
        assert!(
            s.warned.lock().unwrap().is_empty(),
            "bounded by the last answer"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn huge_options_ttl_and_revival_do_not_overflow() {
        let s = state();
        let mut o = OptionsResponse::new(vec![icap_proto::Method::Respmod], "tag-1");
        o.options_ttl = Some(Duration::from_secs(u64::MAX));
        s.store_options(o, Duration::MAX);
        assert!(s.cached_options().is_some());
        tokio::time::advance(Duration::from_secs(400 * 24 * 3600)).await;
        assert!(
            s.cached_options().is_none(),
            "cut to a year, not kept for ever"
        );
        let huge = HealthConfig {
            threshold: 1,
            window: Duration::MAX,
            revival: Duration::MAX,
        };
        assert!(s.record_failure(&huge));
        assert!(
            !s.record_failure(&huge),
            "a failed probe extends, saturating"
        );
        assert!(!s.mark_down(&huge));
        assert_eq!(s.usable(), Usable::No);
    }

    #[tokio::test(start_paused = true)]
    async fn health_window_threshold_and_revival() {
        let s = state();
        let cfg = HealthConfig {
            threshold: 2,
            window: Duration::from_secs(10),
            revival: Duration::from_secs(5),
        };
        assert!(!s.record_failure(&cfg));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!s.record_failure(&cfg), "the first failure left the window");
        assert!(s.record_failure(&cfg), "two within the window");
        assert_eq!(s.usable(), Usable::No);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(s.usable(), Usable::Probe);
        assert!(s.record_success());
        assert_eq!(s.usable(), Usable::Yes);
    }
}
