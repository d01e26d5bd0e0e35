//! One ICAP connection: the thin tokio layer over the icap-proto codec, generic over the
//! stream so that TCP, TLS and in-memory pipes run the same code (as in mini-redis).
//!
//! A transaction is full duplex: while the body is being sent, the response is read, so a
//! server that decides early (or streams its answer while reading) never deadlocks us.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use icap_proto::{Event, Headers, Limits, Method, ResponseDecoder, ResponseHead, chunked};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::config::Timeouts;
use crate::error::{Error, Phase};

/// Target of the network payload log.
pub(crate) const WIRE_TARGET: &str = "icap_client::wire";

/// Where body bytes come from.
pub(crate) enum BodySource<'a> {
    /// Read from a file or any reader.
    Reader(&'a mut (dyn AsyncRead + Unpin + Send)),
    /// Sliced from memory without copying.
    Memory(Bytes),
}

/// Where the body of a request comes from and how to send it.
pub(crate) struct BodyPlan<'a> {
    pub(crate) source: BodySource<'a>,
    /// Bytes to send as a preview, or `None` to send the whole body at once.
    pub(crate) preview: Option<u64>,
    pub(crate) chunk_size: usize,
    /// Abort when the body turns out longer than this (for sources of unknown size).
    pub(crate) max_size: Option<u64>,
    /// Compute the SHA-256 of the body sent and of the body received.
    pub(crate) digest: bool,
}

/// One request to send: the encoded head and, except for `OPTIONS`, a body.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: Method,
    pub(crate) head: Bytes,
    pub(crate) body: Option<BodyPlan<'a>>,
}

/// What came back, and what happened on the way.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts of one exchange, not a state
pub(crate) struct Exchange {
    pub(crate) head: ResponseHead,
    /// Body bytes received (they are hashed and dropped, never kept).
    pub(crate) body_len: u64,
    pub(crate) body_sha256: Option<[u8; 32]>,
    /// Body bytes sent.
    pub(crate) sent: u64,
    pub(crate) sent_sha256: Option<[u8; 32]>,
    /// The whole body was sent (in the preview, or after `100 Continue`).
    pub(crate) body_complete: bool,
    /// The final response came while the body was still being sent.
    pub(crate) early: bool,
    /// The preview was answered with `100 Continue`.
    pub(crate) continued: bool,
    /// The preview held the whole body (`0; ieof`).
    pub(crate) ieof: bool,
    /// The connection is in a clean state for the next request.
    pub(crate) reusable: bool,
}

/// Why an exchange did not produce a response.
#[derive(Debug)]
pub(crate) struct ExchangeError {
    pub(crate) error: Error,
    /// A byte of the response had arrived (so the connection was not merely stale).
    pub(crate) response_started: bool,
    /// Body bytes read from the source so far (a retry needs a fresh source if > 0).
    pub(crate) source_read: u64,
    /// The body exceeded `max_size`.
    pub(crate) too_large: bool,
}

impl ExchangeError {
    fn new(error: Error) -> Self {
        ExchangeError {
            error,
            response_started: false,
            source_read: 0,
            too_large: false,
        }
    }
}

/// Outgoing bytes as a queue of pieces, written with vectored I/O, so a body chunk goes
/// out without being copied next to its size line.
#[derive(Default)]
struct OutQueue {
    parts: VecDeque<Bytes>,
    len: usize,
}

impl OutQueue {
    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.parts.push_back(b);
        }
    }
}

