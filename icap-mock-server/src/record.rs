//! Recording proxied exchanges: for each one a request file, a response file and a small
//! metadata file, written next to each other in the recording directory.
//!
//! ```text
//!  DIR/<stem>.req    the request head exactly as sent upstream (and its chunked body,
//!                    as sent, only when bodies are kept and it fits the limit)
//!  DIR/<stem>.res    every byte the upstream answered, `100 Continue` included
//!  DIR/<stem>.json   RecordMeta: time, upstream, ISTag, status, timings, body SHA-256 and length
//! ```
//!
//! Bodies are not stored by default (uploads may be private): only their digest and length.
//! The response is written to disk as it arrives, so a recording holds no more than one read
//! buffer in memory whatever the answer's size. Recording only observes: what the client
//! receives is decided before a byte reaches the recorder, and a failing disk is logged,
//! not passed on.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// Where and how to record ([`MockServerBuilder::record`](crate::MockServerBuilder::record)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    pub(crate) dir: PathBuf,
    pub(crate) keep_body: usize,
}

impl RecordSettings {
    /// Records into `dir` (created if missing), bodies as digest and length only.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RecordSettings {
            dir: dir.into(),
            keep_body: 0,
        }
    }

    /// Also keeps request bodies (their chunked wire bytes) in the `.req` file when they
    /// are at most `bytes` long on the wire; `0` (the default) keeps none.
    #[must_use]
    pub fn keep_bodies_up_to(mut self, bytes: usize) -> Self {
        self.keep_body = bytes;
        self
    }

    /// The recording directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The metadata file of one recorded exchange (`<stem>.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // independent facts of one exchange
#[serde(default)]
pub struct RecordMeta {
    /// File stem shared by `.req`, `.res` and `.json`.
    pub stem: String,
    /// When the request arrived, milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// The upstream URL.
    pub upstream: String,
    /// `OPTIONS`, `REQMOD` or `RESPMOD`.
    pub method: String,
    /// The mock's service the client asked for.
    pub service: String,
    /// The file name the embedded HTTP head names, if any.
    pub filename: Option<String>,
    /// The request's `Preview` size.
    pub preview: Option<u64>,
    /// The preview ended with `ieof`.
    pub ieof: bool,
    /// The client sent `Allow: 204`.
    pub allow_204: bool,
    /// Body bytes the client sent (and the proxy forwarded).
    pub body_len: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub body_sha256: String,
    /// Whether `.req` holds the body after the head.
    pub body_kept: bool,
    /// Length of the request head in `.req`.
    pub request_head_len: u64,
    /// The final status the upstream answered, if one came.
    pub status: Option<u16>,
    /// The upstream's `ISTag`, quotes included, if one came.
    pub istag: Option<String>,
    /// Whether the upstream sent `100 Continue`.
    pub continued: bool,
    /// Bytes in `.res`.
    pub response_len: u64,
    /// Milliseconds to connect upstream (TLS included).
    pub connect_ms: u64,
    /// Milliseconds from the request's head to the first byte of the upstream's answer.
    pub first_byte_ms: Option<u64>,
    /// Milliseconds from the request's head to the end of the answer.
    pub total_ms: u64,
    /// Why the exchange did not complete, if it did not.
    pub error: Option<String>,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One exchange being recorded.
pub(crate) struct Tape {
    dir: PathBuf,
    t0: Instant,
    req: Vec<u8>,
    keep_body: usize,
    body_kept: bool,
    res: Option<tokio::fs::File>,
    pub(crate) meta: RecordMeta,
}

impl Tape {
    /// Starts a tape; `None` (logged) when the directory cannot be written.
    pub(crate) async fn open(settings: &RecordSettings, id: u64, method: &str) -> Option<Tape> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, ms);
        // Unique per process run and sortable by time.
        let stem = format!("{now:013}-{id:06}-{}", method.to_ascii_lowercase());
        if let Err(e) = tokio::fs::create_dir_all(&settings.dir).await {
            tracing::warn!(dir = %settings.dir.display(), error = %e, "recording: cannot create the directory");
            return None;
        }
        let path = settings.dir.join(format!("{stem}.res"));
        let res = match tokio::fs::File::create(&path).await {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "recording: cannot create the file");
                return None;
            }
        };
        Some(Tape {
            dir: settings.dir.clone(),
            t0: Instant::now(),
            req: Vec::new(),
            keep_body: settings.keep_body,
            body_kept: settings.keep_body > 0,
            res,
            meta: RecordMeta {
                stem,
                time_unix_ms: now,
                method: method.to_owned(),
                ..RecordMeta::default()
            },
        })
    }

    pub(crate) fn connected(&mut self) {
        self.meta.connect_ms = ms(self.t0.elapsed());
    }

    /// Forgets the request written so far (it is sent again on another connection).
    pub(crate) fn restart_request(&mut self) {
        self.req.clear();
    }

    pub(crate) fn request_head(&mut self, bytes: &[u8]) {
        self.req.extend_from_slice(bytes);
        self.meta.request_head_len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    }

    /// Body bytes as written upstream (chunk framing included).
    pub(crate) fn request_body(&mut self, wire: &[u8]) {
        if !self.body_kept {
            return;
        }
        let head = usize::try_from(self.meta.request_head_len).unwrap_or(usize::MAX);
        let body = self.req.len().saturating_sub(head);
        if body.saturating_add(wire.len()) > self.keep_body {
            // Too big to keep: the file keeps the head only, and says so.
            self.body_kept = false;
            self.req.truncate(head);
            return;
        }
        self.req.extend_from_slice(wire);
    }

    /// Bytes read from the upstream, as read.
    pub(crate) async fn response(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.meta.first_byte_ms.is_none() {
            self.meta.first_byte_ms = Some(ms(self.t0.elapsed()));
        }
        self.meta.response_len = self
            .meta
            .response_len
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        if let Some(f) = &mut self.res
            && let Err(e) = f.write_all(bytes).await
        {
            tracing::warn!(error = %e, "recording: writing the response failed");
            self.res = None;
        }
    }

    /// Writes `.req` and `.json`.
    pub(crate) async fn finish(mut self) {
        self.meta.total_ms = ms(self.t0.elapsed());
        self.meta.body_kept = self.body_kept && self.meta.body_len > 0;
        if let Some(mut f) = self.res.take() {
            let _ = f.flush().await;
        }
        let stem = self.meta.stem.clone();
        let req = self.dir.join(format!("{stem}.req"));
        if let Err(e) = tokio::fs::write(&req, &self.req).await {
            tracing::warn!(path = %req.display(), error = %e, "recording: writing the request failed");
        }
        let meta = self.dir.join(format!("{stem}.json"));
        let text = serde_json::to_vec_pretty(&self.meta).unwrap_or_default();
        if let Err(e) = tokio::fs::write(&meta, text).await {
            tracing::warn!(path = %meta.display(), error = %e, "recording: writing the metadata failed");
        }
    }
}
