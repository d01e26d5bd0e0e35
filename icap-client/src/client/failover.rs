//! Failover and health: the order servers are tried in (failover or round-robin), the
//! loop over them with retries and back-off, marking servers down and up, the `OPTIONS`
//! probe that brings a server back, and [`Client::check_available`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::meta::ScanMeta;
use super::shared::{Client, LOG_TARGET};
use super::source::Source;
use crate::config::Strategy;
use crate::error::{Error, ErrorKind, Phase};
use crate::events::HealthEvent;
use crate::server::{ServerState, Usable};
use crate::verdict::{ScanReport, Verdict};

impl Client {
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

    pub(super) async fn scan_servers(
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
                    // Boxed: a probe is rare, and its state would weigh on every scan.
                    if let Err(e) = Box::pin(self.probe(server)).await {
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
                    tracing::debug!(target: LOG_TARGET, server = %server.url, error = %e, "scan attempt failed");
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
                        tracing::debug!(target: LOG_TARGET, ms = pause.as_millis() as u64, "retrying after a pause");
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

    pub(super) fn announce_down(&self, s: &ServerState, e: &Error) {
        tracing::warn!(target: LOG_TARGET, server = %s.url, error = %e, "ICAP server marked down");
        self.emit_health(HealthEvent::Down {
            server: s.url.clone(),
            message: format!("ICAP server {} is unavailable: {e:#}", s.url),
        });
    }

    fn announce_up(&self, s: &ServerState) {
        tracing::info!(target: LOG_TARGET, server = %s.url, "ICAP server is back");
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
            Some(e) => format!("no ICAP server available: {e:#}"),
            None => "no ICAP server available (all marked down)".into(),
        };
        Err(Error::new(ErrorKind::Unavailable, msg))
    }
}

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