impl Buf for OutQueue {
    fn remaining(&self) -> usize {
        self.len
    }
    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |b| &b[..])
    }
    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
    fn advance(&mut self, mut cnt: usize) {
        self.len -= cnt;
        while cnt > 0 {
            let front = self.parts.front_mut().expect("advance within remaining");
            if cnt >= front.len() {
                cnt -= front.len();
                self.parts.pop_front();
            } else {
                front.advance(cnt);
                cnt = 0;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    AwaitContinue,
    Body,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    /// Write the queue, flush, then go to `Next`.
    Flushing(Next),
    /// Preview sent; waiting for `100 Continue` or a final answer.
    AwaitContinue,
    /// Sending the rest of the body.
    Body,
    /// The whole request is out.
    Done,
    /// Writing failed; only reading goes on.
    Broken,
}

/// A connection to an ICAP server.
pub(crate) struct Connection<S> {
    stream: S,
    buf: BytesMut,
    decoder: ResponseDecoder,
    wire_cap: Option<usize>,
    id: u64,
    /// Transactions completed on this connection.
    pub(crate) transactions: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream. `wire_cap`: log the bytes on the wire (all heads, at most
    /// this many body bytes per message) at target `icap_client::wire`.
    pub(crate) fn new(stream: S, limits: Limits, wire_cap: Option<usize>, id: u64) -> Self {
        Connection {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            decoder: ResponseDecoder::new(Method::Options, limits),
            wire_cap,
            id,
            transactions: 0,
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

    /// Sends one request and reads its response.
    pub(crate) async fn exchange(
        &mut self,
        out: Outgoing<'_>,
        t: &Timeouts,
    ) -> Result<Exchange, ExchangeError> {
        let Connection {
            stream,
            buf,
            decoder,
            wire_cap,
            id,
            transactions,
        } = self;
        let id = *id;
        let wire_cap = *wire_cap;
        decoder.set_method(out.method);
        if !decoder.is_idle() || !buf.is_empty() {
            // Leftover bytes between transactions mean the previous answer was longer
            // than it said: the connection is out of sync.
            return Err(ExchangeError::new(Error::protocol(
                "unexpected bytes on an idle connection",
            )));
        }
        wire_log(wire_cap, id, ">>", &out.head, usize::MAX);

        let mut q = OutQueue::default();
        let mut sender = Sender {
            state: SendState::Flushing(Next::Done),
            chunk: BytesMut::new(),
            carry: Bytes::new(),
            read: 0,
            hasher: None,
            eof: false,
            body_logged: 0,
        };
        let mut ieof = false;
        let mut plan = out.body;
        match &mut plan {
            None => q.push(out.head),
            Some(plan) => {
                sender.hasher = plan.digest.then(Sha256::new);
                let mut first = BytesMut::from(&out.head[..]);
                if let Some(p) = plan.preview {
                    // One byte past the preview tells whether the preview is the whole body.
                    let want = usize::try_from(p).unwrap_or(usize::MAX - 1) + 1;
                    let pv = sender.read_source(plan, want).await?;
                    let preview_len = pv.len().min(want - 1);
                    let data = pv.slice(..preview_len);
                    if !data.is_empty() {
                        let at = first.len();
                        chunked::encode_chunk_header(data.len() as u64, &mut first);
                        wire_log(wire_cap, id, ">>", &first[at..], usize::MAX);
                        sender.log_body(wire_cap, id, &data);
                        first.extend_from_slice(&data);
                        first.extend_from_slice(b"\r\n");
                    }
                    ieof = pv.len() < want;
                    let at = first.len();
                    chunked::encode_last_chunk(ieof, &Headers::new(), &mut first);
                    wire_log(wire_cap, id, ">>", &first[at..], usize::MAX);
                    sender.state = if ieof {
                        SendState::Flushing(Next::Done)
                    } else {
                        sender.carry = pv.slice(preview_len..);
                        SendState::Flushing(Next::AwaitContinue)
                    };
                } else {
                    sender.state = SendState::Flushing(Next::Body);
                }
                q.push(first.freeze());
            }
        }

        let mut resp = Response::default();
        let mut idle_at = Instant::now() + t.idle;
        let mut continue_at = idle_at;
        let mut write_error: Option<std::io::Error> = None;
        let fail = |error: Error, resp: &Response, sender: &Sender| ExchangeError {
            error,
            response_started: resp.got_byte,
            source_read: sender.read,
            too_large: false,
        };
        let (mut rd, mut wr) = tokio::io::split(&mut *stream);
        // One timer for the whole exchange, armed lazily: deadlines move on every read and
        // write, and re-registering a timer each time costs more than the I/O of a small
        // scan. The timer is moved earlier when a deadline shrinks, and re-armed when it
        // fires before the current deadline.
        let timer = tokio::time::sleep_until(idle_at);
        tokio::pin!(timer);
        loop {
            while !resp.done {
                match decoder.decode(buf) {
                    Ok(Some(ev)) => {
                        if let Err(e) = resp.handle(ev, &mut sender.state) {
                            return Err(fail(e, &resp, &sender));
                        }
                        if sender.state == SendState::Body && resp.continued_now {
                            resp.continued_now = false;
                            idle_at = Instant::now() + t.idle;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Err(fail(
                            Error::protocol(format!("invalid response: {e}")).with_source(e),
                            &resp,
                            &sender,
                        ));
                    }
                }
            }
            if resp.done {
                break;
            }
            if sender.state == SendState::Body && q.remaining() == 0 {
                let plan = plan.as_mut().expect("a body state implies a body plan");
                sender.refill(plan, &mut q, wire_cap, id).await?;
            }
            let writing = matches!(sender.state, SendState::Flushing(_) | SendState::Body);
            let (timer_at, phase) = match sender.state {
                SendState::AwaitContinue => (continue_at, Phase::Continue),
                SendState::Flushing(_) | SendState::Body => (idle_at, Phase::Send),
                SendState::Done | SendState::Broken => (idle_at, Phase::Response),
            };
            if timer_at < timer.deadline() {
                timer.as_mut().reset(timer_at);
            }
            tokio::select! {
                biased;
                r = rd.read_buf(buf) => match r {
                    Ok(0) => {
                        let what = if resp.got_byte {
                            "server closed the connection in the middle of the response"
                        } else {
                            "server closed the connection without answering"
                        };
                        let mut e = Error::closed(what);
                        if let Some(w) = write_error.take() {
                            e = e.with_source(w);
                        }
                        return Err(fail(e, &resp, &sender));
                    }
                    Ok(n) => {
                        resp.got_byte = true;
                        idle_at = Instant::now() + t.idle;
                        let cap = if resp.head_seen { resp.log_budget(wire_cap, n) } else { usize::MAX };
                        wire_log(wire_cap, id, "<<", &buf[buf.len() - n..], cap);
                    }
                    Err(e) => {
                        return Err(fail(Error::socket(e, "reading the response"), &resp, &sender));
                    }
                },
                w = async {
                    if q.remaining() > 0 {
                        wr.write_buf(&mut q).await.map(Some)
                    } else {
                        wr.flush().await.map(|()| None)
                    }
                }, if writing => match w {
                    Ok(Some(_)) => idle_at = Instant::now() + t.idle,
                    Ok(None) => {
                        if let SendState::Flushing(next) = sender.state {
                            sender.state = match next {
                                Next::AwaitContinue => {
                                    continue_at = Instant::now() + t.continue_wait;
                                    SendState::AwaitContinue
                                }
                                Next::Body => SendState::Body,
                                Next::Done => SendState::Done,
                            };
                        }
                    }
                    Err(e) => {
                        // The server may have answered and closed; read what it sent.
                        tracing::debug!(conn = id, error = %e, "write failed; reading any response");
                        write_error = Some(e);
                        sender.state = SendState::Broken;
                    }
                },
                () = &mut timer => {
                    if Instant::now() >= timer_at {
                        return Err(fail(Error::timeout(phase), &resp, &sender));
                    }
                    timer.as_mut().reset(timer_at);
                }
            }
        }

        let head = resp.head.take().expect("a finished response has a head");
        let request_complete = match sender.state {
            SendState::Done | SendState::AwaitContinue => true,
            SendState::Flushing(Next::Done | Next::AwaitContinue) => q.remaining() == 0,
            _ => false,
        };
        let closes = head
            .headers
            .get_all("Connection")
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body_complete = sender.eof || ieof;
        *transactions += 1;
        Ok(Exchange {
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
            continued: resp.continued,
            ieof,
            reusable: request_complete && !closes,
        })
    }
}

struct Sender {
    state: SendState,
    /// Reused read buffer for body chunks.
    chunk: BytesMut,
    /// Bytes read past the preview, sent first after `100 Continue`.
    carry: Bytes,
    /// Body bytes read from the source.
    read: u64,
    hasher: Option<Sha256>,
    /// The source is exhausted and the last chunk queued.
    eof: bool,
    body_logged: usize,
}

impl Sender {
    /// Reads up to `want` bytes (fewer only at the end of the source).
    async fn read_source(
        &mut self,
        plan: &mut BodyPlan<'_>,
        want: usize,
    ) -> Result<Bytes, ExchangeError> {
        if let BodySource::Memory(b) = &mut plan.source {
            let data = b.split_to(want.min(b.len()));
            self.read += data.len() as u64;
            if let Some(h) = &mut self.hasher {
                h.update(&data);
            }
            return Ok(data);
        }
        let BodySource::Reader(source) = &mut plan.source else {
            unreachable!("memory sources returned above")
        };
        self.chunk.clear();
        self.chunk.reserve(want.min(1 << 20));
        while self.chunk.len() < want {
            let room = (want - self.chunk.len()).min(plan.chunk_size.max(1));
            let start = self.chunk.len();
            self.chunk.resize(start + room, 0);
            let n = match source.read(&mut self.chunk[start..]).await {
                Ok(n) => n,
                Err(e) => {
                    let mut err = ExchangeError::new(
                        Error::new(
                            crate::error::ErrorKind::Io,
                            format!("reading the file: {e}"),
                        )
                        .with_source(e),
                    );
                    err.source_read = self.read;
                    return Err(err);
                }
            };
            self.chunk.truncate(start + n);
            if n == 0 {
                break;
            }
            self.read += n as u64;
            if let Some(max) = plan.max_size
                && self.read > max
            {
                let mut err = ExchangeError::new(Error::config("file larger than the size limit"));
                err.source_read = self.read;
                err.too_large = true;
                return Err(err);
            }
        }
        let data = self.chunk.split().freeze();
        if let Some(h) = &mut self.hasher {
            h.update(&data);
        }
        Ok(data)
    }

    /// Queues the next body chunk, or the last chunk at the end of the source.
    async fn refill(
        &mut self,
        plan: &mut BodyPlan<'_>,
        q: &mut OutQueue,
        wire_cap: Option<usize>,
        id: u64,
    ) -> Result<(), ExchangeError> {
        let data = if self.carry.is_empty() {
            self.read_source(plan, plan.chunk_size.max(1)).await?
        } else {
            std::mem::take(&mut self.carry)
        };
        if data.is_empty() {
            let mut last = BytesMut::with_capacity(8);
            chunked::encode_last_chunk(false, &Headers::new(), &mut last);
            wire_log(wire_cap, id, ">>", &last, usize::MAX);
            q.push(last.freeze());
            self.eof = true;
            self.state = SendState::Flushing(Next::Done);
        } else {
            let mut size = BytesMut::with_capacity(20);
            chunked::encode_chunk_header(data.len() as u64, &mut size);
            wire_log(wire_cap, id, ">>", &size, usize::MAX);
            self.log_body(wire_cap, id, &data);
            q.push(size.freeze());
            q.push(data);
            q.push(Bytes::from_static(b"\r\n"));
        }
        Ok(())
    }

    fn log_body(&mut self, wire_cap: Option<usize>, id: u64, data: &[u8]) {
        if let Some(cap) = wire_cap {
            let budget = cap.saturating_sub(self.body_logged);
            self.body_logged += data.len().min(budget);
            wire_log(Some(cap), id, ">> body", data, budget);
        }
    }
}

#[derive(Default)]
#[allow(clippy::struct_excessive_bools)] // independent facts of one response
struct Response {
    head: Option<ResponseHead>,
    head_seen: bool,
    in_continue: bool,
    continued: bool,
    continued_now: bool,
    body_len: u64,
    hasher: Option<Sha256>,
    done: bool,
    got_byte: bool,
    logged: usize,
}

impl Response {
    fn handle(&mut self, ev: Event<ResponseHead>, state: &mut SendState) -> Result<(), Error> {
        match ev {
            Event::Head(h) if h.status.as_u16() == 100 => {
                match *state {
                    SendState::AwaitContinue | SendState::Flushing(Next::AwaitContinue) => {
                        *state = SendState::Body;
                        self.continued = true;
                        self.continued_now = true;
                    }
                    _ => return Err(Error::protocol("unexpected 100 Continue")),
                }
                self.in_continue = true;
            }
            Event::Head(h) if h.status.is_informational() => {
                return Err(Error::protocol(format!(
                    "unexpected informational status {}",
                    h.status
                )));
            }
            Event::Head(h) => {
                self.head_seen = true;
                if h.body.is_some() {
                    self.hasher = Some(Sha256::new());
                }
                self.head = Some(h);
            }
            Event::Data(d) => {
                self.body_len += d.len() as u64;
                if let Some(hs) = &mut self.hasher {
                    hs.update(&d);
                }
            }
            Event::PreviewEnd { .. } => return Err(Error::protocol("preview in a response")),
            Event::End(_) => {
                if self.in_continue {
                    self.in_continue = false;
                } else {
                    self.done = true;
                }
            }
        }
        Ok(())
    }

    /// How many of `n` received body bytes may still be logged.
    fn log_budget(&mut self, wire_cap: Option<usize>, n: usize) -> usize {
        let b = wire_cap.unwrap_or(0).saturating_sub(self.logged);
        self.logged += b.min(n);
        b
    }
}

fn wire_log(cap: Option<usize>, conn: u64, dir: &str, bytes: &[u8], max: usize) {
    if cap.is_none() || bytes.is_empty() {
        return;
    }
    let shown = bytes.len().min(max);
    if shown == 0 && max == 0 {
        tracing::debug!(target: WIRE_TARGET, conn, dir, len = bytes.len(), "(body bytes beyond the log cap)");
        return;
    }
    tracing::debug!(
        target: WIRE_TARGET,
        conn,
        dir,
        len = bytes.len(),
        "{}{}",
        bytes[..shown].escape_ascii(),
        if shown < bytes.len() { " [...]" } else { "" }
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

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
            head: Bytes::from_static(HEAD),
            body: Some(BodyPlan {
                source: BodySource::Reader(src),
                preview,
                chunk_size: 1000,
                max_size: None,
                digest: true,
            }),
        }
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
        let (mut conn, mut peer) = pair();
        let server = tokio::spawn(async move {
            read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(b"ICAP/1.0 100 Continue\r\n\r\n")
                .await
                .unwrap();
            let rest = read_until(&mut peer, b"\r\n0\r\n\r\n").await;
            peer.write_all(b"ICAP/1.0 204 No Content\r\n\r\n")
                .await
                .unwrap();
            (rest, peer)
        });
        let out = Outgoing {
            method: Method::Respmod,
            head: Bytes::from_static(HEAD),
            body: Some(BodyPlan {
                source: BodySource::Memory(Bytes::from_static(b"abcdefghij")),
                preview: Some(3),
                chunk_size: 4,
                max_size: None,
                digest: true,
            }),
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
                b"ICAP/1.0 200 OK\r\nX-Virus-ID: Bad\r\nEncapsulated: null-body=0\r\n\r\n",
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
        assert!(ex.reusable && !ex.early && !ex.continued && !ex.body_complete);
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
        peer.write_all(b"ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=X;\r\nEncapsulated: null-body=0\r\n\r\n")
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
}
