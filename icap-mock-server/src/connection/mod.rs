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
mod respond;
#[cfg(test)]
mod testing;
mod transaction;
mod tx;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use icap_proto::{Event, Method, ProtocolError, RequestHead, ResponseHead, ServerExchange};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use self::tx::Tx;
use crate::dialect;
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
    /// Bytes written to the client during the current request (for its journal entry).
    written: u64,
    /// The client went away during the current request (a read saw its close or an
    /// error, or a write failed).
    gone: bool,
    /// The last clean `204` this connection sent, for the next one.
    last_clean: Option<answer::CleanAnswer>,
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
            written: 0,
            last_clean: None,
            gone: false,
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

    async fn read_head(&mut self) -> Result<Option<Box<RequestHead>>, ConnError> {
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
            let n = self.read_more(deadline).await.inspect_err(|e| {
                if matches!(e, ConnError::Io) {
                    self.gone = true;
                }
            })?;
            if n == 0 {
                self.gone = true;
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

    /// Writes `bytes` to the client; false (and the client counted as gone) when that
    /// failed.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> bool {
        let ok = self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok();
        if ok {
            let n = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            self.written = self.written.saturating_add(n);
        } else {
            self.gone = true;
        }
        ok
    }

    /// Holds the request for `d` (a timing fault) while watching the client: false as soon
    /// as it goes away (its close or a read error), true when the time is up. The journal
    /// entry shows the request as [`Stage::Waiting`](crate::Stage::Waiting) meanwhile.
    /// Whatever the client sends meanwhile (a pipelined request) stays in the read buffer,
    /// up to a bound past which the mock only waits.
    async fn pause(&mut self, tx: &mut Tx, d: Duration) -> bool {
        tx.record.stage = crate::journal::Stage::Waiting;
        self.progress(tx);
        let sleep = tokio::time::sleep_until(deadline_after(d));
        tokio::pin!(sleep);
        let bound = self.state.settings.limits.max_head.max(READ_RESERVE);
        loop {
            if self.buf.len() >= bound {
                sleep.await;
                return true;
            }
            if self.buf.capacity() - self.buf.len() < READ_RESERVE / 4 {
                self.buf.reserve(READ_RESERVE);
            }
            tokio::select! {
                () = &mut sleep => return true,
                r = self.stream.read_buf(&mut self.buf) => match r {
                    Ok(0) | Err(_) => {
                        self.gone = true;
                        return false;
                    }
                    Ok(_) => {}
                },
            }
        }
    }

    /// Starts the bookkeeping of a new request on this connection.
    fn begin_request(&mut self) {
        self.written = 0;
        self.gone = false;
    }

    /// Updates the journal entry with what the transaction got to so far.
    fn progress(&self, tx: &mut Tx) {
        tx.record.bytes_written = self.written;
        tx.record.client_gone = self.gone;
        self.state.record(&tx.record);
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

    /// Closes the journal entry: what was written, whether the client was there.
    fn finish_record(&self, tx: &mut Tx) {
        tx.record.stage = crate::journal::Stage::Done;
        if self.written == 0 {
            // Nothing reached the client: no status was sent, whatever was planned.
            tx.record.status = None;
        }
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
            bytes_written = self.written,
            client_gone = self.gone,
            "transaction"
        );
        self.progress(tx);
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
