//! One client connection: read a request through icap-proto's [`ServerExchange`], decide,
//! answer.
//!
//! Generic over the stream (mini-redis style), so TCP, TLS and in-memory streams share
//! the code.
//!
//! What is legal is the exchange's business, not this module's: on the legal path (no
//! fault, or a fault that only changes timing) the connection asks it before a `100
//! Continue` or a final answer, tells it what went out, and reuses the connection only when
//! [`ServerExchange::reuse`] says so. The fault injectors keep a raw path: breaking the
//! rules is what they are for.

mod answer;
mod decide;
mod faults;
mod plan;
mod replay;
#[cfg(test)]
mod testing;
mod tx;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use icap_proto::{
    Event, Method, ProtocolError, RequestHead, ResponseHead, ServerExchange, StatusCode, chunked,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use self::answer::{build_response, continue_bytes, echo_head, options_head, refusal};
use self::decide::{answers_at_preview_end, decide};
use self::plan::{Decision, Plan};
use self::tx::Tx;
use crate::dialect;
use crate::mock::{FaultKind, ReplyKind};
use crate::shutdown::Shutdown;
use crate::state::State;

/// A stream the server can serve: TCP, TLS over TCP, or an in-memory duplex.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Makes the next close send a TCP RST (where there is TCP).
    fn reset_on_close(&self) {}
}

impl Stream for TcpStream {
    fn reset_on_close(&self) {
        let _ = self.set_zero_linger();
    }
}

impl Stream for tokio_rustls::server::TlsStream<TcpStream> {
    fn reset_on_close(&self) {
        let _ = self.get_ref().0.set_zero_linger();
    }
}

impl Stream for tokio::io::DuplexStream {}

/// What happens to the connection after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
    Reset,
}

#[derive(Debug)]
pub(crate) enum ConnError {
    /// The client closed in the middle of a message.
    Eof,
    /// The whole-head deadline or the idle timeout passed in the middle of a message.
    Timeout,
    /// Reading failed (a reset, say): nobody is there to answer.
    Io,
    /// The bytes are not a valid ICAP request (or the client closed in the middle of one).
    Protocol(ProtocolError),
}

impl ConnError {
    /// The status that answers this error before the connection closes: what
    /// [`ProtocolError::status_code`] says for a framing error (400, or 501 for an unknown
    /// method and 505 for an unsupported ICAP version), `408` when the client was too slow,
    /// `400` for a message cut short by the client's close. `None` when the connection is
    /// broken and an answer could not arrive.
    fn status(&self) -> Option<u16> {
        match self {
            ConnError::Protocol(e) => Some(e.status_code()),
            ConnError::Timeout => Some(408),
            ConnError::Eof => Some(400),
            ConnError::Io => None,
        }
    }
}

/// `now + d`, or a time so far ahead that it never comes when that overflows (a configured
/// timeout of `u64::MAX` milliseconds, say).
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    // About 30 years: the same "never" tokio uses for an unbounded sleep.
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Request events the connection read ahead (while body rules were deciding), forwarded
/// before anything else is read from the client.
#[derive(Default)]
pub(crate) struct Held {
    pub(crate) events: VecDeque<Event<RequestHead>>,
    /// The connection answered the client's preview with its own `100 Continue` to hold
    /// more of the body: the upstream's `100 Continue` is then not passed on.
    pub(crate) continued: bool,
}

/// What holding a proxied request for body rules came to.
enum Hold {
    /// A rule decided: answered here; the events read ahead were fed to the rules.
    Decided(VecDeque<Event<RequestHead>>),
    /// No rule will decide (or the bound was reached): forward, these events first.
    Forward(Held),
    /// The request broke or the client went away.
    Done(Next),
}

pub(crate) struct Connection<S> {
    pub(crate) stream: S,
    pub(crate) buf: BytesMut,
    peer: Option<SocketAddr>,
    pub(crate) state: Arc<State>,
    shutdown: Arc<Shutdown>,
    attached: Vec<String>,
    /// The current request's exchange; a new one per request, on the same buffer.
    pub(crate) exchange: ServerExchange,
}

const READ_RESERVE: usize = 64 * 1024;

