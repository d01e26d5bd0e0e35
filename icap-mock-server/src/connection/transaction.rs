//! One transaction on the connection, in phases: the refusals before the body, the
//! OPTIONS, replay and proxy routes, the head phase (decisions and faults that need no
//! body) and the body phase (scan, rules, preview, echo, the answer at the end).

use std::collections::VecDeque;

use icap_proto::exchange::RequestPlan;
use icap_proto::{Event, Method, RequestHead, StatusCode};

use super::answer::{build_response, continue_bytes, refusal};
use super::decide::{answers_at_preview_end, decide};
use super::plan::{Decision, Plan};
use super::tx::Tx;
use super::{Connection, Held, Hold, Next, Stream};
use crate::proxy::upstream::Upstream;
use crate::reply::FaultKind;

/// `n`, except that a kept-alive connection closes when the client asked for that.
fn keep_unless(close_requested: bool, n: Next) -> Next {
    if n == Next::KeepAlive && close_requested {
        Next::Close
    } else {
        n
    }
}

impl<S: Stream> Connection<S> {
    /// Serves one request whose head was just read; how the connection goes on.
    pub(super) async fn transaction(&mut self, head: Box<RequestHead>) -> Next {
        let shared = self.state.clone();
        let settings = &shared.settings;
        let close_requested = head
            .headers
            .get("Connection")
            .is_some_and(|v| v.to_str_lossy().trim().eq_ignore_ascii_case("close"));
        self.begin_request();
        // The exchange read this head and planned it; without its plan (never so), the
        // same reading again.
        let plan = match self.exchange.plan() {
            Some(p) => *p,
            None => RequestPlan::from_head(&head, false)
                .unwrap_or_else(|_| RequestPlan::new(head.method)),
        };
        let mut tx = Tx::new(&shared, head, &plan, self.peer);
        let svc = tx.svc.clone();
        let keep = |n: Next| keep_unless(close_requested, n);
        let method = tx.method;

        if let Some(next) = self.refuse(&mut tx, close_requested).await {
            return next;
        }
        let upstream = svc.upstream.clone().or_else(|| settings.upstream.clone());
        let replay = settings.replay.clone();
        if method == Method::Options {
            if let Some(rp) = &replay {
                let next = self
                    .replay(&mut tx.record, tx.method, tx.body, None, rp)
                    .await;
                self.finish_record(&mut tx);
                return keep(next);
            }
            if let Some(up) = &upstream {
                let next = self.forward_recorded(&mut tx, up, Held::default()).await;
                return keep(next);
            }
            return keep(self.options(&mut tx).await);
        }

        let pending = match self.head_phase(&mut tx, close_requested).await {
            Ok(x) => x,
            Err(next) => return next,
        };
        self.body_phase(&mut tx, pending, close_requested).await
    }

    /// Refuses the request before its body when the service is unknown (`404`), does not
    /// take the method (`405`) or is full (`503`, and the connection closes); `None` when
    /// the request is admitted (and the connection counted against its service).
    pub(super) async fn refuse(&mut self, tx: &mut Tx, close_requested: bool) -> Option<Next> {
        let shared = self.state.clone();
        let service = &tx.req.service;
        let svc = tx.svc.clone();
        let known = shared.service(service).is_some();
        let method = tx.method;
        let error_status = if !known {
            Some(404)
        } else if method != Method::Options && !svc.methods.contains(&method) {
            Some(405)
        } else if !self.attached.contains(service) {
            if shared.attach(&svc) {
                self.attached.push(service.clone());
                None
            } else {
                Some(503)
            }
        } else {
            None
        };
        let status = error_status?;
        let (head, out) = refusal(&shared.istag(), &svc, status, method);
        tx.record.status = Some(status);
        let next = self.answer_then_drain(tx, &out, Some(&head)).await;
        self.finish_record(tx);
        Some(if status == 503 {
            Next::Close
        } else {
            keep_unless(close_requested, next)
        })
    }

