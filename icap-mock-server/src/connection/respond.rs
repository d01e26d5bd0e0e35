//! The answers on the connection: OPTIONS, an answer then a drained request, silence,
//! the streaming `200` echo, and the final answer with its fault applied.

use bytes::{Bytes, BytesMut};
use icap_proto::{Event, Method, ResponseHead, StatusCode, chunked};

use super::answer::{build_response, echo_head, is_clean_answer, options_head};
use super::faults;
use super::plan::Plan;
use super::tx::Tx;
use super::{Connection, Next, Stream};
use crate::reply::{FaultKind, ReplyKind};

impl<S: Stream> Connection<S> {
    pub(super) async fn options(&mut self, tx: &mut Tx) -> Next {
        // Drain the (rare) opt-body and the end of the message.
        loop {
            match self.next_event().await {
                Ok(Event::End(_)) => break,
                Ok(Event::Data(d)) => tx.feed(&d, 0),
                Ok(_) => {}
                Err(e) => {
                    if let Some(status) = e.status() {
                        self.send_status(status, Method::Options).await;
                        tx.record.status = Some(status);
                    }
                    self.finish_record(tx);
                    return Next::Close;
                }
            }
        }
        tx.complete();
        let head = options_head(&self.state.istag(), &tx.svc);
        let mut out = BytesMut::new();
        head.encode(Method::Options, &mut out)
            .expect("an OPTIONS head always encodes");
        tx.record.status = Some(head.status.as_u16());
        let ok = self.write(&out).await;
        self.note_response(tx, &head);
        let next = self.note_response_end(tx, ok);
        self.finish_record(tx);
        next
    }

    /// Sends `out` now, then reads the rest of the request: to its end, or to the end of
    /// its preview (a client does not send the rest after a final answer to a preview).
    /// `legal` is the head `out` carries when it is a legal-path answer (the exchange then
    /// decides the reuse); `None` for a fault's.
    pub(super) async fn answer_then_drain(
        &mut self,
        tx: &mut Tx,
        out: &[u8],
        legal: Option<&ResponseHead>,
    ) -> Next {
        if !self.write(out).await {
            return Next::Close;
        }
        if let Some(head) = legal {
            self.note_response(tx, head);
            if tx.off_rules || self.exchange.handle_response_end().is_err() {
                return Next::Close;
            }
        }
        loop {
            match self.next_event().await {
                Ok(Event::Data(d)) => tx.feed(&d, 0),
                Ok(Event::PreviewEnd { ieof: false }) => break,
                Ok(Event::PreviewEnd { ieof: true }) => tx.record.ieof = true,
                Ok(Event::End(_)) => {
                    tx.complete();
                    break;
                }
                Ok(Event::Head(_)) => unreachable!("one head per message"),
                Err(_) => return Next::Close,
            }
        }
        match legal {
            Some(_) if self.exchange.reuse().is_yes() => Next::KeepAlive,
            Some(_) => Next::Close,
            None => Next::KeepAlive,
        }
    }

    /// Reads the request (up to its preview) and never answers.
    pub(super) async fn never_answer(&mut self, tx: &mut Tx, plan: &Plan) -> Next {
        tx.note_fault(plan);
        let mut recorded = false;
        loop {
            match self.next_event().await {
                Ok(Event::Data(d)) => {
                    let cap = self.state.settings.body_capture;
                    tx.feed(&d, cap);
                }
                Ok(Event::PreviewEnd { ieof: true }) => tx.record.ieof = true,
                Ok(Event::PreviewEnd { ieof: false }) => break,
                Ok(Event::End(_)) => {
                    tx.complete();
                    break;
                }
                Ok(Event::Head(_)) => unreachable!("one head per message"),
                Err(_) => {
                    self.finish_record(tx);
                    recorded = true;
                    break;
                }
            }
        }
        if !recorded {
            self.finish_record(tx);
        }
        self.stay_silent().await
    }

    /// Handles body data for a possible `200` echo: keeps it, or streams it once past the
    /// service's echo threshold. False when the client went away.
    pub(super) async fn echo_data(&mut self, tx: &mut Tx, d: Bytes) -> bool {
        if tx.echo_started {
            let mut out = BytesMut::with_capacity(d.len().saturating_add(24));
            chunked::encode_chunk(&d, &mut out);
            if let Some(FaultKind::SlowBody(delay)) = tx.plan.as_ref().and_then(|p| p.fault) {
                tokio::time::sleep(delay).await;
            }
            return self.write(&out).await;
        }
        if !tx.echo_wanted {
            return true;
        }
        tx.echo.extend_from_slice(&d);
        if tx.echo.len() <= tx.svc.echo_threshold || tx.in_preview {
            return true;
        }
        let can_stream = tx.plan.as_ref().is_none_or(|p| {
            matches!(p.reply.kind, ReplyKind::Scan | ReplyKind::Clean) && p.only_timing()
        }) && tx.scan_threat(tx.svc.dialect).is_none();
        if !can_stream {
            // The answer will not be an echo (or will be broken anyway): stop keeping it.
            tx.echo_wanted = false;
            tx.echo = BytesMut::new();
            return true;
        }
        if let Some(FaultKind::Delay(delay)) = tx.plan.as_ref().and_then(|p| p.fault)
            && !self.pause(tx, delay).await
        {
            return false;
        }
        let mut out = BytesMut::new();
        let head = echo_head(&self.state.istag(), tx);
        head.encode(tx.method, &mut out)
            .expect("an echo of a decoded head always encodes");
        chunked::encode_chunk(&tx.echo, &mut out);
        tx.echo = BytesMut::new();
        tx.echo_started = true;
        tx.record.status = Some(200);
        let ok = self.write(&out).await;
        self.note_response(tx, &head);
        ok
    }

