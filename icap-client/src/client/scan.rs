//! The scan of one body: the public `scan_*` entry points, the size limit and deadline
//! around the failover loop, and one attempt on one server (`OPTIONS` first if used, the
//! preview decision, the exchange, the stale-connection retry, the report's facts).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::time::Instant;

use super::heads::scan_head;
use super::meta::ScanMeta;
use super::shared::{Client, LOG_TARGET, is_stale};
use super::source::{Source, open_checked};
use crate::config::PreviewMode;
use crate::connection::{BodyPlan, BodySource, ExchangeOutcome, FileStamp, Outgoing};
use crate::error::{Error, ErrorKind, Phase};
use crate::server::ServerState;
use crate::verdict::{self, NotScannedReason, ScanReport, Verdict};

impl Client {
    /// Scans a file, streaming it from disk (memory stays bounded whatever its size).
    pub async fn scan_file(&self, path: impl AsRef<Path>, meta: &ScanMeta) -> ScanReport {
        let path = path.as_ref().to_path_buf();
        let stamp = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => FileStamp::of(&m),
            Ok(_) => {
                return Self::failed_now(Error::new(
                    ErrorKind::Io,
                    format!("{} is not a regular file", path.display()),
                ));
            }
            Err(e) => {
                return Self::failed_now(
                    Error::new(ErrorKind::Io, format!("cannot read {}", path.display()))
                        .with_source(e),
                );
            }
        };
        let mut meta = meta.clone();
        if meta.filename.is_none() {
            meta.filename = path.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        Box::pin(self.scan_source(Source::Path(path, stamp), Some(stamp.len), &meta)).await
    }

    /// Scans bytes in memory.
    pub async fn scan_bytes(&self, body: impl Into<Bytes>, meta: &ScanMeta) -> ScanReport {
        let b: Bytes = body.into();
        let n = b.len() as u64;
        Box::pin(self.scan_source(Source::Bytes(b), Some(n), meta)).await
    }

    /// Scans what a reader yields. With `size: None` the size limit is enforced while
    /// streaming. A reader cannot be rewound, so it is never retried.
    pub async fn scan_reader<R>(&self, reader: R, size: Option<u64>, meta: &ScanMeta) -> ScanReport
    where
        R: AsyncRead + Unpin + Send,
    {
        Box::pin(self.scan_source(Source::Reader(Some(Box::new(reader))), size, meta)).await
    }

    fn failed_now(error: Error) -> ScanReport {
        ScanReport {
            verdict: Verdict::Failed { error },
            server: None,
            service: None,
            istag: None,
            status: None,
            size: 0,
            sent: 0,
            sha256: None,
            preview: None,
            early_response: false,
            attempts: 0,
            duration: Duration::ZERO,
        }
    }

    /// The scan of one source. The public entry points box this future: its state (the
    /// deadline, the failover loop, the exchange, a checked-out connection) is about
    /// 3.4 KB, and a caller that spawns a scan per upload would otherwise copy all of it
    /// into the task and again into the task's cell; boxed, it is allocated once and
    /// never moved (BENCHMARKS.md, "The boxed scan future").
    async fn scan_source(
        &self,
        mut src: Source<'_>,
        size: Option<u64>,
        meta: &ScanMeta,
    ) -> ScanReport {
        let start = Instant::now();
        let cfg = &self.inner.cfg;
        let mut report = Self::failed_now(Error::new(ErrorKind::Unavailable, "no attempt made"));
        report.size = size.unwrap_or(0);
        if let (Some(limit), Some(size)) = (cfg.max_size, size)
            && size > limit
        {
            report.verdict = Verdict::NotScanned {
                reason: NotScannedReason::TooLarge { size, limit },
            };
            tracing::debug!(target: LOG_TARGET, size, limit, "not scanned: larger than the size limit");
            return report;
        }
        let deadline = cfg.timeouts.deadline_for(size.unwrap_or(0));
        let span = tracing::debug_span!(target: LOG_TARGET, "scan", file = meta.filename.as_deref().unwrap_or("-"), size);
        let fut = tracing::Instrument::instrument(
            self.scan_servers(&mut src, size, meta, &mut report),
            span,
        );
        report.verdict = if let Ok(v) = tokio::time::timeout(deadline, fut).await {
            v
        } else {
            let error = Error::timeout(Phase::Deadline);
            // The attempt was cut off from outside: count it against its server here.
            if let Some(s) = self
                .inner
                .servers
                .iter()
                .find(|s| Some(&s.url) == report.server.as_ref())
                && s.record_failure(&cfg.health)
            {
                self.announce_down(s, &error);
            }
            Verdict::Failed { error }
        };
        report.duration = start.elapsed();
        tracing::debug!(target: LOG_TARGET,
            verdict = report.verdict.label(),
            server = report.server.as_deref().unwrap_or("-"),
            status = report.status,
            ms = report.duration.as_millis() as u64,
            "scan finished"
        );
        report
    }

