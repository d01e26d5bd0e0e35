//! The proxied exchange: the request streamed to the upstream, its answer streamed back
//! (and recorded), both through icap-proto's exchanges.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use icap_proto::{ClientExchange, Event, RequestHead, RequestPlan, ResponseHead, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Sleep;

use super::upstream::{Failure, Io, Upstream, UpstreamFailure, connect_fresh};
use crate::connection::{Connection, Held, Next, Stream, deadline_after};
use crate::journal::Transaction;
use crate::record::Tape;
use crate::transport_faults::{Cut, Shaper};

/// How much of the upstream's answer may wait in memory while the proxy is busy writing
/// the request to it (so that an upstream which answers while it reads is never
/// deadlocked against the proxy).
pub(super) const UPSTREAM_BUFFER: usize = 1024 * 1024;
pub(super) const READ_RESERVE: usize = 64 * 1024;
/// Queued request bytes past which [`Relay::queue_body`] writes them at once.
const FLUSH_AT: usize = 64 * 1024;

/// The state of one proxied exchange.
#[allow(clippy::struct_excessive_bools)] // independent facts of one exchange
pub(super) struct Relay {
    pub(super) up_r: tokio::io::ReadHalf<Box<dyn Io>>,
    pub(super) up_w: tokio::io::WriteHalf<Box<dyn Io>>,
    pub(super) shape_up: Shaper,
    pub(super) shape_down: Shaper,
    /// Latency still to apply before the answer's first byte.
    pub(super) latency: Option<Duration>,
    pub(super) ubuf: BytesMut,
    pub(super) cx: Option<ClientExchange>,
    pub(super) tape: Option<Tape>,
    /// The SHA-256 of the request body, for the journal and the recording; `None` when
    /// neither wants it (`body_digest(false)` and no recording).
    pub(super) hasher: Option<Sha256>,
    /// The client's request is still being read.
    pub(super) client_open: bool,
    /// The final head went to the client.
    pub(super) answered: bool,
    /// The upstream stopped taking the request (it answered and closed, say): the rest of
    /// the body is read and dropped.
    pub(super) up_done: bool,
    pub(super) response_has_body: bool,
    pub(super) ieof: bool,
    /// The upstream's deadline: the time of its last progress plus the timeout. One timer
    /// for the whole exchange, moved on as bytes flow ([`Relay::touch`]). A timer made per
    /// wait would be registered anew each time, and tokio wakes its I/O driver (a write to
    /// its eventfd) whenever a new timer is the runtime's earliest: four writes per small
    /// proxied request, measured.
    pub(super) timer: Pin<Box<Sleep>>,
    pub(super) timeout: Duration,
    /// Request bytes encoded but not yet written to the upstream: the body events that
    /// were ready together (a small file's preview chunk and its `0; ieof`) go out in one
    /// write ([`Relay::queue_body`], [`Relay::flush_up`]).
    pub(super) pending: BytesMut,
    /// Bytes read from the upstream.
    pub(super) received: u64,
    /// A client event (body, preview end) was consumed: the request cannot be sent again.
    pub(super) forwarded: bool,
    /// Something was written to the client.
    pub(super) down: bool,
    /// Events read ahead, forwarded first.
    pub(super) held: VecDeque<Event<RequestHead>>,
    /// The client got the proxy's own `100 Continue` (see [`Held::continued`]).
    pub(super) self_continued: bool,
    /// The preview went upstream and the held rest waits for its `100 Continue`.
    pub(super) await_continue: bool,
}