impl<S: Stream> Connection<S> {
    pub(crate) fn new(
        stream: S,
        peer: Option<SocketAddr>,
        state: Arc<State>,
        shutdown: Arc<Shutdown>,
    ) -> Self {
        let limits = state.settings.limits;
        Connection {
            stream,
            buf: BytesMut::with_capacity(READ_RESERVE),
            peer,
            state,
            shutdown,
            attached: Vec::new(),
            exchange: ServerExchange::new(limits),
        }
    }

    pub(crate) async fn run(mut self) {
        let next = loop {
            let head = match self.read_head().await {
                Ok(Some(h)) => h,
                Ok(None) => break Next::Close,
                Err(e) => {
                    tracing::info!(peer = ?self.peer, error = ?e, "bad or incomplete request head");
                    if let Some(status) = e.status() {
                        self.send_status(status, Method::Options).await;
                    }
                    break Next::Close;
                }
            };
            match self.transaction(head).await {
                Next::KeepAlive => {}
                other => break other,
            }
        };
        if next == Next::Reset {
            self.stream.reset_on_close();
        } else {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
        }
        for s in &self.attached {
            self.state.detach(s);
        }
    }

    async fn read_more(&mut self, deadline: Instant) -> Result<usize, ConnError> {
        if self.buf.capacity() - self.buf.len() < READ_RESERVE / 4 {
            self.buf.reserve(READ_RESERVE);
        }
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(ConnError::Timeout),
            Ok(Err(_)) => Err(ConnError::Io),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// Waits until shutdown begins.
    /// Reads and drops whatever comes, answering nothing, until the client gives up, the
    /// idle timeout passes or the server shuts down; then the connection closes.
    pub(crate) async fn stay_silent(&mut self) -> Next {
        let shared = self.state.clone();
        let shutdown = self.shutdown.clone();
        let idle = deadline_after(shared.settings.idle_timeout);
        let mut sink = [0u8; 4096];
        loop {
            tokio::select! {
                r = tokio::time::timeout_at(idle, self.stream.read(&mut sink)) => match r {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                },
                () = shutdown.wait() => break,
            }
        }
        Next::Close
    }

    async fn read_head(&mut self) -> Result<Option<RequestHead>, ConnError> {
        self.exchange = ServerExchange::new(self.state.settings.limits);
        if self.buf.is_empty() {
            let shared = self.state.clone();
            let shutdown = self.shutdown.clone();
            let idle = deadline_after(shared.settings.idle_timeout);
            tokio::select! {
                r = self.read_more(idle) => match r {
                    Ok(0) | Err(ConnError::Timeout) => return Ok(None),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                },
                () = shutdown.wait() => return Ok(None),
            }
        }
        // The whole-head deadline: from the first byte of the request to the end of its
        // head, embedded HTTP heads included, however the bytes trickle in.
        let deadline = deadline_after(self.state.settings.header_read_timeout);
        loop {
            match self.exchange.poll_event(&mut self.buf) {
                Err(e) => return Err(ConnError::Protocol(e)),
                Ok(Some(Event::Head(h))) => return Ok(Some(h)),
                Ok(Some(_)) => unreachable!("a fresh exchange starts with a head"),
                Ok(None) => {}
            }
            if self.read_more(deadline).await? == 0 {
                return match self.exchange.handle_eof() {
                    Ok(()) => Ok(None),
                    Err(e) => Err(ConnError::Protocol(e)),
                };
            }
        }
    }

    pub(crate) async fn next_event(&mut self) -> Result<Event<RequestHead>, ConnError> {
        loop {
            if let Some(ev) = self
                .exchange
                .poll_event(&mut self.buf)
                .map_err(ConnError::Protocol)?
            {
                return Ok(ev);
            }
            let deadline = deadline_after(self.state.settings.idle_timeout);
            if self.read_more(deadline).await? == 0 {
                return Err(match self.exchange.handle_eof() {
                    Err(e) => ConnError::Protocol(e),
                    Ok(()) => ConnError::Eof,
                });
            }
        }
    }

    /// Tells the exchange that `head` went out as the final answer on the legal path. An
    /// answer it refuses was still sent (the rule asked for it); the connection closes
    /// after it.
    fn note_response(&mut self, tx: &mut Tx, head: &ResponseHead) {
        if let Err(e) = self.exchange.handle_response_sent(head) {
            tracing::info!(status = head.status.as_u16(), error = %e, "answer outside the exchange rules; closing after it");
            tx.off_rules = true;
        }
    }

    /// Tells the exchange the final answer is completely written; whether the connection
    /// may read the next request.
    fn note_response_end(&mut self, tx: &Tx, wrote: bool) -> Next {
        if !wrote || tx.off_rules || self.exchange.handle_response_end().is_err() {
            return Next::Close;
        }
        if self.exchange.reuse().is_yes() {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    pub(crate) async fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok()
    }

    /// Answers a broken request with a bare status and `Connection: close`; the caller
    /// closes the connection next.
    pub(crate) async fn send_status(&mut self, status: u16, method: Method) {
        let istag = self.state.istag();
        let mut head = dialect::base(status, &istag, &[]);
        let _ = head.headers.append("Connection", "close");
        let mut out = BytesMut::new();
        if head.encode(method, &mut out).is_ok() {
            let _ = self.write(&out).await;
        }
    }

    fn finish_record(&self, tx: &mut Tx) {
        let r = &tx.record;
        tracing::info!(
            id = r.id,
            peer = ?r.peer,
            method = r.method.as_str(),
            service = %r.service,
            body_len = r.body_len,
            preview = ?r.preview,
            ieof = r.ieof,
            status = ?r.status,
            threat = ?r.threat,
            fault = ?r.fault,
            rule = ?r.rule,
            "transaction"
        );
        self.state.record(tx.record.clone());
    }

    async fn transaction(&mut self, head: RequestHead) -> Next {
        let shared = self.state.clone();
        let settings = &shared.settings;
        let service = head.uri.service().to_owned();
        let has_body = head.body.is_some();
        let close_requested = head
            .headers
            .get("Connection")
            .is_some_and(|v| v.to_str_lossy().trim().eq_ignore_ascii_case("close"));
        let mut tx = Tx::new(&shared, head, self.peer);
        let svc = tx.svc.clone();
        let keep = |n: Next| {
            if n == Next::KeepAlive && close_requested {
                Next::Close
            } else {
                n
            }
        };

        let known = shared.service(&service).is_some();
        let method = tx.request_head.method;
        let error_status = if !known {
            Some(404)
        } else if method != Method::Options && !svc.methods.contains(&method) {
            Some(405)
        } else if !self.attached.contains(&service) {
            if shared.attach(&svc) {
                self.attached.push(service.clone());
                None
            } else {
                Some(503)
            }
        } else {
            None
        };
        if let Some(status) = error_status {
            let (head, out) = refusal(&shared.istag(), &svc, status, method);
            tx.record.status = Some(status);
            let next = self.answer_then_drain(&mut tx, &out, Some(&head)).await;
            self.finish_record(&mut tx);
            return if status == 503 {
                Next::Close
            } else {
                keep(next)
            };
        }

        let upstream = svc.upstream.clone().or_else(|| settings.upstream.clone());
        let replay = settings.replay.clone();
        if method == Method::Options {
            if let Some(rp) = &replay {
                let next = self
                    .replay(&mut tx.record, &tx.request_head, None, rp)
                    .await;
                self.finish_record(&mut tx);
                return keep(next);
            }
            if let Some(up) = &upstream {
                let next = self
                    .forward(
                        &mut tx.record,
                        &tx.request_head,
                        tx.req.filename(),
                        up,
                        Held::default(),
                    )
                    .await;
                self.finish_record(&mut tx);
                return keep(next);
            }
            return keep(self.options(&mut tx).await);
        }

        // Head phase.
        let decision = decide(&self.state.settings, &mut tx);
        // A rule whose dialect is a recording answers from it.
        if let Decision::Answer(p) = &decision
            && p.fault.is_none()
            && let Some(rec) = p.reply.recorded.clone()
        {
            tx.record.rule = p.rule;
            let next = self
                .replay(&mut tx.record, &tx.request_head, tx.req.filename(), &rec.0)
                .await;
            self.finish_record(&mut tx);
            return keep(next);
        }
        // Replay and proxy modes: only a mounted rule answers itself.
        if let Some(rp) = &replay
            && !decision.is_rule()
        {
            tx.plan = None;
            let next = self
                .replay(&mut tx.record, &tx.request_head, tx.req.filename(), rp)
                .await;
            self.finish_record(&mut tx);
            return keep(next);
        }
        // Events read ahead for body rules in proxy mode, when a rule then decided: the
        // loop below takes them first (already fed).
        let mut pending = VecDeque::new();
        if let Some(up) = &upstream
            && !decision.is_rule()
        {
            let held = if has_body && matches!(decision, Decision::WaitForRules) {
                match self.hold_for_rules(&mut tx, up.hold_limit()).await {
                    Hold::Decided(events) => Some(events),
                    Hold::Forward(held) => {
                        // The proxy counts the body again as it forwards it.
                        tx.record.body_len = 0;
                        tx.record.preview_bytes = 0;
                        tx.record.complete = false;
                        tx.record.body_sha256.clear();
                        tx.plan = None;
                        let next = self
                            .forward(
                                &mut tx.record,
                                &tx.request_head,
                                tx.req.filename(),
                                up,
                                held,
                            )
                            .await;
                        self.finish_record(&mut tx);
                        return keep(next);
                    }
                    Hold::Done(next) => {
                        self.finish_record(&mut tx);
                        return next;
                    }
                }
            } else {
                None
            };
            let Some(events) = held else {
                tx.plan = None;
                let next = self
                    .forward(
                        &mut tx.record,
                        &tx.request_head,
                        tx.req.filename(),
                        up,
                        Held::default(),
                    )
                    .await;
                self.finish_record(&mut tx);
                return keep(next);
            };
            pending = events;
        }
        if let Decision::Answer(plan) = &decision {
            match plan.fault {
                Some(FaultKind::CloseImmediately) => {
                    tx.note_fault(plan);
                    self.finish_record(&mut tx);
                    return Next::Close;
                }
                Some(FaultKind::Reset) => {
                    tx.note_fault(plan);
                    self.finish_record(&mut tx);
                    return Next::Reset;
                }
                Some(FaultKind::NeverAnswer) => {
                    let plan = plan.clone();
                    return self.never_answer(&mut tx, &plan).await;
                }
                Some(FaultKind::EarlyResponse) if has_body => {
                    let plan = plan.clone();
                    tx.note_fault(&plan);
                    let may_204 = self.exchange.may_answer(StatusCode::NO_CONTENT);
                    let (_, mut out, body) =
                        build_response(&shared.istag(), &mut tx, &plan, may_204);
                    out.extend_from_slice(&body);
                    let next = self.answer_then_drain(&mut tx, &out, None).await;
                    self.finish_record(&mut tx);
                    return keep(next);
                }
                _ => {}
            }
        }

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
                        self.finish_record(&mut tx);
                        return Next::Reset;
                    }
                    if let Some(status) = e.status() {
                        self.send_status(status, method).await;
                        tx.record.status = Some(status);
                    }
                    self.finish_record(&mut tx);
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
                            self.finish_record(&mut tx);
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
                    if !self.echo_data(&mut tx, d).await {
                        self.finish_record(&mut tx);
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
                    tx.in_preview = false;
                    let decision = decide(&self.state.settings, &mut tx);
                    if let Decision::Answer(p) = &decision {
                        match p.fault {
                            Some(FaultKind::CloseAfterPreview) => {
                                tx.note_fault(p);
                                self.finish_record(&mut tx);
                                return Next::Close;
                            }
                            Some(FaultKind::NeverAnswer) => {
                                let p = p.clone();
                                return self.never_answer(&mut tx, &p).await;
                            }
                            _ => {}
                        }
                    }
                    if answers_at_preview_end(&decision, &tx) {
                        let plan = decision.or_scan();
                        let next = self.respond(&mut tx, &plan).await;
                        self.finish_record(&mut tx);
                        return keep(next);
                    }
                    if let Some(FaultKind::DelayContinue(d)) =
                        tx.plan.as_ref().and_then(|p| p.fault)
                    {
                        tokio::time::sleep(d).await;
                    }
                    if !self.exchange.may_continue() {
                        tracing::warn!("the exchange refused a 100 Continue after a preview");
                        self.finish_record(&mut tx);
                        return Next::Close;
                    }
                    let out = continue_bytes(Some(&shared.istag()), method);
                    if !self.write(&out).await || self.exchange.handle_continue_sent().is_err() {
                        self.finish_record(&mut tx);
                        return Next::Close;
                    }
                    tx.record.continued = true;
                }
                Event::End(_) => {
                    if !fed {
                        tx.complete();
                    }
                    let plan = decide(&self.state.settings, &mut tx).or_scan();
                    let next = self.respond(&mut tx, &plan).await;
                    self.finish_record(&mut tx);
                    return keep(next);
                }
            }
        }
    }

    /// Proxy mode, while a mounted rule waits for the body: reads the request ahead (up
    /// to `limit` body bytes) so that the rule can still answer instead of the upstream.
    /// A preview is answered with the mock's own `100 Continue` when the rule needs more.
    async fn hold_for_rules(&mut self, tx: &mut Tx, limit: u64) -> Hold {
        let capture = self.state.settings.body_capture;
        let method = tx.request_head.method;
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

    async fn options(&mut self, tx: &mut Tx) -> Next {
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
    async fn answer_then_drain(
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
    async fn never_answer(&mut self, tx: &mut Tx, plan: &Plan) -> Next {
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
    async fn echo_data(&mut self, tx: &mut Tx, d: Bytes) -> bool {
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
        if let Some(FaultKind::Delay(delay)) = tx.plan.as_ref().and_then(|p| p.fault) {
            tokio::time::sleep(delay).await;
        }
        let mut out = BytesMut::new();
        let head = echo_head(&self.state.istag(), tx);
        head.encode(tx.request_head.method, &mut out)
            .expect("an echo of a decoded head always encodes");
        chunked::encode_chunk(&tx.echo, &mut out);
        tx.echo = BytesMut::new();
        tx.echo_started = true;
        tx.record.status = Some(200);
        let ok = self.write(&out).await;
        self.note_response(tx, &head);
        ok
    }

    /// Sends the final answer, applying the planned fault.
    async fn respond(&mut self, tx: &mut Tx, plan: &Plan) -> Next {
        tx.record.rule = plan.rule;
        tx.record.fault = plan.fault.map(|f| f.name().to_owned());
        match plan.fault {
            Some(FaultKind::Delay(d)) if !tx.echo_started => tokio::time::sleep(d).await,
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
        let may_204 = self.exchange.may_answer(StatusCode::NO_CONTENT);
        let (response, mut head, body) = build_response(&self.state.istag(), tx, plan, may_204);
        match plan.fault {
            Some(FaultKind::TruncatedResponse) => {
                let _ = self.write(faults::truncated_response(&head)).await;
                Next::Close
            }
            Some(FaultKind::CloseMidResponse) => {
                let _ = self.write(&faults::close_mid_response(head, &body)).await;
                Next::Close
            }
            Some(FaultKind::BadChunkSize) => {
                let _ = self.write(&faults::bad_chunk_size(head, &body)).await;
                Next::Close
            }
            Some(FaultKind::MissingTerminalChunk) => {
                if !self
                    .write(&faults::missing_terminal_chunk(head, &body))
                    .await
                {
                    return Next::Close;
                }
                self.stay_silent().await
            }
            Some(FaultKind::WrongEncapsulated) => {
                if self.write(&faults::wrong_encapsulated(&head, &body)).await {
                    Next::KeepAlive
                } else {
                    Next::Close
                }
            }
            Some(FaultKind::SlowBody(d)) => {
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
                head.extend_from_slice(&body);
                if self.write(&head).await {
                    Next::KeepAlive
                } else {
                    Next::Close
                }
            }
            // The legal path (no fault, or one that only changed the timing).
            _ => {
                head.extend_from_slice(&body);
                let ok = self.write(&head).await;
                self.note_response(tx, &response);
                self.note_response_end(tx, ok)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::deadline_after;
    use std::time::Duration;

    #[tokio::test]
    async fn deadlines_saturate_instead_of_overflowing() {
        let now = tokio::time::Instant::now();
        assert!(deadline_after(Duration::MAX) > now + Duration::from_secs(365 * 86_400));
        let d = deadline_after(Duration::from_secs(5));
        assert!(d >= now + Duration::from_secs(5));
        assert!(d < now + Duration::from_secs(6));
    }
}
