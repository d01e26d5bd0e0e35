//! The relay's loop: client events go up, upstream events come down, each through its
//! exchange's rules and the transport faults, until both sides are done.

use bytes::BytesMut;
use icap_proto::exchange::ClientEvent;
use icap_proto::{
    ClientExchange, Event, Headers, Method, RequestHead, RequestPlan, ResponseHead, StatusCode,
    chunked,
};
use sha2::Digest;
use tokio::io::AsyncReadExt;

use super::relay::{READ_RESERVE, Relay, UPSTREAM_BUFFER};
use super::upstream::Failure;
use crate::connection::{Connection, Next, Stream};
use crate::journal::{Transaction, hex};

impl<S: Stream> Connection<S> {
    #[allow(clippy::too_many_lines)] // one loop over both sides reads best whole
    pub(super) async fn pump(
        &mut self,
        rec: &mut Transaction,
        method: Method,
        r: &mut Relay,
        head_bytes: &[u8],
        plan: impl Fn(bool) -> RequestPlan,
    ) -> Result<Next, Failure> {
        let limits = self.state.settings.limits;
        r.write_head_up(head_bytes).await?;
        loop {
            // The client's side first: forward what is decoded.
            if r.client_open && !r.await_continue {
                let next = match r.held.pop_front() {
                    Some(ev) => Ok(Some(ev)),
                    None => self.exchange.poll_event(&mut self.buf),
                };
                match next {
                    Err(e) => {
                        tracing::info!(error = %e, "bad request body on the proxied path");
                        if !r.answered {
                            self.send_status(e.status_code(), method).await;
                            rec.status = Some(e.status_code());
                        }
                        return Ok(Next::Close);
                    }
                    Ok(Some(ev)) => {
                        self.on_client_event(rec, r, ev, &plan, limits).await?;
                        continue;
                    }
                    Ok(None) => {}
                }
            }
            // Nothing more from the client for now: what its events queued goes up in one
            // write, before anything waits for the upstream.
            r.flush_up().await?;
            if let Some(cx) = r.cx.as_mut() {
                match cx.poll_event(&mut r.ubuf) {
                    Err(e) => return Err(Failure::Bad(format!("upstream answer: {e}"))),
                    Ok(Some(ev)) => {
                        if self.on_upstream_event(rec, method, r, ev).await? {
                            break;
                        }
                        continue;
                    }
                    Ok(None) => {}
                }
            }
            // Read more from whichever side is due.
            let want_client = r.client_open && self.buf.len() < READ_RESERVE * 4;
            let want_up = r.cx.is_some() && r.ubuf.len() < UPSTREAM_BUFFER;
            if self.buf.capacity() - self.buf.len() < READ_RESERVE / 4 {
                self.buf.reserve(READ_RESERVE);
            }
            if r.ubuf.capacity() - r.ubuf.len() < READ_RESERVE / 4 {
                r.ubuf.reserve(READ_RESERVE);
            }
            let before = r.ubuf.len();
            tokio::select! {
                res = self.stream.read_buf(&mut self.buf), if want_client => match res {
                    Ok(0) => {
                        let _ = self.exchange.handle_eof();
                        return Err(Failure::Client);
                    }
                    Err(_) => return Err(Failure::Client),
                    Ok(_) => {}
                },
                res = r.up_r.read_buf(&mut r.ubuf), if want_up => match res {
                    Ok(0) | Err(_) => {
                        let cx = r.cx.as_mut().expect("want_up implies an exchange");
                        if let Err(e) = cx.handle_eof() {
                            return Err(Failure::Bad(format!("upstream: {e}")));
                        }
                    }
                    Ok(n) => {
                        r.received = r.received.saturating_add(n as u64);
                        if let Some(t) = &mut r.tape {
                            t.response(&r.ubuf[before..]).await;
                        }
                        r.touch();
                    }
                },
                () = &mut r.timer => {
                    if want_client && !want_up {
                        return Err(Failure::Client);
                    }
                    return Err(Failure::Timeout);
                }
            }
        }
        // The answer is complete. What the client still owes (an early answer) is read
        // and dropped, so the connection can carry the next request.
        for ev in std::mem::take(&mut r.held) {
            if let Event::Data(d) = ev {
                if let Some(h) = &mut r.hasher {
                    h.update(&d);
                }
                rec.body_len = rec
                    .body_len
                    .saturating_add(u64::try_from(d.len()).unwrap_or(u64::MAX));
            }
        }
        while !self.exchange.is_request_done() && self.exchange.must_drain() {
            match self.next_event().await {
                Ok(Event::Data(d)) => {
                    if let Some(h) = &mut r.hasher {
                        h.update(&d);
                    }
                    rec.body_len = rec
                        .body_len
                        .saturating_add(u64::try_from(d.len()).unwrap_or(u64::MAX));
                }
                Ok(Event::End(_)) => break,
                Ok(_) => {}
                Err(_) => return Ok(Next::Close),
            }
        }
        rec.complete = self.exchange.is_request_done();
        if let Some(h) = r.hasher.take() {
            rec.body_sha256 = hex(&h.finalize());
        }
        if self.exchange.handle_response_end().is_err() || !self.exchange.reuse().is_yes() {
            return Ok(Next::Close);
        }
        Ok(Next::KeepAlive)
    }

