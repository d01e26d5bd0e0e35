//! One ICAP connection: the thin tokio layer around icap-proto's sans-IO
//! [`ClientExchange`], generic over the stream so that TCP, TLS and in-memory pipes run the
//! same code (as in mini-redis).
//!
//! This module moves bytes and runs timers; it decides nothing about what is legal. Which
//! response may follow which request, and whether the connection may carry another one, is
//! the exchange's answer. What stays here is the one rule that is about the file rather
//! than the protocol: the body sent is exactly the file (see `sender.rs`).
//!
//! A transaction is full duplex: while the body is being sent, the response is read, so a
//! server that decides early (or streams its answer while reading) never deadlocks us.
//!
//! ```text
//!  mod.rs     Connection: the exchange loop (write while reading, timers, reuse)
//!  sender.rs  the body from its source, source integrity, chunk framing
//!  plan.rs    what goes in (Outgoing, BodyPlan) and what comes out (ExchangeOutcome)
//!  wire.rs    the outgoing queue (vectored writes), the payload log
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use icap_proto::exchange::{
    ClientEvent, ClientExchange, PreviewPlan, ProtocolError, RequestPlan, Reuse,
};
use icap_proto::{Headers, Limits, ResponseHead, chunked};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::config::Timeouts;
use crate::error::{Error, ErrorKind, Phase};

mod plan;
mod sender;
mod wire;

pub use plan::Progress;
pub(crate) use plan::{BodyPlan, BodySource, ExchangeError, ExchangeOutcome, FileStamp, Outgoing};

use sender::{Next, SendState, Sender, Wait};
use wire::{OutQueue, wire_log};

/// `now + d`, saturating far in the future instead of overflowing on a huge timeout.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Maps what the peer did wrong to the client's error kinds: closes are `Closed` (a stale
/// pooled connection is recognised by that), everything else is `Protocol`.
fn peer_error(e: ProtocolError) -> Error {
    match e {
        ProtocolError::ClosedBeforeResponse => {
            Error::closed("server closed the connection without answering")
        }
        ProtocolError::ClosedMidResponse => {
            Error::closed("server closed the connection in the middle of the response")
        }
        e => Error::protocol(format!("invalid response ({})", e.rule())).with_source(e),
    }
}

/// A connection to an ICAP server.
pub(crate) struct Connection<S> {
    stream: S,
    buf: BytesMut,
    limits: Limits,
    wire_cap: Option<usize>,
    id: u64,
    /// Transactions completed on this connection.
    pub(crate) transactions: u64,
    /// The exchanges' timer, kept from one exchange to the next, with the runtime it was
    /// made on. A timer that becomes the runtime's earliest when it is registered wakes
    /// the runtime's I/O driver (a `write` to its eventfd), even from the driver's own
    /// thread. A fresh timer per exchange, and the scan's deadline after it, did that on
    /// most scans: 1.6 `write`s per small scan at 16 connections. Kept here, the timer is
    /// still registered when the runtime next waits, so the next exchange only pushes its
    /// deadline later (no wake), and the scan's deadline wakes nothing either while it is
    /// later than the idle timeout's (60 s and 30 s by default).
    timer: Option<(tokio::runtime::Id, Pin<Box<Sleep>>)>,
    /// The buffer the head and preview are written into, kept from one exchange to the
    /// next: the written piece is split off and frozen, and once the write has dropped it
    /// the next exchange's `reserve` takes the same allocation back. Head, a 1 KiB preview
    /// and framing are larger than the allocator's per-thread cache holds (1 032 bytes),
    /// so a fresh buffer per scan cost a trip through its bins both ways.
    first: BytesMut,
    /// The pieces waiting to be written, kept for the same reason (its ring is allocated
    /// once); empty between exchanges.
    queue: OutQueue,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream. `wire_cap`: log the bytes on the wire (all heads, at most
    /// this many body bytes per message) at target `icap_client::wire`.
    pub(crate) fn new(stream: S, limits: Limits, wire_cap: Option<usize>, id: u64) -> Self {
        Connection {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            limits,
            wire_cap,
            id,
            transactions: 0,
            timer: None,
            first: BytesMut::new(),
            queue: OutQueue::default(),
        }
    }

    /// The stream.
    pub(crate) fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Whether the server has closed (or written to) the idle connection: checked before
    /// a pooled connection is reused. Never blocks.
    pub(crate) fn is_closed_by_peer(&mut self) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut probe = [0u8; 1];
        let mut rb = tokio::io::ReadBuf::new(&mut probe);
        // EOF, an error, or unsolicited bytes: none leaves a usable connection.
        std::pin::Pin::new(&mut self.stream)
            .poll_read(&mut cx, &mut rb)
            .is_ready()
    }

