//! The body's way out, and the one rule that is about the file rather than the protocol:
//! the body sent is exactly the file (see [`Sender`]).

use std::io::Read as _;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use icap_proto::{Headers, chunked};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::plan::{BodyPlan, BodySource, ExchangeError, FileStamp};
use super::wire::{OutQueue, wire_log};
use crate::error::{Error, ErrorKind};

/// What comes after the queued bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// The preview (without `ieof`) is out: tell the exchange, wait for its answer.
    AwaitContinue,
    /// Go on with the body.
    Body,
    /// The whole request is out: tell the exchange.
    Done,
}

/// Where sending the request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendState {
    /// Write the queue, flush, then go to `Next`.
    Flushing(Next),
    /// Preview sent; waiting for `100 Continue` or a final answer.
    AwaitContinue,
    /// Sending the rest of the body.
    Body,
    /// The whole request is out.
    Done,
    /// Writing failed, or the answer made the rest pointless; only reading goes on.
    Stopped,
}

/// Reads the body from its source and queues it as chunks.
///
/// Source integrity: a body with a declared size must yield exactly that many bytes. A
/// source that ends early, one that still has bytes past the declared size, and a file
/// whose size or modification time changed since the scan began are a `Source` error
/// raised *before* the terminal chunk is queued, so no server ever answers for a part of
/// a file (the caller drops the connection).
pub(super) struct Sender {
    pub(super) state: SendState,
    /// Reused read buffer for body chunks.
    pub(super) chunk: BytesMut,
    /// Bytes read past the preview, sent first after `100 Continue`.
    pub(super) carry: Bytes,
    /// Body bytes read from the source.
    pub(super) read: u64,
    pub(super) hasher: Option<Sha256>,
    /// The source is exhausted (and checked); the last chunk may be queued.
    pub(super) eof: bool,
    pub(super) body_logged: usize,
}

fn source_error(msg: String, read: u64) -> ExchangeError {
    let mut e = ExchangeError::new(Error::new(ErrorKind::Source, msg));
    e.source_read = read;
    e
}