impl Relay {
    pub(super) fn new(
        io: Box<dyn Io>,
        upstream: &Upstream,
        seed: u64,
        tape: Option<Tape>,
        held: Held,
        digest: bool,
    ) -> Self {
        let (up_r, up_w) = tokio::io::split(io);
        Relay {
            up_r,
            up_w,
            shape_up: Shaper::up(&upstream.faults),
            shape_down: Shaper::down(&upstream.faults),
            latency: Some(upstream.faults.latency_for(seed)).filter(|d| !d.is_zero()),
            ubuf: BytesMut::with_capacity(READ_RESERVE),
            cx: None,
            tape,
            hasher: digest.then(Sha256::new),
            client_open: false,
            answered: false,
            up_done: false,
            response_has_body: false,
            ieof: false,
            timer: Box::pin(tokio::time::sleep_until(deadline_after(upstream.timeout))),
            timeout: upstream.timeout,
            pending: BytesMut::new(),
            received: 0,
            forwarded: false,
            down: false,
            held: held.events,
            self_continued: held.continued,
            await_continue: false,
        }
    }

    /// Whether the request may go again on another connection: only its head went out,
    /// nothing came back, the client saw nothing.
    pub(super) fn may_retry(&self) -> bool {
        !self.forwarded && self.received == 0 && !self.down
    }

    /// Whether the upstream connection may carry the next request.
    pub(super) fn may_reuse(&self) -> bool {
        !self.up_done
            && !self.client_open
            && self
                .cx
                .as_ref()
                .is_some_and(|cx| cx.reuse(&self.ubuf).is_yes())
            && self.shape_up.cut_reached().is_none()
            && self.shape_down.cut_reached().is_none()
    }

    /// Moves the upstream's deadline on: the timeout runs from now. A later deadline only
    /// updates the registered timer (no wake of the driver).
    pub(super) fn touch(&mut self) {
        self.timer.as_mut().reset(deadline_after(self.timeout));
    }

    /// Queues body bytes for the upstream: `encode` appends them to the queue, which
    /// [`Relay::flush_up`] writes (so body bytes are copied once, by the chunk encoder).
    /// Nothing is queued once the upstream stopped taking the request. Past [`FLUSH_AT`]
    /// bytes the queue is written at once, so it stays bounded.
    pub(super) async fn queue_body(
        &mut self,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<(), Failure> {
        if self.up_done {
            return Ok(());
        }
        let start = self.pending.len();
        encode(&mut self.pending);
        if let Some(t) = &mut self.tape {
            t.request_body(&self.pending[start..]);
        }
        if self.pending.len() >= FLUSH_AT {
            return self.flush_up().await;
        }
        Ok(())
    }

    /// Writes the queued body bytes; once the answer has begun, an upstream that stops
    /// reading only ends the forwarding.
    pub(super) async fn flush_up(&mut self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.pending);
        let result = self.send_up(&bytes).await;
        // Keep the buffer's allocation for the next events.
        self.pending = bytes;
        self.pending.clear();
        match result {
            Err(Failure::Bad(_)) if self.answered => {
                self.up_done = true;
                Ok(())
            }
            other => other,
        }
    }

    /// Writes the request's head to the upstream: the first bytes of the exchange, so
    /// nothing is queued yet.
    pub(super) async fn write_head_up(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        debug_assert!(self.pending.is_empty(), "body bytes queued before the head");
        if let Some(t) = &mut self.tape {
            t.request_head(bytes);
        }
        self.send_up(bytes).await
    }

