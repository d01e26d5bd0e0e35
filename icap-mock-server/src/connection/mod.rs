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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use icap_proto::{
    BodyKind, Event, Method, OptionsResponse, ProtocolError, RequestHead, ResponseHead,
    ServerExchange, StatusCode, chunked,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

mod replay;

use crate::dialect;
use crate::journal::{Transaction, compact_head, hex};
use crate::mock::{Action, FaultKind, Selection, Selector, Verdict, VerdictKind};
use crate::request::Request;
use crate::rng::splitmix64;
use crate::scan::Scanner;
use crate::service::{Dialect, ServiceConfig, Signature, glob_match};
use crate::shutdown::Shutdown;
use crate::state::{Compiled, FAULT_MARKER, State, VERDICT_MARKER};

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

/// How a transaction will be answered, once known.
#[derive(Debug, Clone)]
struct Plan {
    fault: Option<FaultKind>,
    verdict: Verdict,
    rule: Option<u64>,
}

impl Plan {
    fn scan() -> Self {
        Plan {
            fault: None,
            verdict: Verdict::scan(),
            rule: None,
        }
    }
}

enum Decision {
    Decided(Plan),
    /// A rule of higher precedence waits for more of the body.
    WaitRules,
    /// No rule applies, but a trigger marker may still come in the body.
    WaitTriggers,
}

/// The outcome of looking for per-request triggers.
enum Trigger {
    Found(Plan),
    /// None, and none can come any more.
    Absent,
    /// The body may still carry a marker.
    Wait,
}

impl From<Option<Plan>> for Trigger {
    /// A marker with an unknown token counts as no trigger.
    fn from(p: Option<Plan>) -> Self {
        p.map_or(Trigger::Absent, Trigger::Found)
    }
}

/// A verdict with the scan resolved.
enum Resolved {
    Clean,
    Infected(String),
    Error(u16, String),
    Status(u16),
}

/// The state of one transaction.
#[allow(clippy::struct_excessive_bools)] // independent facts of one message
struct Tx {
    record: Transaction,
    req: Request,
    svc: ServiceConfig,
    snap: Arc<Compiled>,
    scanner: Scanner,
    /// `None` when neither the journal nor a signature needs the body's SHA-256.
    hasher: Option<Sha256>,
    capture: BytesMut,
    /// The message body kept for a `200` echo (until the echo starts streaming).
    echo: BytesMut,
    echo_wanted: bool,
    echo_started: bool,
    in_preview: bool,
    plan: Option<Plan>,
    selector: Selector,
    request_head: RequestHead,
    seen_data: bool,
    /// A legal-path answer the exchange refused (a rule's `Verdict::status(299)`, say): it
    /// was sent as asked, and the connection closes after it.
    off_rules: bool,
}

impl Tx {
    fn feed(&mut self, d: &Bytes, capture_max: usize) {
        self.scanner.feed(&self.snap.patterns, d);
        if let Some(h) = &mut self.hasher {
            h.update(d);
        }
        let n = u64::try_from(d.len()).unwrap_or(u64::MAX);
        self.record.body_len = self.record.body_len.saturating_add(n);
        if self.in_preview {
            self.record.preview_bytes = self.record.preview_bytes.saturating_add(n);
        }
        if self.capture.len() < capture_max {
            let n = (capture_max - self.capture.len()).min(d.len());
            self.capture.extend_from_slice(&d[..n]);
        }
    }

    fn refresh(&mut self) {
        self.req.body_len = self.record.body_len;
        self.req.body = Bytes::copy_from_slice(&self.capture);
        self.req.body_truncated = (self.capture.len() as u64) < self.record.body_len;
        let found: Vec<Vec<u8>> = self
            .snap
            .plain
            .iter()
            .filter(|p| {
                self.snap
                    .patterns
                    .index_of(p)
                    .is_some_and(|i| self.scanner.found(i).is_some())
            })
            .cloned()
            .collect();
        self.req.found = Arc::new(found);
    }

    fn complete(&mut self) {
        self.scanner.finish(&self.snap.patterns);
        self.req.body_complete = true;
        self.record.complete = true;
        if let Some(h) = self.hasher.take() {
            self.record.body_sha256 = hex(&h.finalize());
        }
    }

    fn dialect(&self, plan: &Plan) -> Dialect {
        plan.verdict.dialect.unwrap_or(self.svc.dialect)
    }

    /// What the service's signatures found so far (SHA-256 only once complete).
    fn scan_threat(&self, dialect: Dialect) -> Option<String> {
        if self.svc.eicar && self.scanner.found(self.snap.eicar).is_some() {
            return Some(dialect.eicar_name().to_owned());
        }
        for sig in &self.svc.signatures {
            let hit = match sig {
                Signature::Bytes { pattern, .. } => self
                    .snap
                    .patterns
                    .index_of(pattern.as_bytes())
                    .is_some_and(|i| self.scanner.found(i).is_some()),
                Signature::Sha256 { sha256, .. } => {
                    self.record.complete && self.record.body_sha256.eq_ignore_ascii_case(sha256)
                }
                Signature::FileName { filename, .. } => self
                    .req
                    .filename()
                    .is_some_and(|n| glob_match(filename, &n)),
            };
            if hit {
                return Some(sig.name().to_owned());
            }
        }
        None
    }

    fn resolve(&self, plan: &Plan) -> Resolved {
        match &plan.verdict.kind {
            VerdictKind::Scan => {
                if plan.fault == Some(FaultKind::EarlyResponse) && !self.record.complete {
                    return Resolved::Infected("Mock.EarlyResponse".into());
                }
                match self.scan_threat(self.dialect(plan)) {
                    Some(t) => Resolved::Infected(t),
                    None => Resolved::Clean,
                }
            }
            VerdictKind::Clean => Resolved::Clean,
            VerdictKind::Infected(t) => Resolved::Infected(t.clone()),
            VerdictKind::Error { status, code } => Resolved::Error(*status, code.clone()),
            VerdictKind::Status(s) => Resolved::Status(*s),
        }
    }
}

/// Faults that need a response body to break.
fn breaks_body(f: Option<FaultKind>) -> bool {
    matches!(
        f,
        Some(
            FaultKind::BadChunkSize
                | FaultKind::MissingTerminalChunk
                | FaultKind::WrongEncapsulated
                | FaultKind::CloseMidResponse
        )
    )
}

/// Parses a trigger token: `name[:arg]` for faults.
fn fault_trigger(token: &str, settings_delay: Duration) -> Option<Plan> {
    let (name, arg) = token.split_once(':').unwrap_or((token, ""));
    let num = arg.parse::<u64>().ok();
    let kind = match name {
        "slow" => FaultKind::Delay(num.map_or(settings_delay, Duration::from_millis)),
        _ => FaultKind::parse(name, num, num.and_then(|n| u16::try_from(n).ok()))?,
    };
    Some(Plan {
        fault: Some(kind),
        verdict: Verdict::scan(),
        rule: None,
    })
}

/// Parses a verdict trigger: `clean`, `infected[:Name]`, `error[:code[:status]]`,
/// `status:NNN`.
fn verdict_trigger(token: &str) -> Option<Plan> {
    let mut parts = token.splitn(2, ':');
    let kind = parts.next()?;
    let rest = parts.next().filter(|s| !s.is_empty());
    let verdict = match kind {
        "clean" => Verdict::clean(),
        "infected" => Verdict::infected(rest.unwrap_or("Mock.Trigger")),
        "error" => {
            let (code, status) = match rest {
                Some(r) => match r.split_once(':') {
                    Some((c, s)) => (c, s.parse().unwrap_or(500)),
                    None => (r, 500),
                },
                None => ("internal_error", 500),
            };
            Verdict::error(status, code)
        }
        "status" => Verdict::status(rest?.parse().ok()?),
        _ => return None,
    };
    Some(Plan {
        fault: None,
        verdict,
        rule: None,
    })
}

/// File-name suffix triggers.
fn filename_trigger(name: &str, delay: Duration) -> Option<Plan> {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.')?.1;
    let (fault, verdict) = match ext {
        "timeout" => (Some(FaultKind::NeverAnswer), Verdict::scan()),
        "slow" => (Some(FaultKind::Delay(delay)), Verdict::scan()),
        "reset" => (Some(FaultKind::Reset), Verdict::scan()),
        "garbage" => (Some(FaultKind::Garbage), Verdict::scan()),
        "infected" => (None, Verdict::infected("Mock.Trigger.FileName")),
        "encrypted" => (None, Verdict::error(500, "password_protected")),
        "unavailable" => (None, Verdict::status(503)),
        _ => return None,
    };
    Some(Plan {
        fault,
        verdict,
        rule: None,
    })
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
        let preview = head.preview().ok().flatten().filter(|_| has_body);
        let close_requested = head
            .headers
            .get("Connection")
            .is_some_and(|v| v.to_str_lossy().trim().eq_ignore_ascii_case("close"));
        let snap = shared.snapshot();
        let svc = shared
            .service(&service)
            .cloned()
            .unwrap_or_else(|| ServiceConfig::new(&service));
        // The journal outlives the connection: its copy of the head must not keep the
        // connection's read buffer alive.
        let kept = compact_head(&head);
        let record = Transaction {
            id: shared.next_tx_id(),
            peer: self.peer,
            method: head.method,
            service: service.clone(),
            uri: String::from_utf8_lossy(head.uri.as_bytes()).into_owned(),
            icap_headers: kept.headers,
            http_request: kept.http_request,
            http_response: kept.http_response,
            body_len: 0,
            body_sha256: String::new(),
            preview,
            preview_bytes: 0,
            ieof: false,
            allow_204: head.allows_204(),
            status: None,
            continued: false,
            threat: None,
            fault: None,
            rule: None,
            complete: false,
            note: None,
        };
        let req = Request {
            method: head.method,
            service: service.clone(),
            uri: record.uri.clone(),
            icap_headers: head.headers.clone(),
            http_request: head.http_request.clone(),
            http_response: head.http_response.clone(),
            preview,
            body_len: 0,
            body: Bytes::new(),
            body_truncated: false,
            body_complete: !has_body,
            peer: self.peer,
            found: Arc::new(Vec::new()),
        };
        let mut tx = Tx {
            record,
            req,
            echo_wanted: has_body && !head.allows_204(),
            svc: svc.clone(),
            scanner: Scanner::new(&snap.patterns),
            selector: Selector::new(snap.rules.clone()),
            snap,
            hasher: (shared.settings.body_digest
                || svc
                    .signatures
                    .iter()
                    .any(|s| matches!(s, Signature::Sha256 { .. })))
            .then(Sha256::new),
            capture: BytesMut::new(),
            echo: BytesMut::new(),
            echo_started: false,
            in_preview: preview.is_some(),
            plan: None,
            request_head: head,
            seen_data: false,
            off_rules: false,
        };
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
            let mut head = dialect::base(status, &shared.istag(), &[]);
            dialect::frame_bodyless(svc.dialect, &mut head);
            if status == 405 {
                let allowed: Vec<&str> = svc.methods.iter().map(|m| m.as_str()).collect();
                let _ = head
                    .headers
                    .append("Allow", format!("OPTIONS, {}", allowed.join(", ")).as_str());
            }
            let mut out = BytesMut::new();
            head.encode(method, &mut out)
                .expect("a bare status head always encodes");
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
        let decision = self.decide(&mut tx);
        // A rule whose dialect is a recording answers from it.
        if let Decision::Decided(p) = &decision
            && p.fault.is_none()
            && let Some(rec) = p.verdict.recorded.clone()
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
            && !matches!(&decision, Decision::Decided(p) if p.rule.is_some())
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
            && !matches!(&decision, Decision::Decided(p) if p.rule.is_some())
        {
            let held = if has_body && matches!(decision, Decision::WaitRules) {
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
        if let Decision::Decided(plan) = &decision {
            match plan.fault {
                Some(FaultKind::CloseImmediately) => {
                    Self::note_fault(&mut tx, plan);
                    self.finish_record(&mut tx);
                    return Next::Close;
                }
                Some(FaultKind::Reset) => {
                    Self::note_fault(&mut tx, plan);
                    self.finish_record(&mut tx);
                    return Next::Reset;
                }
                Some(FaultKind::NeverAnswer) => {
                    let plan = plan.clone();
                    return self.never_answer(&mut tx, &plan).await;
                }
                Some(FaultKind::EarlyResponse) if has_body => {
                    let plan = plan.clone();
                    Self::note_fault(&mut tx, &plan);
                    let (_, mut out, body) = self.build_response(&mut tx, &plan);
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
                    let decision = self.decide(&mut tx);
                    let answer_now = match &decision {
                        Decision::Decided(p) => match p.fault {
                            Some(FaultKind::CloseAfterPreview) => {
                                Self::note_fault(&mut tx, p);
                                self.finish_record(&mut tx);
                                return Next::Close;
                            }
                            Some(FaultKind::NeverAnswer) => {
                                let p = p.clone();
                                return self.never_answer(&mut tx, &p).await;
                            }
                            _ => {
                                !matches!(p.verdict.kind, VerdictKind::Scan)
                                    || tx.scan_threat(tx.dialect(p)).is_some()
                            }
                        },
                        Decision::WaitTriggers => tx.scan_threat(svc.dialect).is_some(),
                        Decision::WaitRules => false,
                    };
                    if answer_now {
                        let plan = match decision {
                            Decision::Decided(p) => p,
                            _ => Plan::scan(),
                        };
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
                    let mut out = BytesMut::new();
                    let mut cont = ResponseHead::new(StatusCode::CONTINUE);
                    cont.headers
                        .append("ISTag", format!("\"{}\"", shared.istag()).as_str())
                        .expect("ISTag is a valid header value");
                    cont.encode(method, &mut out)
                        .expect("100 Continue always encodes");
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
                    let plan = match self.decide(&mut tx) {
                        Decision::Decided(p) => p,
                        _ => Plan::scan(),
                    };
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
            match self.decide(tx) {
                Decision::Decided(p) if p.rule.is_some() => return Hold::Decided(held.events),
                Decision::Decided(_) | Decision::WaitTriggers => {
                    tx.plan = None;
                    return Hold::Forward(held);
                }
                Decision::WaitRules if end => return Hold::Forward(held),
                Decision::WaitRules => {}
            }
            if preview_end {
                // The rule needs more than the preview: the client gets the mock's 100
                // Continue now, the upstream's will not be passed on.
                if !self.exchange.may_continue() {
                    return Hold::Forward(held);
                }
                let mut out = BytesMut::new();
                ResponseHead::new(StatusCode::CONTINUE)
                    .encode(method, &mut out)
                    .expect("100 Continue always encodes");
                if !self.write(&out).await || self.exchange.handle_continue_sent().is_err() {
                    return Hold::Done(Next::Close);
                }
                tx.record.continued = true;
                held.continued = true;
            }
        }
    }

    fn note_fault(tx: &mut Tx, plan: &Plan) {
        tx.record.fault = plan.fault.map(|f| f.name().to_owned());
        tx.record.rule = plan.rule;
    }

    /// Decides how to answer, if it can be known yet.
    fn decide(&self, tx: &mut Tx) -> Decision {
        if let Some(p) = &tx.plan {
            return Decision::Decided(p.clone());
        }
        tx.refresh();
        let plan = match tx.selector.select(&tx.req) {
            Selection::Undecided => return Decision::WaitRules,
            Selection::Rule(rule) => {
                let action = rule.mock.responder.respond(&tx.req);
                let (fault, verdict) = match action {
                    Action::Verdict(v) => (None, v),
                    Action::Fault(f) => (Some(f.kind), f.then),
                };
                Plan {
                    fault,
                    verdict,
                    rule: Some(rule.id),
                }
            }
            Selection::None => {
                if self.state.settings.triggers {
                    match self.trigger(tx) {
                        Trigger::Found(p) => p,
                        Trigger::Absent => Plan::scan(),
                        Trigger::Wait => return Decision::WaitTriggers,
                    }
                } else {
                    Plan::scan()
                }
            }
        };
        tx.plan = Some(plan.clone());
        Decision::Decided(plan)
    }

    /// Which trigger applies, if it can be known yet.
    fn trigger(&self, tx: &Tx) -> Trigger {
        let delay = self.state.settings.trigger_delay;
        let scanner = &tx.scanner;
        if let Some(f) = scanner.found(tx.snap.fault_marker) {
            return Trigger::from(fault_trigger(&String::from_utf8_lossy(&f.captured), delay));
        }
        if let Some(f) = scanner.found(tx.snap.verdict_marker) {
            return Trigger::from(verdict_trigger(&String::from_utf8_lossy(&f.captured)));
        }
        let url = tx.req.url().map(|u| crate::request::percent_decode(&u));
        for text in url.iter().chain(tx.req.filename().iter()) {
            for (marker, fault) in [(FAULT_MARKER, true), (VERDICT_MARKER, false)] {
                let marker = std::str::from_utf8(marker).expect("markers are ASCII");
                if let Some(i) = text.find(marker) {
                    let token: String = text[i + marker.len()..]
                        .chars()
                        .take_while(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '=' | '-')
                        })
                        .collect();
                    return Trigger::from(if fault {
                        fault_trigger(&token, delay)
                    } else {
                        verdict_trigger(&token)
                    });
                }
            }
        }
        if let Some(p) = tx.req.filename().and_then(|n| filename_trigger(&n, delay)) {
            return Trigger::Found(p);
        }
        if tx.req.body_complete {
            Trigger::Absent
        } else {
            Trigger::Wait
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
        let svc = &tx.svc;
        let mut o = OptionsResponse::new(svc.methods.clone(), &self.state.istag());
        o.service = Some(svc.description.clone());
        o.max_connections = svc.max_connections;
        o.options_ttl = svc.options_ttl;
        o.preview = svc.preview;
        o.transfer_preview.clone_from(&svc.transfer_preview);
        o.transfer_ignore.clone_from(&svc.transfer_ignore);
        o.transfer_complete.clone_from(&svc.transfer_complete);
        o.allow_204 = svc.allow_204;
        o.service_id = Some("icap-mock-server".to_owned());
        let _ = o.headers.append(
            "X-Include",
            "X-Client-IP, X-Client-Username, X-Authenticated-User",
        );
        let mut out = BytesMut::new();
        let head = o
            .to_head()
            .unwrap_or_else(|_| dialect::base(500, &self.state.istag(), &[]));
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
        Self::note_fault(tx, plan);
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
        let can_stream = match &tx.plan {
            None => true,
            Some(p) => {
                matches!(p.verdict.kind, VerdictKind::Scan | VerdictKind::Clean)
                    && matches!(
                        p.fault,
                        None | Some(
                            FaultKind::Delay(_)
                                | FaultKind::SlowBody(_)
                                | FaultKind::DelayContinue(_)
                        )
                    )
            }
        } && tx.scan_threat(tx.svc.dialect).is_none();
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
        let head = self.echo_head(tx);
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

    fn echo_head(&self, tx: &Tx) -> ResponseHead {
        let istag = self.state.istag();
        let extra = tx
            .plan
            .as_ref()
            .map(|p| p.verdict.headers.clone())
            .unwrap_or_default();
        let mut head = dialect::base(200, &istag, &extra);
        let dialect = tx.plan.as_ref().map_or(tx.svc.dialect, |p| tx.dialect(p));
        dialect::clean_headers(dialect, &mut head);
        let rh = &tx.request_head;
        if rh.method == Method::Reqmod {
            head.http_request.clone_from(&rh.http_request);
            head.body = rh.body.filter(|b| *b == BodyKind::Request);
        } else {
            head.http_response.clone_from(&rh.http_response);
            head.body = rh.body.filter(|b| *b == BodyKind::Response);
        }
        head
    }

    /// Builds the final answer: head bytes and body bytes (chunked, last chunk included).
    fn build_response(&self, tx: &mut Tx, plan: &Plan) -> (ResponseHead, BytesMut, BytesMut) {
        let istag = self.state.istag();
        let dialect = tx.dialect(plan);
        let extra = &plan.verdict.headers;
        let method = tx.request_head.method;
        let mut resolved = tx.resolve(plan);
        let filename = tx.req.filename();
        if let Some(FaultKind::UnknownStatus(code)) = plan.fault {
            resolved = Resolved::Status(code);
        }
        // Whether a clean file may get a 204 is the exchange's rule (Allow: 204, or an
        // answer to a preview), not ours.
        let may_204 = self.exchange.may_answer(StatusCode::NO_CONTENT);
        // Faults that break a body need one: a clean answer without one becomes a block page.
        if breaks_body(plan.fault)
            && matches!(resolved, Resolved::Clean)
            && (may_204 || tx.request_head.body.is_none())
        {
            resolved = Resolved::Infected("Mock.Fault".into());
        }
        let (head, body): (ResponseHead, Option<Bytes>) = match &resolved {
            Resolved::Clean if may_204 => (dialect::no_content(dialect, &istag, extra), None),
            Resolved::Clean => {
                let h = self.echo_head(tx);
                let body = h.body.map(|_| std::mem::take(&mut tx.echo).freeze());
                (h, body)
            }
            Resolved::Infected(t) => {
                tx.record.threat = Some(t.clone());
                dialect::infected(dialect, t, filename.as_deref(), &istag, extra)
            }
            Resolved::Error(status, code) => (dialect::error(*status, code, &istag, extra), None),
            Resolved::Status(code) => (dialect::base(*code, &istag, extra), None),
        };
        let mut head = head;
        if body.is_none() {
            dialect::frame_bodyless(dialect, &mut head);
        }
        let mut head_bytes = BytesMut::new();
        let (head, body) = if head.encode(method, &mut head_bytes).is_ok() {
            (head, body)
        } else {
            head_bytes.clear();
            let bare = dialect::base(500, &istag, &[]);
            bare.encode(method, &mut head_bytes)
                .expect("a bare status head always encodes");
            (bare, None)
        };
        tx.record.status = Some(head.status.as_u16());
        let mut body_bytes = BytesMut::new();
        if let Some(b) = body {
            chunked::encode_body(&b, &mut body_bytes);
        }
        (head, head_bytes, body_bytes)
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
            let clean = matches!(tx.resolve(plan), Resolved::Clean)
                && matches!(
                    plan.fault,
                    None | Some(
                        FaultKind::Delay(_) | FaultKind::SlowBody(_) | FaultKind::DelayContinue(_)
                    )
                );
            if clean {
                let mut out = BytesMut::new();
                chunked::encode_last_chunk(false, &icap_proto::Headers::new(), &mut out);
                let ok = self.write(&out).await;
                return self.note_response_end(tx, ok);
            }
            if let Resolved::Infected(t) = tx.resolve(plan) {
                tx.record.threat = Some(t);
            }
            tx.record.fault = Some("echo_aborted".to_owned());
            return Next::Reset;
        }
        if plan.fault == Some(FaultKind::Garbage) {
            let mut state = tx.record.id ^ 0x1CA9_0000_0000_0000;
            let mut junk = Vec::with_capacity(64);
            junk.extend_from_slice(b"\x00\xffNOT-ICAP ");
            while junk.len() < 64 {
                junk.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
            }
            junk.truncate(64);
            let _ = self.write(&junk).await;
            return Next::Close;
        }
        let (response, mut head, body) = self.build_response(tx, plan);
        match plan.fault {
            Some(FaultKind::TruncatedResponse) => {
                let half = head.len() / 2;
                let _ = self.write(&head[..half]).await;
                Next::Close
            }
            Some(FaultKind::CloseMidResponse) => {
                head.extend_from_slice(&body[..body.len() / 2]);
                let _ = self.write(&head).await;
                Next::Close
            }
            Some(FaultKind::BadChunkSize) => {
                // Replace the hex size of the first chunk with something that is not hex.
                let line_end = memchr::memmem::find(&body, b"\r\n").unwrap_or(0);
                head.extend_from_slice(b"zz");
                head.extend_from_slice(&body[line_end..]);
                let _ = self.write(&head).await;
                Next::Close
            }
            Some(FaultKind::MissingTerminalChunk) => {
                let cut = memchr::memmem::rfind(&body, b"0\r\n\r\n").unwrap_or(body.len());
                head.extend_from_slice(&body[..cut]);
                if !self.write(&head).await {
                    return Next::Close;
                }
                self.stay_silent().await
            }
            Some(FaultKind::WrongEncapsulated) => {
                let head = shift_encapsulated(&head);
                let mut out = BytesMut::from(&head[..]);
                out.extend_from_slice(&body);
                if self.write(&out).await {
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

/// Rewrites the last `Encapsulated` offset 7 bytes too far (or adds a bogus
/// `Encapsulated` when the head has none). Works on the bytes, so the rest of the head
/// (non-ASCII reasons or threat names included) goes out unchanged.
fn shift_encapsulated(head: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"\r\nEncapsulated: ";
    let Some(start) = memchr::memmem::find(head, FIELD) else {
        let mut out = head.strip_suffix(b"\r\n\r\n").unwrap_or(head).to_vec();
        out.extend_from_slice(b"\r\nEncapsulated: res-hdr=0, res-body=64\r\n\r\n");
        return out;
    };
    let vstart = start.saturating_add(FIELD.len());
    let vend = vstart.saturating_add(memchr::memmem::find(&head[vstart..], b"\r\n").unwrap_or(0));
    let Ok(enc) = icap_proto::Encapsulated::parse(&head[vstart..vend]) else {
        return head.to_vec();
    };
    let Some(last) = enc.entries().len().checked_sub(1) else {
        return head.to_vec();
    };
    let value: Vec<String> = enc
        .entries()
        .iter()
        .enumerate()
        .map(|(i, (section, at))| {
            // An offset already at the top cannot go 7 further: it goes 7 back instead,
            // still wrong, which is the point.
            let at = if i == last {
                at.checked_add(7).unwrap_or(at - 7)
            } else {
                *at
            };
            format!("{}={at}", section.as_str())
        })
        .collect();
    let mut out = head[..vstart].to_vec();
    out.extend_from_slice(value.join(", ").as_bytes());
    out.extend_from_slice(&head[vend..]);
    out
}

#[cfg(test)]
mod tests {
    use super::{deadline_after, shift_encapsulated};
    use std::time::Duration;

    fn encapsulated_of(head: &[u8]) -> String {
        let text = String::from_utf8_lossy(head).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("Encapsulated: "))
            .expect("an Encapsulated line")
            .to_owned()
    }

    #[test]
    fn wrong_encapsulated_shifts_the_last_offset_and_never_overflows() {
        let rows: [(&[u8], &str); 3] = [
            (
                b"ICAP/1.0 200 OK\r\nISTag: \"x\"\r\nEncapsulated: res-hdr=0, res-body=60\r\n\r\n",
                "res-hdr=0, res-body=67",
            ),
            // The largest offset a u64 holds cannot go 7 further; it goes 7 back.
            (
                b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=18446744073709551615\r\n\r\n",
                "res-hdr=0, res-body=18446744073709551608",
            ),
            (
                b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=18446744073709551610\r\n\r\n",
                "res-hdr=0, null-body=18446744073709551603",
            ),
        ];
        for (head, want) in rows {
            assert_eq!(encapsulated_of(&shift_encapsulated(head)), want);
        }
        // No Encapsulated: one is added. A value that does not parse is left alone.
        let added = shift_encapsulated(b"ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\n\r\n");
        assert_eq!(encapsulated_of(&added), "res-hdr=0, res-body=64");
        let odd: &[u8] = b"ICAP/1.0 200 OK\r\nEncapsulated: \r\n\r\n";
        assert_eq!(shift_encapsulated(odd), odd);
    }

    #[tokio::test]
    async fn deadlines_saturate_instead_of_overflowing() {
        let now = tokio::time::Instant::now();
        assert!(deadline_after(Duration::MAX) > now + Duration::from_secs(365 * 86_400));
        let d = deadline_after(Duration::from_secs(5));
        assert!(d >= now + Duration::from_secs(5));
        assert!(d < now + Duration::from_secs(6));
    }
}