    /// Makes the connection idle (before it is pooled): its timer keeps the waker it was
    /// last polled with, which would hold the last scan's task until the timer fires.
    pub(crate) fn set_idle(&mut self) {
        if let Some((_, timer)) = &mut self.timer {
            let mut cx = Context::from_waker(Waker::noop());
            let _ = timer.as_mut().poll(&mut cx);
        }
    }

    /// The timer of an exchange on the current runtime, due at `at`: the connection's own
    /// when it was made on this runtime (a timer belongs to the runtime it was made on,
    /// and one whose runtime has gone panics when polled).
    fn timer_for(
        timer: &mut Option<(tokio::runtime::Id, Pin<Box<Sleep>>)>,
        at: Instant,
    ) -> &mut Pin<Box<Sleep>> {
        let rt = tokio::runtime::Handle::current().id();
        if timer.as_ref().is_some_and(|(made_on, _)| *made_on != rt) {
            *timer = None;
        }
        let kept = timer.is_some();
        let (_, t) = timer.get_or_insert_with(|| (rt, Box::pin(tokio::time::sleep_until(at))));
        if kept {
            t.as_mut().reset(at);
        }
        t
    }

    /// Sends one request and reads its response.
    #[allow(clippy::too_many_lines)] // one select loop over reading, writing and the timer
    pub(crate) async fn exchange(
        &mut self,
        out: Outgoing<'_>,
        t: &Timeouts,
    ) -> Result<ExchangeOutcome, ExchangeError> {
        let Connection {
            stream,
            buf,
            limits,
            wire_cap,
            id,
            transactions,
            timer,
            first: first_buf,
            queue: q,
        } = self;
        let id = *id;
        let wire_cap = *wire_cap;
        if !buf.is_empty() {
            // Never pooled with bytes in its buffer; this would be a bug of ours.
            return Err(ExchangeError::new(Error::protocol(
                "unexpected bytes on an idle connection",
            )));
        }
        wire_log(wire_cap, id, ">>", out.head, usize::MAX);

        // Empty after a finished exchange (its writes drained it). A failed exchange's
        // connection is not reused; cleared all the same, so that the buffer's piece is
        // dropped before `first` is reserved again.
        q.clear();
        let mut sender = Sender {
            state: SendState::Flushing(Next::Done),
            chunk: BytesMut::new(),
            carry: Bytes::new(),
            read: 0,
            hasher: None,
            eof: false,
            body_logged: 0,
            ahead: None,
            last_read: Bytes::new(),
        };
        let mut plan_preview = None;
        let mut plan = out.body;
        match &mut plan {
            None => q.push(out.head.clone()),
            Some(plan) => {
                sender.hasher = plan.digest.then(Sha256::new);
                // Head, preview chunk and terminal chunk in one buffer (one write), sized
                // once: the preview (at most `want` bytes) plus chunk framing.
                let room = plan
                    .preview
                    .map_or(0, |p| usize::try_from(p).unwrap_or(0).min(64 * 1024))
                    .saturating_add(48);
                let first = &mut *first_buf;
                first.clear();
                first.reserve(out.head.len().saturating_add(room));
                first.extend_from_slice(out.head);
                if let Some(p) = plan.preview {
                    // One byte past the preview tells whether the preview is the whole body.
                    let want = usize::try_from(p).unwrap_or(usize::MAX - 1) + 1;
                    let pv = sender.read_source(plan, want, Wait::Full).await?;
                    let preview_len = pv.len().min(want - 1);
                    let data = pv.slice(..preview_len);
                    if !data.is_empty() {
                        let at = first.len();
                        chunked::encode_chunk_header(data.len() as u64, first);
                        wire_log(wire_cap, id, ">>", &first[at..], usize::MAX);
                        sender.log_body(wire_cap, id, &data);
                        first.extend_from_slice(&data);
                        first.extend_from_slice(b"\r\n");
                    }
                    let ieof = sender.eof && pv.len() <= preview_len;
                    let at = first.len();
                    chunked::encode_last_chunk(ieof, &Headers::new(), first);
                    wire_log(wire_cap, id, ">>", &first[at..], usize::MAX);
                    sender.state = if ieof {
                        SendState::Flushing(Next::Done)
                    } else {
                        sender.carry = pv.slice(preview_len..);
                        SendState::Flushing(Next::AwaitContinue)
                    };
                    plan_preview = Some(PreviewPlan { size: p, ieof });
                } else {
                    sender.state = SendState::Flushing(Next::Body);
                }
                q.push(first.split().freeze());
            }
        }
        let ieof = plan_preview.is_some_and(|p| p.ieof);
        let mut ex = ClientExchange::new(
            RequestPlan::new(out.method)
                .with_allow_204(out.allow_204)
                .with_preview(plan_preview)
                .with_body(plan.is_some()),
            *limits,
        );

        let mut got_byte = false;
        let mut resp = Received {
            logged: 0,
            body_len: 0,
            hasher: None,
            head: None,
        };
        let mut idle_at = after(Instant::now(), t.idle);
        let mut continue_at = idle_at;
        let mut write_error: Option<std::io::Error> = None;
        let fail = |error: Error, got_byte: bool, sender: &Sender| ExchangeError {
            error,
            response_started: got_byte,
            source_read: sender.read,
            too_large: false,
        };
        let (mut rd, mut wr) = tokio::io::split(&mut *stream);
        // One timer for the whole exchange, armed lazily: deadlines move on every read and
        // write, and re-registering a timer each time costs more than the I/O of a small
        // scan. The timer is moved earlier when a deadline shrinks, and re-armed when it
        // fires before the current deadline.
        let timer = Self::timer_for(timer, idle_at);
        loop {
            while !ex.is_done() {
                match ex.poll_event(buf) {
                    Ok(Some(ClientEvent::Continue)) => {
                        // Still flushing the preview: the flush's end moves on to the body.
                        if sender.state == SendState::AwaitContinue {
                            sender.state = SendState::Body;
                        }
                        idle_at = after(Instant::now(), t.idle);
                    }
                    Ok(Some(ClientEvent::Head(h))) => {
                        if h.body.is_some() {
                            resp.hasher = Some(Sha256::new());
                        }
                        resp.head = Some(h);
                    }
                    Ok(Some(ClientEvent::Data(d))) => {
                        resp.body_len += d.len() as u64;
                        if let Some(max) = out.max_answer_body
                            && resp.body_len > max
                        {
                            return Err(fail(
                                Error::new(
                                    ErrorKind::TooLarge,
                                    format!(
                                        "the server's answer body is larger than max_adapted_body ({max} bytes)"
                                    ),
                                ),
                                got_byte,
                                &sender,
                            ));
                        }
                        if let Some(hs) = &mut resp.hasher {
                            hs.update(&d);
                        }
                    }
                    Ok(Some(ClientEvent::End(_))) => {}
                    Ok(None) => break,
                    Err(e) => return Err(fail(peer_error(e), got_byte, &sender)),
                }
            }
            if ex.is_done() {
                break;
            }
            if sender.state == SendState::Body && q.remaining() == 0 {
                // Queue chunks up to a batch (or the end of the body), for one write: the
                // first read waits for its bytes, the others take only what a reader has
                // ready (memory and files are always ready).
                let plan = plan.as_mut().expect("a body state implies a body plan");
                let batch = plan.batch();
                let mut wait = Wait::Full;
                loop {
                    match sender.refill(plan, q, wire_cap, id, wait).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(mut e) => {
                            e.response_started = got_byte;
                            return Err(e);
                        }
                    }
                    if sender.state != SendState::Body || q.remaining() >= batch {
                        break;
                    }
                    wait = Wait::Ready;
                }
            }
            let writing = matches!(sender.state, SendState::Flushing(_) | SendState::Body);
            let (timer_at, phase) = match sender.state {
                SendState::AwaitContinue => (continue_at, Phase::Continue),
                SendState::Flushing(_) | SendState::Body => (idle_at, Phase::Send),
                SendState::Done | SendState::Stopped => (idle_at, Phase::Response),
            };
            if timer_at < timer.deadline() {
                timer.as_mut().reset(timer_at);
            }
            tokio::select! {
                biased;
                r = rd.read_buf(buf) => match r {
                    Ok(0) => match ex.handle_eof() {
                        Err(e) => {
                            let mut e = peer_error(e);
                            if let Some(w) = write_error.take() {
                                e = e.with_source(w);
                            }
                            return Err(fail(e, got_byte, &sender));
                        }
                        // The close came right after a complete answer.
                        Ok(()) => break,
                    },
                    Ok(n) => {
                        got_byte = true;
                        idle_at = after(Instant::now(), t.idle);
                        let cap = if resp.head.is_some() { resp.log_budget(wire_cap, n) } else { usize::MAX };
                        wire_log(wire_cap, id, "<<", &buf[buf.len() - n..], cap);
                    }
                    Err(e) => {
                        return Err(fail(Error::socket(e, "reading the response"), got_byte, &sender));
                    }
                },
                w = async {
                    if q.remaining() > 0 {
                        wr.write_buf(q).await.map(Some)
                    } else {
                        wr.flush().await.map(|()| None)
                    }
                }, if writing => match w {
                    Ok(Some(_)) => idle_at = after(Instant::now(), t.idle),
                    Ok(None) => {
                        if let SendState::Flushing(next) = sender.state {
                            sender.state = match next {
                                Next::AwaitContinue => {
                                    continue_at = after(Instant::now(), t.continue_wait);
                                    ex.handle_preview_sent().map_err(|e| {
                                        fail(misuse(&e), got_byte, &sender)
                                    })?;
                                    if ex.continued() {
                                        SendState::Body
                                    } else {
                                        SendState::AwaitContinue
                                    }
                                }
                                Next::Body => SendState::Body,
                                Next::Done => {
                                    ex.handle_request_sent().map_err(|e| {
                                        fail(misuse(&e), got_byte, &sender)
                                    })?;
                                    SendState::Done
                                }
                            };
                        }
                    }
                    Err(e) => {
                        // The server may have answered and closed; read what it sent.
                        tracing::debug!(conn = id, error = %e, "write failed; reading any response");
                        write_error = Some(e);
                        sender.state = SendState::Stopped;
                    }
                },
                () = &mut *timer => {
                    if Instant::now() >= timer_at {
                        return Err(fail(Error::timeout(phase), got_byte, &sender));
                    }
                    timer.as_mut().reset(timer_at);
                }
            }
        }

