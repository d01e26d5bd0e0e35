//! What goes into an exchange (the request, its body and where the body comes from) and
//! what comes out of it (the outcome, or the error with what it means for a retry).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use icap_proto::{Method, ResponseHead};
use tokio::io::AsyncRead;

use crate::error::Error;

/// Size and modification time of a file, taken before its scan and compared after its last
/// byte was read: a file that changed under the upload gets no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub(crate) len: u64,
    pub(crate) modified: Option<SystemTime>,
}

impl FileStamp {
    pub(crate) fn of(m: &std::fs::Metadata) -> Self {
        FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

/// A counter of body bytes sent, shared between a scan and whoever shows its progress.
/// Cheap to clone: clones count into the same total.
///
/// ```
/// use icap_client::{Progress, ScanMeta};
/// let p = Progress::default();
/// let meta = ScanMeta::new("big.iso").with_progress(p.clone());
/// assert_eq!(p.bytes(), 0); // grows while `scan_file(.., &meta)` sends the file
/// # drop(meta);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Body bytes sent so far.
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: u64) {
        // Saturating: a counter that wraps would show a rate going backwards.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(n))
            });
    }
}

/// Where body bytes come from.
pub(crate) enum BodySource<'a> {
    /// A file opened for this attempt, with the stamp taken before the scan.
    File(Arc<std::fs::File>, FileStamp),
    /// Any reader.
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
    /// Body bytes per write: chunks from memory are gathered into one vectored write of
    /// about this many bytes, and a file is read this many bytes at a time (see
    /// [`BodyPlan::batch`] and [`BodyPlan::read_size`]).
    pub(crate) write_batch: usize,
    /// The size the request announced (`Content-Length` of the embedded head): exactly this
    /// many bytes must come from the source, no fewer, no more. `None`: unknown, read to EOF.
    pub(crate) declared: Option<u64>,
    /// Abort when a body of unknown size turns out longer than this.
    pub(crate) max_size: Option<u64>,
    /// Compute the SHA-256 of the body sent and of the body received.
    pub(crate) digest: bool,
    /// Counts the body bytes read from the source for sending.
    pub(crate) progress: Option<Progress>,
}

impl BodyPlan<'_> {
    /// The bytes to queue before writing: memory (sliced without a copy), files (read
    /// [`read_size`](Self::read_size) at a time) and readers go out up to `write_batch` at a
    /// time. A reader's chunks are gathered only while it has bytes ready: a chunk of a slow
    /// upload is written as soon as it is read.
    pub(crate) fn batch(&self) -> usize {
        self.write_batch
    }

    /// The bytes to take from the source at a time; they go out in `chunk_size` chunks. A
    /// file is read `write_batch` at a time: each read is a trip through tokio's blocking
    /// pool, and one per 64 KiB made a 64 MiB file scan about 4x slower (BENCHMARKS.md,
    /// "64 MiB").
    pub(crate) fn read_size(&self) -> usize {
        let chunk = self.chunk_size.max(1);
        match self.source {
            BodySource::File(..) => self.write_batch.max(chunk),
            BodySource::Memory(_) | BodySource::Reader(_) => chunk,
        }
    }
}

/// One request to send: the encoded head and, except for `OPTIONS`, a body.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: Method,
    /// The head carries `Allow: 204`.
    pub(crate) allow_204: bool,
    /// Borrowed: a scan keeps its head for a retry on a fresh connection, and a clone of
    /// it would allocate (the first clone of a `Bytes` made from a buffer shares it).
    pub(crate) head: &'a Bytes,
    pub(crate) body: Option<BodyPlan<'a>>,
    /// The most body bytes read back from the answer (`None`: no cap).
    pub(crate) max_answer_body: Option<u64>,
}

/// What came back, and what happened on the way.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts of one exchange, not a state
pub(crate) struct ExchangeOutcome {
    /// Boxed as the exchange handed it over (a head is a few hundred bytes).
    pub(crate) head: Box<ResponseHead>,
    /// Body bytes received (they are hashed and dropped, never kept).
    pub(crate) body_len: u64,
    pub(crate) body_sha256: Option<[u8; 32]>,
    /// Body bytes sent.
    pub(crate) sent: u64,
    pub(crate) sent_sha256: Option<[u8; 32]>,
    /// The whole body was sent and checked against its source (in the preview with
    /// `ieof`, or up to the terminal chunk).
    pub(crate) body_complete: bool,
    /// The response ended before the request was completely sent.
    pub(crate) early: bool,
    /// The final answer came in reply to the preview, before any `100 Continue`.
    pub(crate) answered_in_preview: bool,
    /// The preview was answered with `100 Continue`.
    pub(crate) continued: bool,
    /// The preview held the whole body (`0; ieof`).
    pub(crate) ieof: bool,
    /// The connection may carry the next request.
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
    pub(super) fn new(error: Error) -> Self {
        ExchangeError {
            error,
            response_started: false,
            source_read: 0,
            too_large: false,
        }
    }
}
