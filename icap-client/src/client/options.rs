//! The `OPTIONS` side: the per-server cache (filled once per `Options-TTL`, one refresh
//! at a time, dropped on an `ISTag` change by the scan), the request on a pooled
//! connection, and the uncached request the ICAP Test uses.

use std::sync::Arc;
use std::time::Duration;

use icap_proto::{Method, OptionsResponse};
use tokio::time::Instant;

use super::heads::options_head;
use super::shared::{Client, LOG_TARGET, is_stale};
use crate::connection::{ExchangeError, Outgoing};
use crate::error::{Error, Phase};
use crate::server::{ServerHandle, ServerState};
use crate::verdict;

/// Timings and facts of one `OPTIONS` exchange.
#[derive(Debug, Clone)]
pub(crate) struct OptionsTiming {
    pub(crate) connect: Option<Duration>,
    pub(crate) rtt: Duration,
    pub(crate) tls: Option<(String, String)>,
}

impl Client {
    /// The cached `OPTIONS` answer, or a fresh one (one request per server at a time).
    pub(super) async fn server_options(
        &self,
        s: &ServerState,
    ) -> Result<Arc<OptionsResponse>, Error> {
        if let Some(o) = s.cached_options() {
            return Ok(o);
        }
        // Boxed: the fetch is a whole exchange, and inline it would make every scan's
        // future (which holds this one) that much larger to create and move.
        Box::pin(self.refresh_options(s)).await
    }

    /// [`Client::server_options`] on a miss: one refresh per server at a time.
    async fn refresh_options(&self, s: &ServerState) -> Result<Arc<OptionsResponse>, Error> {
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
        let bytes = options_head(&s.uri)?;
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
                head: &bytes,
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
                    let o = OptionsResponse::from_head_with(&head, &cfg.options_rules)
                        .map_err(|e| Error::protocol("invalid OPTIONS answer").with_source(e))?;
                    return Ok((o, OptionsTiming { connect, rtt, tls }));
                }
                Err(e) if co.reused && !fresh && is_stale(&e) => {
                    tracing::debug!(target: LOG_TARGET, server = %s.url, "pooled connection was stale; retrying OPTIONS on a fresh one");
                    fresh = true;
                }
                Err(e) => return Err(e.error),
            }
        }
    }

    /// Sends `OPTIONS` to `server` (bypassing the cache) and returns the answer with
    /// timings. The building block of [`Client::test`](crate::Client::test).
    pub(crate) async fn options_raw(
        &self,
        server: &ServerHandle,
    ) -> Result<(OptionsResponse, OptionsTiming), Error> {
        let s = server.state();
        let r = self.fetch_options(s).await;
        if let Ok((o, _)) = &r {
            s.store_options(o.clone(), self.inner.cfg.options_ttl);
            s.record_success();
        }
        r
    }
}