        // The preview's last chunk ends the request when the answer came in reply to it.
        let answered_in_preview = ex.answered_in_preview();
        if sender.state == SendState::Flushing(Next::AwaitContinue) && q.remaining() == 0 {
            // Every byte of the preview was written; only the flush had not been seen.
            ex.handle_preview_sent()
                .map_err(|e| fail(misuse(&e), got_byte, &sender))?;
            sender.state = SendState::AwaitContinue;
        }
        if sender.state == SendState::Flushing(Next::Done) && q.remaining() == 0 {
            // Every byte of the request was written (the answer outran the flush's return).
            ex.handle_request_sent()
                .map_err(|e| fail(misuse(&e), got_byte, &sender))?;
            sender.state = SendState::Done;
        }
        if sender.state == SendState::AwaitContinue && answered_in_preview {
            sender.state = SendState::Done;
        }
        let request_complete = sender.state == SendState::Done;
        let reuse = if request_complete {
            ex.reuse(buf)
        } else {
            Reuse::No(icap_proto::exchange::NotReusable::RequestIncomplete)
        };
        if let Reuse::No(why) = reuse {
            tracing::debug!(conn = id, ?why, "connection not reused");
        }
        let continued = ex.continued();
        let head = resp
            .head
            .expect("a finished exchange has returned its final head");
        let body_complete = sender.eof && (ieof || request_complete);
        *transactions += 1;
        Ok(ExchangeOutcome {
            head,
            body_len: resp.body_len,
            body_sha256: resp.hasher.map(|h| h.finalize().into()),
            sent: sender.read - sender.carry.len() as u64,
            sent_sha256: if body_complete {
                sender.hasher.map(|h| h.finalize().into())
            } else {
                None
            },
            body_complete,
            early: !request_complete,
            answered_in_preview,
            continued,
            ieof,
            reusable: reuse == Reuse::Yes,
        })
    }
}