    /// Writes to the upstream, reading its answer meanwhile (into a bounded buffer).
    async fn send_up(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let mut pos = 0;
        while pos < bytes.len() {
            let piece = self
                .shape_up
                .next_piece(bytes.len() - pos)
                .map_err(Failure::Cut)?;
            let room = self.cx.is_some() && self.ubuf.len() < UPSTREAM_BUFFER;
            if self.ubuf.capacity() - self.ubuf.len() < READ_RESERVE / 4 {
                self.ubuf.reserve(READ_RESERVE);
            }
            let before = self.ubuf.len();
            tokio::select! {
                r = self.up_w.write(&bytes[pos..pos + piece]) => match r {
                    Ok(0) | Err(_) => return Err(Failure::Bad("upstream closed while the request was sent".into())),
                    Ok(n) => {
                        pos += n;
                        let wait = self.shape_up.wrote(n);
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                },
                r = self.up_r.read_buf(&mut self.ubuf), if room => match r {
                    Ok(0) | Err(_) => {
                        // Its answer (if any) is complete in the buffer; stop sending.
                        return Ok(());
                    }
                    Ok(n) => {
                        self.received = self.received.saturating_add(n as u64);
                        if let Some(t) = &mut self.tape {
                            t.response(&self.ubuf[before..]).await;
                        }
                    }
                },
                () = &mut self.timer => return Err(Failure::Timeout),
            }
            self.touch();
        }
        self.up_w
            .flush()
            .await
            .map_err(|e| Failure::Bad(e.to_string()))?;
        match self.shape_up.cut_reached() {
            Some(how) => Err(Failure::Cut(how)),
            None => Ok(()),
        }
    }
}

impl<S: Stream> Connection<S> {
    /// Forwards the request whose head was just read to `upstream` and relays the answer.
    pub(crate) async fn forward(
        &mut self,
        rec: &mut Transaction,
        head: &RequestHead,
        filename: Option<String>,
        upstream: &Upstream,
        held: Held,
    ) -> Next {
        let mut tape = match &self.state.settings.record {
            Some(r) => Tape::open(r, rec.id, head.method.as_str()).await,
            None => None,
        };
        if let Some(t) = &mut tape {
            t.meta.upstream = upstream.url.clone();
            t.meta.service.clone_from(&rec.service);
            t.meta.preview = rec.preview;
            t.meta.allow_204 = rec.allow_204;
            t.meta.filename = filename;
        }
        let faults = &upstream.faults;
        let result = if let Some(d) = faults.timeout {
            rec.fault = Some("transport_timeout".to_owned());
            if d.is_zero() {
                self.stay_silent().await;
            } else {
                let _ = tokio::time::timeout(d, self.stay_silent()).await;
            }
            Ok(Next::Close)
        } else {
            self.relay(rec, head, upstream, &mut tape, held).await
        };
        let next = match result {
            Ok(next) => next,
            Err(f) => {
                let why = match &f {
                    Failure::Bad(s) => s.clone(),
                    Failure::Timeout => "upstream timed out".to_owned(),
                    Failure::Client => "client went away".to_owned(),
                    Failure::Cut(_) => "transport fault: cut".to_owned(),
                };
                if let Some(t) = &mut tape {
                    t.meta.error = Some(why.clone());
                }
                self.upstream_failed(rec, upstream, f, &why).await
            }
        };
        if next != Next::KeepAlive
            && let Some(d) = faults.slow_close
        {
            tokio::time::sleep(d).await;
        }
        if let Some(mut t) = tape {
            t.meta.body_len = rec.body_len;
            t.meta.body_sha256.clone_from(&rec.body_sha256);
            t.meta.ieof = rec.ieof;
            t.meta.status = rec.status;
            t.meta.continued = rec.continued;
            t.finish().await;
        }
        next
    }

    pub(super) async fn upstream_failed(
        &mut self,
        rec: &mut Transaction,
        upstream: &Upstream,
        f: Failure,
        why: &str,
    ) -> Next {
        match f {
            Failure::Client => return Next::Close,
            Failure::Cut(how) => {
                rec.fault = Some("transport_cut".to_owned());
                return if how == Cut::Reset {
                    Next::Reset
                } else {
                    Next::Close
                };
            }
            _ => {}
        }
        tracing::warn!(upstream = %upstream.url, error = why, "upstream failed");
        rec.fault = Some(format!("upstream: {why}"));
        if rec.status.is_some() {
            // The answer's head went out: a status now would land inside it.
            return Next::Reset;
        }
        if upstream.failure == UpstreamFailure::Close {
            return Next::Close;
        }
        let (code, reason) = match f {
            Failure::Timeout => (504, "Gateway Timeout"),
            _ => (502, "Bad Gateway"),
        };
        let mut head = ResponseHead::new(StatusCode::new(code).unwrap_or(StatusCode::SERVER_ERROR))
            .with_reason(reason)
            .expect("static reason is valid");
        let _ = head
            .headers
            .append("ISTag", format!("\"{}\"", self.state.istag()).as_str());
        let clean: String = why
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
            .collect();
        let _ = head.headers.append("X-Mock-Upstream-Error", clean.as_str());
        let _ = head.headers.append("Connection", "close");
        let mut out = BytesMut::new();
        if head.encode(rec.method, &mut out).is_ok() {
            let _ = self.write(&out).await;
            rec.status = Some(code);
        }
        Next::Close
    }