    /// The head phase: decides what it can from the head, answers from a recording or
    /// forwards (replay and proxy modes, unless a mounted rule decides), and strikes the
    /// faults that act before the body. `Ok` with the events read ahead (proxy mode, held
    /// for body rules; the plan, if made, is in `tx`) when the body is to be read here; `Err` with how
    /// the connection goes on when the transaction is over.
    pub(super) async fn head_phase(
        &mut self,
        tx: &mut Tx,
        close_requested: bool,
    ) -> Result<VecDeque<Event<RequestHead>>, Next> {
        let shared = self.state.clone();
        let settings = &shared.settings;
        let keep = |n: Next| keep_unless(close_requested, n);
        let has_body = tx.body.is_some();
        let upstream = tx
            .svc
            .upstream
            .clone()
            .or_else(|| settings.upstream.clone());
        let replay = settings.replay.clone();
        let decision = decide(&self.state.settings, tx);
        // A rule whose dialect is a recording answers from it.
        if let Decision::Answer(p) = &decision
            && p.fault.is_none()
            && let Some(rec) = p.reply.recorded.clone()
        {
            tx.record.rule = p.rule;
            let next = self
                .replay(
                    &mut tx.record,
                    tx.method,
                    tx.body,
                    tx.filename.clone(),
                    &rec.0,
                )
                .await;
            self.finish_record(tx);
            return Err(keep(next));
        }
        // Replay and proxy modes: only a mounted rule answers itself.
        if let Some(rp) = &replay
            && !decision.is_rule()
        {
            tx.plan = None;
            let next = self
                .replay(&mut tx.record, tx.method, tx.body, tx.filename.clone(), rp)
                .await;
            self.finish_record(tx);
            return Err(keep(next));
        }
        // Events read ahead for body rules in proxy mode, when a rule then decided: the
        // loop below takes them first (already fed).
        let mut pending = VecDeque::new();
        if let Some(up) = &upstream
            && !decision.is_rule()
        {
            let held = if has_body && matches!(decision, Decision::WaitForRules) {
                match self.hold_for_rules(tx, up.hold_limit()).await {
                    Hold::Decided(events) => Some(events),
                    Hold::Forward(held) => {
                        // The proxy counts the body again as it forwards it.
                        tx.record.body_len = 0;
                        tx.record.preview_bytes = 0;
                        tx.record.complete = false;
                        tx.record.body_sha256.clear();
                        tx.plan = None;
                        let next = self.forward_recorded(tx, up, held).await;
                        return Err(keep(next));
                    }
                    Hold::Done(next) => {
                        self.finish_record(tx);
                        return Err(next);
                    }
                }
            } else {
                None
            };
            let Some(events) = held else {
                tx.plan = None;
                let next = self.forward_recorded(tx, up, Held::default()).await;
                return Err(keep(next));
            };
            pending = events;
        }
        if let Decision::Answer(plan) = &decision
            && let Some(next) = self.fault_before_body(tx, plan, close_requested).await
        {
            return Err(next);
        }
        Ok(pending)
    }