/// Our own use of the exchange was wrong: a bug here, reported as a protocol failure so
/// that it never becomes a verdict.
fn misuse(e: &impl std::fmt::Display) -> Error {
    Error::protocol(format!("internal: exchange misuse: {e}"))
}

/// What has been received of the final answer.
struct Received {
    body_len: u64,
    hasher: Option<Sha256>,
    /// The final head, once the exchange has handed it over.
    head: Option<Box<ResponseHead>>,
    logged: usize,
}

impl Received {
    /// How many of `n` received body bytes may still be logged.
    fn log_budget(&mut self, wire_cap: Option<usize>, n: usize) -> usize {
        let b = wire_cap.unwrap_or(0).saturating_sub(self.logged);
        self.logged += b.min(n);
        b
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::time::Duration;

    use icap_proto::Method;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    static HEAD_BYTES: Bytes = Bytes::from_static(HEAD);
    const HEAD: &[u8] = b"RESPMOD icap://t/avscan ICAP/1.0\r\nHost: t\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";

    fn pair() -> (Connection<DuplexStream>, DuplexStream) {
        let (a, b) = tokio::io::duplex(8 * 1024);
        (Connection::new(a, Limits::default(), None, 1), b)
    }

    fn timeouts() -> Timeouts {
        Timeouts::default()
            .with_idle(Duration::from_secs(30))
            .with_continue_wait(Duration::from_secs(15))
    }

    async fn read_until(s: &mut DuplexStream, end: &[u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(end.len()).any(|w| w == end) {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// Reads and drops everything until the client closes.
    async fn drain(mut peer: DuplexStream) {
        let mut buf = [0u8; 4096];
        while peer.read(&mut buf).await.unwrap_or(0) > 0 {}
    }

    fn outgoing(src: &mut (dyn AsyncRead + Unpin + Send), preview: Option<u64>) -> Outgoing<'_> {
        Outgoing {
            method: Method::Respmod,
            allow_204: true,
            head: &HEAD_BYTES,
            body: Some(BodyPlan {
                source: BodySource::Reader(src),
                preview,
                chunk_size: 1000,
                write_batch: crate::DEFAULT_WRITE_BATCH,
                declared: None,
                max_size: None,
                digest: true,
                progress: None,
            }),
            max_answer_body: None,
        }
    }

    /// A stream that counts the polls that move bytes (or see EOF or an error): on a socket,
    /// each of those is one system call, while a `Pending` poll after readiness was cleared
    /// is none. Writes are vectored, as on TCP.
    struct Counting {
        inner: DuplexStream,
        reads: usize,
        writes: usize,
    }

    impl AsyncRead for Counting {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
            if r.is_ready() {
                self.reads += 1;
            }
            r
        }
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
            if r.is_ready() {
                self.writes += 1;
            }
            r
        }
        fn poll_write_vectored(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.poll_write(cx, &all)
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A small scan costs one write (head and whole body together) and one read (the
    /// answer), on a fresh connection and on a reused one, and the liveness check before
    /// reuse costs none. Counts, so this fails if a change adds a round of system calls.
    #[tokio::test(start_paused = true)]
    async fn small_scan_is_one_write_and_one_read() {
        let (a, mut peer) = tokio::io::duplex(64 * 1024);
        let stream = Counting {
            inner: a,
            reads: 0,
            writes: 0,
        };
        let mut conn = Connection::new(stream, Limits::default(), None, 1);
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                read_until(&mut peer, b"\r\n0; ieof\r\n\r\n").await;
                peer.write_all(
                    b"ICAP/1.0 204 No Content\r\nISTag: \"t\"\r\nEncapsulated: null-body=0\r\n\r\n",
                )
                .await
                .unwrap();
            }
            peer
        });
        let body = Bytes::from(vec![b'a'; 1024]);
        for round in 1..=2 {
            if round > 1 {
                assert!(!conn.is_closed_by_peer());
            }
            let out = Outgoing {
                method: Method::Respmod,
                allow_204: true,
                head: &HEAD_BYTES,
                body: Some(BodyPlan {
                    source: BodySource::Memory(body.clone()),
                    preview: Some(1024),
                    chunk_size: 64 * 1024,
                    write_batch: crate::DEFAULT_WRITE_BATCH,
                    declared: Some(1024),
                    max_size: None,
                    digest: false,
                    progress: None,
                }),
                max_answer_body: None,
            };
            let ex = conn.exchange(out, &timeouts()).await.unwrap();
            assert!(ex.ieof && ex.reusable && ex.body_complete);
            assert_eq!(ex.head.status.as_u16(), 204);
            let s = conn.get_ref();
            assert_eq!((s.writes, s.reads), (round, round), "after scan {round}");
        }
        let _peer = server.await.unwrap();
    }

    /// A server that answers the preview with `100 Continue`, then the rest with `204`; its
    /// task gives back the bytes after the `100`.
    fn continue_then_204(
        mut peer: DuplexStream,
    ) -> tokio::task::JoinHandle<(Vec<u8>, DuplexStream)> {
        tokio::spawn(async move {
            read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(b"ICAP/1.0 100 Continue\r\n\r\n")
                .await
                .unwrap();
            let rest = read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(b"ICAP/1.0 204 No Content\r\nISTag: \"t\"\r\n\r\n")
                .await
                .unwrap();
            (rest, peer)
        })
    }

    /// The data of a chunked body (sizes and data only; no extensions or trailers).
    fn dechunk(mut wire: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let eol = wire
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&wire[..eol]).unwrap(), 16).unwrap();
            wire = &wire[eol + 2..];
            if size == 0 {
                assert_eq!(wire, b"\r\n", "the body ends after its last chunk");
                return out;
            }
            out.extend_from_slice(&wire[..size]);
            assert_eq!(&wire[size..size + 2], b"\r\n");
            wire = &wire[size + 2..];
        }
    }

    /// A body from memory or a file goes out in batches: with 1 000-byte chunks and a batch
    /// of 4 000 bytes, the 10 000 bytes after the preview take 3 writes (about 4 000 bytes,
    /// 4 000, then the rest with the last chunk), where one chunk per write took 12 (the
    /// byte read past the preview, 10 chunks, the last chunk). The body on the wire is the
    /// same. A reader whose bytes are all ready (here a slice) is batched the same way.
    #[tokio::test(start_paused = true)]
    async fn bodies_are_written_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body.bin");
        for (batch, kind, body_writes) in [
            (4000, "memory", 3),
            (0, "memory", 12),
            (4000, "file", 3),
            (0, "file", 12),
            (4000, "reader", 3),
            (0, "reader", 12),
        ] {
            let (a, peer) = tokio::io::duplex(1 << 20);
            let stream = Counting {
                inner: a,
                reads: 0,
                writes: 0,
            };
            let mut conn = Connection::new(stream, Limits::default(), None, 1);
            let server = continue_then_204(peer);
            let body: Vec<u8> = (0..10_010u32)
                .map(|i| b"abcdefghij"[i as usize % 10])
                .collect();
            let mut slice: &[u8] = &body;
            let source = match kind {
                "reader" => BodySource::Reader(&mut slice),
                "file" => {
                    std::fs::write(&path, &body).unwrap();
                    let f = std::fs::File::open(&path).unwrap();
                    let stamp = FileStamp::of(&f.metadata().unwrap());
                    BodySource::File(std::sync::Arc::new(f), stamp)
                }
                _ => BodySource::Memory(Bytes::from(body.clone())),
            };
            let out = Outgoing {
                method: Method::Respmod,
                allow_204: true,
                head: &HEAD_BYTES,
                body: Some(BodyPlan {
                    source,
                    preview: Some(10),
                    chunk_size: 1000,
                    write_batch: batch,
                    declared: Some(10_010),
                    max_size: None,
                    digest: true,
                    progress: None,
                }),
                max_answer_body: None,
            };
            let ex = conn.exchange(out, &timeouts()).await.unwrap();
            assert!(ex.continued && ex.body_complete && ex.reusable, "{ex:?}");
            assert_eq!(ex.sent, 10_010);
            let (rest, _peer) = server.await.unwrap();
            assert!(
                dechunk(&rest) == body[10..],
                "batch {batch}, {kind}: the body after the preview differs"
            );
            // One write for the head and the preview, then the body's.
            let writes = conn.get_ref().writes;
            assert_eq!(writes, 1 + body_writes, "batch {batch}, {kind}");
        }
    }

    /// A reader's bytes are gathered for a write only while it has more ready: what it has
    /// now goes out before it yields the rest, even part of a chunk (2 500 bytes in
    /// 1 000-byte chunks: the last 500 are not held back waiting for a full chunk).
    #[tokio::test(start_paused = true)]
    async fn a_reader_s_ready_bytes_are_sent_before_it_has_more() {
        let (mut conn, mut peer) = pair();
        let (mut feed, mut upload) = tokio::io::duplex(64 * 1024);
        let (got_first, first_seen) = tokio::sync::oneshot::channel::<()>();
        let mut first = vec![b'a'; 2496];
        first.extend_from_slice(b"END1");
        let feeder = {
            let first = first.clone();
            tokio::spawn(async move {
                feed.write_all(&first).await.unwrap();
                // The rest comes only once the server has all of the first piece.
                first_seen.await.unwrap();
                feed.write_all(b"rest").await.unwrap();
            })
        };
        let server = tokio::spawn(async move {
            let head_and_first =
                tokio::time::timeout(Duration::from_secs(5), read_until(&mut peer, b"END1\r\n"))
                    .await
                    .expect("the first piece is sent while the reader waits for more");
            got_first.send(()).unwrap();
            let rest = read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(b"ICAP/1.0 204 No Content\r\nISTag: \"t\"\r\n\r\n")
                .await
                .unwrap();
            (head_and_first, rest, peer)
        });
        let ex = conn
            .exchange(outgoing(&mut upload, None), &timeouts())
            .await
            .unwrap();
        assert!(ex.body_complete && ex.reusable, "{ex:?}");
        assert_eq!(ex.sent, 2504);
        feeder.await.unwrap();
        let (head_and_first, rest, _peer) = server.await.unwrap();
        assert_eq!(&head_and_first[..HEAD.len()], HEAD);
        let mut wire = head_and_first[HEAD.len()..].to_vec();
        wire.extend_from_slice(&rest);
        let mut body = first;
        body.extend_from_slice(b"rest");
        assert!(dechunk(&wire) == body, "the body on the wire differs");
    }

    #[tokio::test(start_paused = true)]
    async fn preview_continue_then_body() {
        let (mut conn, mut peer) = pair();
        let server = tokio::spawn(async move {
            let first = read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            assert!(first.ends_with(b"4\r\nabcd\r\n0\r\n\r\n"), "{first:?}");
            peer.write_all(b"ICAP/1.0 100 Continue\r\n\r\n")
                .await
                .unwrap();
            let rest = read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            assert_eq!(rest, b"1\r\ne\r\n2\r\nfg\r\n0\r\n\r\n");
            peer.write_all(b"ICAP/1.0 204 No Content\r\n\r\n")
                .await
                .unwrap();
            peer
        });
        let mut src: &[u8] = b"abcdefg";
        let ex = conn
            .exchange(outgoing(&mut src, Some(4)), &timeouts())
            .await
            .unwrap();
        assert_eq!(ex.head.status.as_u16(), 204);
        assert!(ex.continued && ex.body_complete && ex.reusable && !ex.early && !ex.ieof);
        assert_eq!(ex.sent, 7);
        let _peer = server.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn memory_source_with_preview_and_continue() {
        let (mut conn, peer) = pair();
        let server = continue_then_204(peer);
        let out = Outgoing {
            method: Method::Respmod,
            allow_204: true,
            head: &HEAD_BYTES,
            body: Some(BodyPlan {
                source: BodySource::Memory(Bytes::from_static(b"abcdefghij")),
                preview: Some(3),
                chunk_size: 4,
                write_batch: crate::DEFAULT_WRITE_BATCH,
                declared: Some(10),
                max_size: None,
                digest: true,
                progress: None,
            }),
            max_answer_body: None,
        };
        let ex = conn.exchange(out, &timeouts()).await.unwrap();
        assert!(ex.continued && ex.body_complete && ex.reusable);
        assert_eq!(ex.sent, 10);
        let (rest, _peer) = server.await.unwrap();
        assert_eq!(rest, b"1\r\nd\r\n4\r\nefgh\r\n2\r\nij\r\n0\r\n\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn final_answer_to_a_preview_keeps_the_connection() {
        let (mut conn, mut peer) = pair();
        tokio::spawn(async move {
            read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(
                b"ICAP/1.0 200 OK\r\nX-Virus-ID: Bad\r\nEncapsulated: res-hdr=0, null-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n",
            )
            .await
            .unwrap();
            drain(peer).await;
        });
        let mut src: &[u8] = &[b'z'; 100];
        let ex = conn
            .exchange(outgoing(&mut src, Some(10)), &timeouts())
            .await
            .unwrap();
        assert_eq!(ex.head.status.as_u16(), 200);
        assert!(ex.reusable, "{ex:?}");
        assert!(!ex.early && !ex.continued && !ex.body_complete, "{ex:?}");
        assert_eq!(ex.sent, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn continue_timeout_fires() {
        let (mut conn, peer) = pair();
        tokio::spawn(drain(peer));
        let mut src: &[u8] = &[b'z'; 100];
        let start = Instant::now();
        let err = conn
            .exchange(outgoing(&mut src, Some(10)), &timeouts())
            .await
            .unwrap_err();
        assert_eq!(err.error.timeout_phase(), Some(Phase::Continue));
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        assert!(!err.response_started);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_while_waiting_for_the_answer() {
        let (mut conn, peer) = pair();
        tokio::spawn(drain(peer));
        let mut src: &[u8] = b"abc";
        let err = conn
            .exchange(outgoing(&mut src, Some(10)), &timeouts())
            .await
            .unwrap_err();
        assert_eq!(err.error.timeout_phase(), Some(Phase::Response));
    }

    #[tokio::test(start_paused = true)]
    async fn send_timeout_when_the_server_stops_reading() {
        let (mut conn, peer) = pair();
        let mut src = tokio::io::repeat(1).take(1 << 20);
        let err = conn
            .exchange(outgoing(&mut src, None), &timeouts())
            .await
            .unwrap_err();
        assert_eq!(err.error.timeout_phase(), Some(Phase::Send));
        drop(peer);
    }

    #[tokio::test(start_paused = true)]
    async fn early_answer_while_the_server_does_not_read() {
        let (mut conn, mut peer) = pair();
        // The server answers at once and never reads the body: the client must see the
        // answer although its writes are blocked.
        peer.write_all(b"ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=X;\r\nEncapsulated: res-hdr=0, null-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n")
            .await
            .unwrap();
        let mut src = tokio::io::repeat(1).take(1 << 20);
        let ex = conn
            .exchange(outgoing(&mut src, None), &timeouts())
            .await
            .unwrap();
        assert!(ex.early && !ex.reusable && !ex.body_complete);
        assert!(ex.sent < 1 << 20);
        drop(peer);
    }

    #[tokio::test(start_paused = true)]
    async fn unexpected_continue_and_close_are_errors() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"ICAP/1.0 100 Continue\r\n\r\n")
            .await
            .unwrap();
        let mut src: &[u8] = b"abc";
        let err = conn
            .exchange(outgoing(&mut src, None), &timeouts())
            .await
            .unwrap_err();
        assert!(err.error.is_protocol(), "{err:?}");

        let (mut conn, peer) = pair();
        drop(peer);
        let mut src: &[u8] = b"abc";
        let err = conn
            .exchange(outgoing(&mut src, Some(5)), &timeouts())
            .await
            .unwrap_err();
        assert!(err.error.is_closed(), "{err:?}");
        assert!(!err.response_started);
    }

    #[tokio::test(start_paused = true)]
    async fn body_larger_than_max_size_is_cut_off() {
        let (mut conn, peer) = pair();
        tokio::spawn(drain(peer));
        let mut src = tokio::io::repeat(1).take(10_000);
        let mut out = outgoing(&mut src, None);
        if let Some(b) = &mut out.body {
            b.max_size = Some(4000);
        }
        let err = conn.exchange(out, &timeouts()).await.unwrap_err();
        assert!(err.too_large);
        assert!(err.source_read > 4000 && err.source_read <= 5000);
    }

    #[tokio::test(start_paused = true)]
    async fn huge_timeouts_do_not_overflow() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(365 * 86_400));
        let (mut conn, mut peer) = pair();
        tokio::spawn(async move {
            read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(b"ICAP/1.0 204 No Content\r\n\r\n")
                .await
                .unwrap();
            drain(peer).await;
        });
        let t = Timeouts {
            idle: Duration::MAX,
            continue_wait: Duration::MAX,
            ..Timeouts::default()
        };
        let mut src: &[u8] = b"abc";
        let ex = conn.exchange(outgoing(&mut src, None), &t).await.unwrap();
        assert_eq!(ex.head.status.as_u16(), 204);
    }

    #[tokio::test(start_paused = true)]
    async fn leftover_bytes_after_the_answer_make_the_connection_unusable() {
        let (mut conn, mut peer) = pair();
        tokio::spawn(async move {
            read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(b"ICAP/1.0 204 No Content\r\n\r\nICAP/1.0 204 No Content\r\n\r\n")
                .await
                .unwrap();
            drain(peer).await;
        });
        let mut src: &[u8] = b"abc";
        let ex = conn
            .exchange(outgoing(&mut src, None), &timeouts())
            .await
            .unwrap();
        assert!(!ex.reusable, "{ex:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_reader_never_gets_its_terminal_chunk() {
        let (mut conn, mut peer) = pair();
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = peer.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let mut src: &[u8] = &[b'a'; 2500];
        let mut out = outgoing(&mut src, None);
        if let Some(b) = &mut out.body {
            b.declared = Some(5000);
        }
        let err = conn.exchange(out, &timeouts()).await.unwrap_err();
        assert!(err.error.is_source(), "{err:?}");
        drop(conn);
        let got = server.await.unwrap();
        assert!(!got.ends_with(b"\r\n0\r\n\r\n"), "terminal chunk sent");
    }
}