    /// Sends the same clean `204` as last time, if that is the answer to `plan`: its bytes as
    /// they are, no copy and no head built; `None` (nothing sent) otherwise.
    async fn clean_again(
        &mut self,
        tx: &mut Tx,
        plan: &Plan,
        istag: &str,
        may_204: bool,
    ) -> Option<Next> {
        let c = self.last_clean.take()?;
        if !is_clean_answer(&c, istag, tx, plan, may_204) {
            self.last_clean = Some(c);
            return None;
        }
        tx.record.status = Some(c.head.status.as_u16());
        let ok = self.write(&c.bytes).await;
        self.note_response(tx, &c.head);
        self.last_clean = Some(c);
        Some(self.note_response_end(tx, ok))
    }

    /// Sends the final answer, applying the planned fault.
    pub(super) async fn respond(&mut self, tx: &mut Tx, plan: &Plan) -> Next {
        tx.record.rule = plan.rule;
        tx.record.fault = plan.fault.map(|f| f.name().to_owned());
        match plan.fault {
            // The client went away during the delay: nothing to answer.
            Some(FaultKind::Delay(d)) if !tx.echo_started && !self.pause(tx, d).await => {
                return Next::Close;
            }
            Some(FaultKind::CloseAfterPreview | FaultKind::CloseMidBody) => return Next::Close,
            Some(FaultKind::ResetMidBody) => return Next::Reset,
            _ => {}
        }
        if tx.echo_started {
            // The 200 echo is streaming: finish it if the answer is still "clean".
            let clean = matches!(tx.resolve(plan), ReplyKind::Clean) && plan.only_timing();
            if clean {
                let mut out = BytesMut::new();
                chunked::encode_last_chunk(false, &icap_proto::Headers::new(), &mut out);
                let ok = self.write(&out).await;
                return self.note_response_end(tx, ok);
            }
            if let ReplyKind::Infected(t) = tx.resolve(plan) {
                tx.record.threat = Some(t);
            }
            tx.record.fault = Some("echo_aborted".to_owned());
            return Next::Reset;
        }
        if plan.fault == Some(FaultKind::Garbage) {
            let _ = self.write(&faults::garbage(tx.record.id)).await;
            return Next::Close;
        }
        self.send_final(tx, plan).await
    }

    /// Builds and writes the final answer for `plan`, with the fault that breaks it, if any.
    async fn send_final(&mut self, tx: &mut Tx, plan: &Plan) -> Next {
        let may_204 = self.exchange.may_answer(StatusCode::NO_CONTENT);
        let istag = self.state.istag();
        match plan.fault {
            Some(FaultKind::TruncatedResponse) => {
                let (_, head, _) = build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                let _ = self.write(faults::truncated_response(&head)).await;
                Next::Close
            }
            Some(FaultKind::CloseMidResponse) => {
                let (_, head, body) =
                    build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                let _ = self.write(&faults::close_mid_response(head, &body)).await;
                Next::Close
            }
            Some(FaultKind::BadChunkSize) => {
                let (_, head, body) =
                    build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                let _ = self.write(&faults::bad_chunk_size(head, &body)).await;
                Next::Close
            }
            Some(FaultKind::MissingTerminalChunk) => {
                let (_, head, body) =
                    build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                if !self
                    .write(&faults::missing_terminal_chunk(head, &body))
                    .await
                {
                    return Next::Close;
                }
                self.stay_silent().await
            }
            Some(FaultKind::WrongEncapsulated) => {
                let (_, head, body) =
                    build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                if self.write(&faults::wrong_encapsulated(&head, &body)).await {
                    Next::KeepAlive
                } else {
                    Next::Close
                }
            }
            Some(FaultKind::SlowBody(d)) => {
                let (response, head, body) =
                    build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                if !self.write(&head).await {
                    return Next::Close;
                }
                self.note_response(tx, &response);
                for piece in body.chunks(256) {
                    tokio::time::sleep(d).await;
                    if !self.write(piece).await {
                        return Next::Close;
                    }
                }
                self.note_response_end(tx, true)
            }
            Some(FaultKind::UnknownStatus(_)) => {
                let (_, mut head, body) =
                    build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                head.extend_from_slice(&body);
                if self.write(&head).await {
                    Next::KeepAlive
                } else {
                    Next::Close
                }
            }
            // The legal path (no fault, or one that only changed the timing).
            _ => {
                if let Some(next) = self.clean_again(tx, plan, &istag, may_204).await {
                    return next;
                }
                let (response, mut head, body) =
                    build_response(&istag, tx, plan, may_204, &mut self.last_clean);
                head.extend_from_slice(&body);
                let ok = self.write(&head).await;
                self.note_response(tx, &response);
                self.note_response_end(tx, ok)
            }
        }
    }
}