    /// The body phase: reads the body (the events read ahead first), feeding the scan, the
    /// rules and a `200` echo, answers a preview with `100 Continue` or a final answer,
    /// and answers at the end.
    pub(super) async fn body_phase(
        &mut self,
        tx: &mut Tx,
        mut pending: VecDeque<Event<RequestHead>>,
        close_requested: bool,
    ) -> Next {
        let shared = self.state.clone();
        let settings = &shared.settings;
        let keep = |n: Next| keep_unless(close_requested, n);
        let method = tx.method;
        let _svc = tx.svc.clone();
        loop {
            let (next, fed) = match pending.pop_front() {
                Some(ev) => (Ok(ev), true),
                None => (self.next_event().await, false),
            };
            let ev = match next {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::info!(error = ?e, "bad or incomplete request body");
                    // A streaming 200 echo has sent its head: a status now would land in
                    // the middle of its body, so the connection is only reset.
                    if tx.echo_started {
                        tx.record.fault = Some("echo_aborted".to_owned());
                        self.finish_record(tx);
                        return Next::Reset;
                    }
                    if let Some(status) = e.status() {
                        self.send_status(status, method).await;
                        tx.record.status = Some(status);
                    }
                    self.finish_record(tx);
                    return Next::Close;
                }
            };
            match ev {
                Event::Head(_) => unreachable!("one head per message"),
                Event::Data(d) => {
                    if !tx.seen_data {
                        tx.seen_data = true;
                        if let Some(Plan {
                            fault: Some(f @ (FaultKind::ResetMidBody | FaultKind::CloseMidBody)),
                            ..
                        }) = &tx.plan
                        {
                            let f = *f;
                            tx.record.fault = Some(f.name().to_owned());
                            tx.record.rule = tx.plan.as_ref().and_then(|p| p.rule);
                            if !fed {
                                tx.feed(&d, settings.body_capture);
                            }
                            self.finish_record(tx);
                            return if f == FaultKind::ResetMidBody {
                                Next::Reset
                            } else {
                                Next::Close
                            };
                        }
                    }
                    if !fed {
                        tx.feed(&d, settings.body_capture);
                    }
                    if !self.echo_data(tx, d).await {
                        self.finish_record(tx);
                        return Next::Close;
                    }
                }
                Event::PreviewEnd { ieof: true } => {
                    tx.record.ieof = true;
                    tx.in_preview = false;
                }
                Event::PreviewEnd { ieof: false } if fed && tx.record.continued => {
                    // Held for body rules: the client got its 100 Continue then.
                    tx.in_preview = false;
                }
                Event::PreviewEnd { ieof: false } => {
                    if let Some(next) = self.at_preview_end(tx, close_requested).await {
                        return next;
                    }
                }
                Event::End(_) => {
                    if !fed {
                        tx.complete();
                    }
                    let plan = decide(&self.state.settings, tx).or_scan();
                    let next = self.respond(tx, &plan).await;
                    self.finish_record(tx);
                    return keep(next);
                }
            }
        }
    }

    /// The end of a preview without `ieof`: answers now (`Some`, how the connection goes
    /// on) when the answer is known or a fault strikes here, else sends `100 Continue`
    /// (`None`: read the rest of the body).
    pub(super) async fn at_preview_end(
        &mut self,
        tx: &mut Tx,
        close_requested: bool,
    ) -> Option<Next> {
        let keep = |n: Next| keep_unless(close_requested, n);
        let method = tx.method;
        tx.in_preview = false;
        let decision = decide(&self.state.settings, tx);
        if let Decision::Answer(p) = &decision {
            match p.fault {
                Some(FaultKind::CloseAfterPreview) => {
                    tx.note_fault(p);
                    self.finish_record(tx);
                    return Some(Next::Close);
                }
                Some(FaultKind::NeverAnswer) => {
                    let p = p.clone();
                    return Some(self.never_answer(tx, &p).await);
                }
                _ => {}
            }
        }
        if answers_at_preview_end(&decision, tx) {
            let plan = decision.or_scan();
            let next = self.respond(tx, &plan).await;
            self.finish_record(tx);
            return Some(keep(next));
        }
        if let Some(FaultKind::DelayContinue(d)) = tx.plan.as_ref().and_then(|p| p.fault)
            && !self.pause(tx, d).await
        {
            self.finish_record(tx);
            return Some(Next::Close);
        }
        if !self.exchange.may_continue() {
            tracing::warn!("the exchange refused a 100 Continue after a preview");
            self.finish_record(tx);
            return Some(Next::Close);
        }
        let out = continue_bytes(Some(&self.state.istag()), method);
        if !self.write(&out).await || self.exchange.handle_continue_sent().is_err() {
            self.finish_record(tx);
            return Some(Next::Close);
        }
        tx.record.continued = true;
        None
    }

    /// The faults that strike right after the head (`close_immediately`, `reset`,
    /// `never_answer`, `early_response` with a body): `Some` with how the connection goes
    /// on when `plan` has one.
    pub(super) async fn fault_before_body(
        &mut self,
        tx: &mut Tx,
        plan: &Plan,
        close_requested: bool,
    ) -> Option<Next> {
        let has_body = tx.body.is_some();
        match plan.fault {
            Some(FaultKind::CloseImmediately) => {
                tx.note_fault(plan);
                self.finish_record(tx);
                return Some(Next::Close);
            }
            Some(FaultKind::Reset) => {
                tx.note_fault(plan);
                self.finish_record(tx);
                return Some(Next::Reset);
            }
            Some(FaultKind::NeverAnswer) => {
                let plan = plan.clone();
                return Some(self.never_answer(tx, &plan).await);
            }
            Some(FaultKind::EarlyResponse) if has_body => {
                let plan = plan.clone();
                tx.note_fault(&plan);
                let may_204 = self.exchange.may_answer(StatusCode::NO_CONTENT);
                let (_, mut out, body) = build_response(
                    &self.state.istag(),
                    tx,
                    &plan,
                    may_204,
                    &mut self.last_clean,
                );
                out.extend_from_slice(&body);
                let next = self.answer_then_drain(tx, &out, None).await;
                self.finish_record(tx);
                return Some(keep_unless(close_requested, next));
            }
            _ => {}
        }
        None
    }

    /// Forwards the request (after `held`, the events read ahead) and records the
    /// transaction; how the connection goes on.
    pub(super) async fn forward_recorded(
        &mut self,
        tx: &mut Tx,
        up: &Upstream,
        held: Held,
    ) -> Next {
        let head = tx.request_head();
        let next = self
            .forward(&mut tx.record, &head, tx.filename.clone(), up, held)
            .await;
        self.finish_record(tx);
        next
    }

    /// Proxy mode, while a mounted rule waits for the body: reads the request ahead (up
    /// to `limit` body bytes) so that the rule can still answer instead of the upstream.
    /// A preview is answered with the mock's own `100 Continue` when the rule needs more.
    pub(super) async fn hold_for_rules(&mut self, tx: &mut Tx, limit: u64) -> Hold {
        let capture = self.state.settings.body_capture;
        let method = tx.method;
        let mut held = Held::default();
        let mut bytes = 0u64;
        loop {
            if bytes > limit {
                tx.record.note = Some(format!(
                    "forwarded undecided: body rules still waiting after {bytes} bytes (hold limit {limit})"
                ));
                return Hold::Forward(held);
            }
            let ev = match self.next_event().await {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::info!(error = ?e, "bad or incomplete request body");
                    if let Some(status) = e.status() {
                        self.send_status(status, method).await;
                        tx.record.status = Some(status);
                    }
                    return Hold::Done(Next::Close);
                }
            };
            let mut preview_end = false;
            match &ev {
                Event::Data(d) => {
                    tx.feed(d, capture);
                    bytes = bytes.saturating_add(u64::try_from(d.len()).unwrap_or(u64::MAX));
                }
                Event::PreviewEnd { ieof } => {
                    tx.in_preview = false;
                    tx.record.ieof = *ieof;
                    preview_end = !*ieof;
                }
                Event::End(_) => tx.complete(),
                Event::Head(_) => {}
            }
            let end = matches!(ev, Event::End(_));
            held.events.push_back(ev);
            match decide(&self.state.settings, tx) {
                d if d.is_rule() => return Hold::Decided(held.events),
                Decision::Answer(_) | Decision::WaitForMarker => {
                    tx.plan = None;
                    return Hold::Forward(held);
                }
                Decision::WaitForRules if end => return Hold::Forward(held),
                Decision::WaitForRules => {}
            }
            if preview_end {
                // The rule needs more than the preview: the client gets the mock's 100
                // Continue now, the upstream's will not be passed on.
                if !self.exchange.may_continue() {
                    return Hold::Forward(held);
                }
                let out = continue_bytes(None, method);
                if !self.write(&out).await || self.exchange.handle_continue_sent().is_err() {
                    return Hold::Done(Next::Close);
                }
                tx.record.continued = true;
                held.continued = true;
            }
        }
    }
}