    pub(super) async fn on_client_event(
        &mut self,
        rec: &mut Transaction,
        r: &mut Relay,
        ev: Event<RequestHead>,
        plan: &impl Fn(bool) -> RequestPlan,
        limits: icap_proto::Limits,
    ) -> Result<(), Failure> {
        match ev {
            Event::Head(_) => {}
            Event::Data(d) => {
                r.forwarded = true;
                if let Some(h) = &mut r.hasher {
                    h.update(&d);
                }
                let n = u64::try_from(d.len()).unwrap_or(u64::MAX);
                rec.body_len = rec.body_len.saturating_add(n);
                if r.cx.as_ref().is_none_or(|c| !c.continued()) && rec.preview.is_some() {
                    rec.preview_bytes = rec.preview_bytes.saturating_add(n);
                }
                // An answer may come before the body ends (a streaming 200 echo): the
                // upstream still reads the rest.
                r.queue_body(|out| chunked::encode_chunk(&d, out)).await?;
            }
            Event::PreviewEnd { ieof } => {
                r.forwarded = true;
                r.ieof = ieof;
                rec.ieof = ieof;
                r.queue_body(|out| chunked::encode_last_chunk(ieof, &Headers::new(), out))
                    .await?;
                let mut cx = ClientExchange::new(plan(ieof), limits);
                if !ieof {
                    let _ = cx.handle_preview_sent();
                    // The client already has the proxy's 100 Continue and sent the rest:
                    // it waits (held) for the upstream's.
                    r.await_continue = r.self_continued;
                }
                r.cx = Some(cx);
            }
            Event::End(end) => {
                r.forwarded = true;
                r.client_open = false;
                if !r.ieof {
                    r.queue_body(|out| chunked::encode_last_chunk(false, &end.trailers, out))
                        .await?;
                }
                if let Some(cx) = r.cx.as_mut() {
                    let _ = cx.handle_request_sent();
                }
            }
        }
        Ok(())
    }

    /// Passes one upstream event on. True when the answer is complete.
    pub(super) async fn on_upstream_event(
        &mut self,
        rec: &mut Transaction,
        method: Method,
        r: &mut Relay,
        ev: ClientEvent,
    ) -> Result<bool, Failure> {
        match ev {
            ClientEvent::Continue if r.self_continued => {
                if !r.await_continue {
                    return Err(Failure::Bad(
                        "upstream sent 100 Continue out of turn".into(),
                    ));
                }
                // The client was continued by the proxy already: not passed on.
                r.await_continue = false;
            }
            ClientEvent::Continue => {
                rec.continued = true;
                if !self.exchange.may_continue() {
                    return Err(Failure::Bad(
                        "upstream sent 100 Continue out of turn".into(),
                    ));
                }
                let cont = ResponseHead::new(StatusCode::CONTINUE);
                let mut out = BytesMut::new();
                cont.encode(method, &mut out)
                    .expect("100 Continue always encodes");
                self.write_down(r, &out).await?;
                if self.exchange.handle_continue_sent().is_err() {
                    return Err(Failure::Client);
                }
            }
            ClientEvent::Head(h) => {
                rec.status = Some(h.status.as_u16());
                if let Some(t) = r.tape.as_mut() {
                    t.meta.istag = h
                        .headers
                        .get("ISTag")
                        .map(|v| v.to_str_lossy().into_owned());
                }
                let mut out = BytesMut::new();
                h.encode(method, &mut out)
                    .map_err(|e| Failure::Bad(format!("upstream head does not re-encode: {e}")))?;
                if let Err(e) = self.exchange.handle_response_sent(&h) {
                    tracing::info!(error = %e, "upstream answer outside the client's exchange rules; closing after it");
                }
                r.answered = true;
                r.response_has_body = h.body.is_some();
                self.write_down(r, &out).await?;
            }
            ClientEvent::Data(d) => {
                let mut out = BytesMut::with_capacity(d.len().saturating_add(24));
                chunked::encode_chunk(&d, &mut out);
                self.write_down(r, &out).await?;
            }
            ClientEvent::End(end) => {
                if r.response_has_body {
                    let mut out = BytesMut::new();
                    chunked::encode_last_chunk(false, &end.trailers, &mut out);
                    self.write_down(r, &out).await?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl<S: Stream> Connection<S> {
    /// Writes part of the answer to the client, through the transport faults.
    pub(super) async fn write_down(&mut self, r: &mut Relay, bytes: &[u8]) -> Result<(), Failure> {
        if let Some(d) = r.latency.take() {
            tokio::time::sleep(d).await;
        }
        r.down = true;
        if r.shape_down.is_off() {
            return if self.write(bytes).await {
                Ok(())
            } else {
                Err(Failure::Client)
            };
        }
        let mut pos = 0;
        while pos < bytes.len() {
            let n = r
                .shape_down
                .next_piece(bytes.len() - pos)
                .map_err(Failure::Cut)?;
            if !self.write(&bytes[pos..pos + n]).await {
                return Err(Failure::Client);
            }
            pos += n;
            let wait = r.shape_down.wrote(n);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        match r.shape_down.cut_reached() {
            Some(how) => Err(Failure::Cut(how)),
            None => Ok(()),
        }
    }
}