    #[allow(clippy::too_many_lines)] // one loop over both sides reads best whole
    pub(super) async fn relay(
        &mut self,
        rec: &mut Transaction,
        head: &RequestHead,
        upstream: &Upstream,
        tape: &mut Option<Tape>,
        mut held: Held,
    ) -> Result<Next, Failure> {
        let limits = self.state.settings.limits;
        let mut out_head = head.clone();
        let uri = upstream.uri();
        out_head.uri = uri.clone();
        if let Ok(v) = icap_proto::HeaderValue::new(uri.host().to_owned().into_bytes()) {
            out_head
                .headers
                .set(icap_proto::HeaderName::from_static("Host"), v);
        }
        let mut head_bytes = BytesMut::new();
        out_head
            .encode(&mut head_bytes)
            .map_err(|e| Failure::Bad(format!("the request head does not re-encode: {e}")))?;
        let has_body = head.body.is_some();
        let plan = |ieof: bool| {
            RequestPlan::from_head(head, ieof)
                .unwrap_or_else(|_| RequestPlan::new(head.method).with_body(has_body))
        };
        let pooled = if upstream.max_idle > 0 {
            upstream.pool.0.take(upstream.idle_timeout).await
        } else {
            None
        };
        let mut reused = pooled.is_some();
        let mut io = match pooled {
            Some(io) => io,
            None => connect_fresh(upstream).await?,
        };
        loop {
            if let Some(t) = tape.as_mut() {
                t.connected();
            }
            // A recording's metadata carries the body's digest whatever the journal keeps.
            let digest = self.state.settings.body_digest || tape.is_some();
            let mut r = Relay::new(
                io,
                upstream,
                rec.id,
                tape.take(),
                std::mem::take(&mut held),
                digest,
            );
            r.client_open = has_body;
            // Without a preview the answer may come at any time; with one, the exchange
            // is built when the preview ends (its ieof is part of the plan).
            if !has_body || rec.preview.is_none() {
                let mut cx = ClientExchange::new(plan(false), limits);
                if !has_body {
                    let _ = cx.handle_request_sent();
                }
                r.cx = Some(cx);
            }
            let result = self
                .pump(rec, head.method, &mut r, &head_bytes, &plan)
                .await;
            *tape = r.tape.take();
            if reused && matches!(result, Err(Failure::Bad(_))) && r.may_retry() {
                // The pooled connection was stale (closed by the upstream while idle):
                // the same request once more, on a fresh one.
                tracing::debug!(upstream = %upstream.url, "stale pooled connection; retrying on a fresh one");
                if let Some(t) = tape.as_mut() {
                    t.restart_request();
                }
                reused = false;
                held.events = std::mem::take(&mut r.held);
                held.continued = r.self_continued;
                io = connect_fresh(upstream).await?;
                continue;
            }
            let keep = result.is_ok() && upstream.max_idle > 0 && r.may_reuse();
            let Relay { up_r, mut up_w, .. } = r;
            if keep {
                upstream
                    .pool
                    .0
                    .put(up_r.unsplit(up_w), upstream.max_idle, upstream.idle_timeout);
            } else {
                let _ = tokio::time::timeout(Duration::from_secs(1), up_w.shutdown()).await;
            }
            return result;
        }
    }
}