    /// One scan on one server: `Err` for failures that say something about the server.
    #[allow(clippy::too_many_lines)] // one scan in protocol order (OPTIONS, Transfer-*, preview, body source, exchange); the steps share its state
    pub(super) async fn scan_on(
        &self,
        s: &ServerState,
        src: &mut Source<'_>,
        size: Option<u64>,
        meta: &ScanMeta,
        report: &mut ScanReport,
    ) -> Result<Verdict, Error> {
        let cfg = &self.inner.cfg;
        let method = cfg.method;
        let options = if cfg.use_options {
            let o = self.server_options(s).await?;
            if !o.methods.is_empty() && !o.supports(method) {
                return Err(Error::new(
                    ErrorKind::Status(405),
                    format!(
                        "service {} does not offer {method} (Methods: {})",
                        s.uri.service(),
                        o.methods
                            .iter()
                            .map(|m| m.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Some(o)
        } else {
            None
        };
        let ext = meta
            .filename
            .as_deref()
            .and_then(|f| Path::new(f).extension())
            .map(|e| e.to_string_lossy().into_owned());
        let transfer = match (&options, &ext) {
            (Some(o), Some(ext)) => o.transfer_for(ext),
            _ => icap_proto::options::Transfer::Preview,
        };
        if transfer == icap_proto::options::Transfer::Ignore {
            return Ok(Verdict::NotScanned {
                reason: NotScannedReason::IgnoredByServer {
                    extension: ext.unwrap_or_default(),
                },
            });
        }
        let preview = match cfg.preview {
            PreviewMode::Off => None,
            PreviewMode::Fixed(n) => Some(n),
            PreviewMode::Auto => match transfer {
                icap_proto::options::Transfer::Complete => None,
                _ => options.as_ref().and_then(|o| o.preview),
            },
        };
        report.preview = preview;
        let head = scan_head(
            cfg,
            &self.inner.static_headers,
            &s.scan_head_start,
            meta,
            size,
            preview,
        )?;
        let mut fresh = false;
        loop {
            let mut co = s
                .checkout(
                    &cfg.timeouts,
                    cfg.limits,
                    cfg.wire_log,
                    cfg.pool_idle_timeout,
                    fresh,
                )
                .await?;
            // A declared size is the body: exactly that many bytes, checked by the sender.
            let mut reader;
            let source = match &mut *src {
                Source::Bytes(b) => BodySource::Memory(b.clone()),
                Source::Path(p, stamp) => BodySource::File(open_checked(p, *stamp).await?, *stamp),
                Source::Reader(r) => {
                    reader = r.take().ok_or_else(|| {
                        Error::new(ErrorKind::Io, "the reader was already consumed")
                    })?;
                    BodySource::Reader(&mut reader)
                }
            };
            let max_size = if size.is_none() { cfg.max_size } else { None };
            let out = Outgoing {
                method,
                allow_204: cfg.allow_204,
                head: &head,
                body: Some(BodyPlan {
                    source,
                    preview,
                    chunk_size: cfg.chunk_size,
                    write_batch: cfg.write_batch,
                    declared: size,
                    max_size,
                    digest: cfg.digest,
                    progress: meta.progress.clone(),
                }),
                max_answer_body: cfg.max_adapted_body,
            };
            match co.conn.exchange(out, &cfg.timeouts).await {
                Ok(ex) => {
                    let reusable = ex.reusable;
                    let v = self.finish(s, &ex, report);
                    if reusable {
                        s.checkin(co);
                    }
                    return v;
                }
                Err(e) if e.too_large => {
                    return Ok(Verdict::NotScanned {
                        reason: NotScannedReason::TooLarge {
                            size: e.source_read,
                            limit: cfg.max_size.unwrap_or(0),
                        },
                    });
                }
                Err(e) if co.reused && !fresh && is_stale(&e) && src.rewindable() => {
                    tracing::debug!(target: LOG_TARGET, server = %s.url, "pooled connection was stale; retrying on a fresh one");
                    report.attempts += 1;
                    fresh = true;
                }
                Err(e) => return Err(e.error),
            }
        }
    }

    fn finish(
        &self,
        s: &ServerState,
        ex: &ExchangeOutcome,
        report: &mut ScanReport,
    ) -> Result<Verdict, Error> {
        let method = self.inner.cfg.method;
        report.status = Some(ex.head.status.as_u16());
        report.istag = ex
            .head
            .istag()
            .map(|t| String::from_utf8_lossy(t).into_owned());
        report.early_response = ex.early;
        report.sent = ex.sent;
        if ex.body_complete {
            report.size = ex.sent;
        } else {
            report.size = report.size.max(ex.sent);
        }
        report.sha256 = ex
            .sent_sha256
            .map(|d| format!("{:x}", sha2::digest::Output::<sha2::Sha256>::from(d)));
        s.note_istag(ex.head.istag());
        tracing::debug!(target: LOG_TARGET,
            status = ex.head.status.as_u16(),
            sent = ex.sent,
            received = ex.body_len,
            continued = ex.continued,
            ieof = ex.ieof,
            early = ex.early,
            reusable = ex.reusable,
            "transaction done"
        );
        match verdict::from_exchange(method, ex) {
            Verdict::Failed { error } => Err(error),
            v => Ok(v),
        }
    }
}