impl Sender {
    /// Reads up to `want` bytes (fewer only at the end of the source, never past a declared
    /// size). Sets `eof` once the source is exhausted and has passed its checks.
    pub(super) async fn read_source(
        &mut self,
        plan: &mut BodyPlan<'_>,
        want: usize,
    ) -> Result<Bytes, ExchangeError> {
        if self.eof {
            return Ok(Bytes::new());
        }
        if let BodySource::Memory(b) = &mut plan.source {
            let data = b.split_to(want.min(b.len()));
            self.read += data.len() as u64;
            if let Some(h) = &mut self.hasher {
                h.update(&data);
            }
            self.eof = b.is_empty();
            return Ok(data);
        }
        // Never read past a declared size: what lies beyond is probed separately.
        let want = match plan.declared {
            Some(d) => want.min(usize::try_from(d.saturating_sub(self.read)).unwrap_or(usize::MAX)),
            None => want,
        };
        self.chunk.clear();
        self.chunk.reserve(want.min(1 << 20));
        let mut ended = false;
        while self.chunk.len() < want {
            let room = want - self.chunk.len();
            let start = self.chunk.len();
            self.chunk.resize(start + room, 0);
            let n = match read_some(&mut plan.source, &mut self.chunk, start).await {
                Ok(n) => n,
                Err(e) => {
                    let mut err = ExchangeError::new(
                        Error::new(ErrorKind::Io, "reading the file").with_source(e),
                    );
                    err.source_read = self.read;
                    return Err(err);
                }
            };
            self.chunk.truncate(start + n);
            if n == 0 {
                ended = true;
                break;
            }
            self.read += n as u64;
            if let Some(p) = &plan.progress {
                p.add(n as u64);
            }
            if let Some(max) = plan.max_size
                && plan.declared.is_none()
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
        match plan.declared {
            Some(d) if ended && self.read < d => {
                return Err(source_error(
                    format!(
                        "the file ended after {} of its {d} bytes while it was being sent \
                         (truncated or still being written); no verdict for a part of a file",
                        self.read
                    ),
                    self.read,
                ));
            }
            Some(d) if self.read == d => self.finish_source(plan).await?,
            None if ended => self.eof = true,
            _ => {}
        }
        Ok(data)
    }

    /// The declared size has been read: the source must be at its end, and a file must
    /// still have the size and modification time it had when the scan began.
    async fn finish_source(&mut self, plan: &mut BodyPlan<'_>) -> Result<(), ExchangeError> {
        let mut probe = BytesMut::zeroed(1);
        let more = read_some(&mut plan.source, &mut probe, 0)
            .await
            .map_err(|e| {
                let mut err = ExchangeError::new(
                    Error::new(ErrorKind::Io, "reading the file").with_source(e),
                );
                err.source_read = self.read;
                err
            })?;
        if more > 0 {
            return Err(source_error(
                format!(
                    "the file has more than the {} bytes it had when the scan began \
                     (it grew while it was being sent); no verdict for a part of a file",
                    self.read
                ),
                self.read,
            ));
        }
        if let BodySource::File(f, stamp) = &plan.source {
            let f = Arc::clone(f);
            let now = tokio::task::spawn_blocking(move || f.metadata())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            let now = now.map(|m| FileStamp::of(&m)).map_err(|e| {
                let mut err = ExchangeError::new(
                    Error::new(ErrorKind::Io, "checking the file").with_source(e),
                );
                err.source_read = self.read;
                err
            })?;
            if now != *stamp {
                return Err(source_error(
                    format!(
                        "the file changed while it was being sent (size {} -> {}, \
                         modification time {})",
                        stamp.len,
                        now.len,
                        if now.modified == stamp.modified {
                            "unchanged"
                        } else {
                            "changed"
                        }
                    ),
                    self.read,
                ));
            }
        }
        self.eof = true;
        Ok(())
    }

    /// Queues the next body chunk, or the last chunk at the end of the source.
    pub(super) async fn refill(
        &mut self,
        plan: &mut BodyPlan<'_>,
        q: &mut OutQueue,
        wire_cap: Option<usize>,
        id: u64,
    ) -> Result<(), ExchangeError> {
        let mut data = if self.carry.is_empty() {
            self.read_source(plan, plan.read_size()).await?
        } else {
            std::mem::take(&mut self.carry)
        };
        if data.is_empty() {
            // An empty read before the end is impossible: read_source returns data or
            // sets eof (or fails). The last chunk only ever follows a checked source.
            debug_assert!(self.eof, "empty body read before the end of the source");
            let mut last = BytesMut::with_capacity(8);
            chunked::encode_last_chunk(false, &Headers::new(), &mut last);
            wire_log(wire_cap, id, ">>", &last, usize::MAX);
            q.push(last.freeze());
            self.state = SendState::Flushing(Next::Done);
        } else {
            // In chunks of `chunk_size` (a file's read is larger), sharing `data`.
            while !data.is_empty() {
                let piece = data.split_to(data.len().min(plan.chunk_size.max(1)));
                let mut size = BytesMut::with_capacity(20);
                chunked::encode_chunk_header(piece.len() as u64, &mut size);
                wire_log(wire_cap, id, ">>", &size, usize::MAX);
                self.log_body(wire_cap, id, &piece);
                q.push(size.freeze());
                q.push(piece);
                q.push(Bytes::from_static(b"\r\n"));
            }
        }
        Ok(())
    }

    /// Logs body bytes sent, up to the payload log's cap per message.
    pub(super) fn log_body(&mut self, wire_cap: Option<usize>, id: u64, data: &[u8]) {
        if let Some(cap) = wire_cap {
            let budget = cap.saturating_sub(self.body_logged);
            self.body_logged += data.len().min(budget);
            wire_log(Some(cap), id, ">> body", data, budget);
        }
    }
}

/// One read from the source into `buf[from..]`. A file is read on tokio's blocking pool,
/// straight into `buf`, which is moved there and back (left empty if the read's task
/// failed).
async fn read_some(
    src: &mut BodySource<'_>,
    buf: &mut BytesMut,
    from: usize,
) -> std::io::Result<usize> {
    match src {
        BodySource::File(f, _) => {
            let f = Arc::clone(f);
            let mut owned = std::mem::take(buf);
            let task = tokio::task::spawn_blocking(move || {
                let r = loop {
                    match (&*f).read(&mut owned[from..]) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        r => break r,
                    }
                };
                (owned, r)
            });
            let (owned, r) = task
                .await
                .unwrap_or_else(|e| (BytesMut::new(), Err(std::io::Error::other(e))));
            *buf = owned;
            r
        }
        BodySource::Reader(r) => r.read(&mut buf[from..]).await,
        BodySource::Memory(_) => unreachable!("memory sources are sliced, not read"),
    }
}
