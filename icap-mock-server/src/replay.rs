//! Replaying a recording (see [`crate::record`]): the mock answers each request with what the
//! real server answered the matching recorded one.
//!
//! # Matching
//!
//! Among the recorded exchanges of the same method (at each step a recording of the same
//! service and the same `Allow: 204` first, the latest first):
//!
//! 1. the body's SHA-256 (for a request with a body);
//! 2. the file name the embedded HTTP head names (`Content-Disposition`, else the last URL
//!    segment);
//! 3. the fallback: a recording whose body had the same length and the same file name
//!    absence, for bodies without a name (a second replay of a generated body of the same
//!    size, say).
//!
//! `OPTIONS` is answered with the recorded `OPTIONS` answer of the service (of any service
//! when that one has none). Nothing matching: the [`Unmatched`] answer, by default a
//! `500` with `X-Mock-Replay-Error`, never a silent clean.
//!
//! # What is replayed
//!
//! The recorded answer's head (status, reason, every header in order, the recorded
//! `ISTag`) and body; the framing is recomputed (`Encapsulated` offsets, chunk sizes) and
//! a `Date` header is set to now. A `100 Continue` in the recording is not replayed as is:
//! the replay asks for the whole body (it needs it for the digest) with its own `100
//! Continue` after a preview.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use icap_proto::{Event, Method, ResponseDecoder, ResponseHead, StatusCode};

use crate::record::RecordMeta;

/// What an unmatched request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unmatched {
    /// This status (default `500`), with `X-Mock-Replay-Error` naming the body's digest.
    Status(u16),
    /// The connection closes without an answer.
    Close,
}

impl Default for Unmatched {
    fn default() -> Self {
        Unmatched::Status(500)
    }
}

/// Why a recording cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The directory or a file could not be read.
    #[error("reading {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A metadata file did not parse.
    #[error("{0}: {1}")]
    Meta(PathBuf, String),
    /// The directory holds no recorded exchange.
    #[error("{0}: no recorded exchange (no *.json with its *.res)")]
    Empty(PathBuf),
}

/// One recorded exchange.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) meta: RecordMeta,
    pub(crate) res: PathBuf,
    pub(crate) req: PathBuf,
}

/// A loaded recording.
///
/// ```no_run
/// use icap_mock_server::replay::{Replay, Unmatched};
/// use icap_mock_server::MockServer;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let replay = Replay::load("recordings/c-icap").unwrap().with_unmatched(Unmatched::Status(503));
/// let server = MockServer::builder().replay(replay).start().await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Replay {
    dir: PathBuf,
    entries: Vec<Entry>,
    unmatched: Unmatched,
}

impl Replay {
    /// Loads every `*.json` of `dir` that has its `*.res`, in time order.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let dir = dir.as_ref().to_path_buf();
        let read = std::fs::read_dir(&dir).map_err(|e| ReplayError::Io(dir.clone(), e))?;
        let mut entries = Vec::new();
        for item in read {
            let item = item.map_err(|e| ReplayError::Io(dir.clone(), e))?;
            let path = item.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let res = path.with_extension("res");
            if !res.exists() {
                continue;
            }
            let text = std::fs::read(&path).map_err(|e| ReplayError::Io(path.clone(), e))?;
            let meta: RecordMeta = serde_json::from_slice(&text)
                .map_err(|e| ReplayError::Meta(path.clone(), e.to_string()))?;
            entries.push(Entry {
                meta,
                req: path.with_extension("req"),
                res,
            });
        }
        if entries.is_empty() {
            return Err(ReplayError::Empty(dir));
        }
        entries.sort_by(|a, b| a.meta.stem.cmp(&b.meta.stem));
        Ok(Replay {
            dir,
            entries,
            unmatched: Unmatched::default(),
        })
    }

    /// What an unmatched request gets (default [`Unmatched::Status`]`(500)`).
    #[must_use]
    pub fn with_unmatched(mut self, unmatched: Unmatched) -> Self {
        self.unmatched = unmatched;
        self
    }

    /// The recording's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many exchanges were loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none was (never true for a loaded recording).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The metadata of every loaded exchange.
    pub fn metas(&self) -> impl Iterator<Item = &RecordMeta> {
        self.entries.iter().map(|e| &e.meta)
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn unmatched(&self) -> Unmatched {
        self.unmatched
    }

    /// The recorded `ISTag` of a service (its latest), quotes included.
    pub(crate) fn istag(&self, service: &str) -> Option<String> {
        let of = |same: bool| {
            self.entries
                .iter()
                .rev()
                .filter(|e| !same || e.meta.service == service)
                .find_map(|e| e.meta.istag.clone())
        };
        of(true).or_else(|| of(false))
    }

    fn usable(e: &Entry) -> bool {
        e.meta.status.is_some() && e.meta.error.is_none()
    }

    /// The recorded exchange that answers a request (see the module's matching rules).
    pub(crate) fn find(
        &self,
        method: Method,
        service: &str,
        body: Option<(&str, u64)>,
        filename: Option<&str>,
        allow_204: bool,
    ) -> Option<&Entry> {
        let candidates = || {
            self.entries
                .iter()
                .rev()
                .filter(|e| e.meta.method == method.as_str() && Self::usable(e))
        };
        // The same service and the same `Allow: 204` first (a recorded 204 cannot answer a
        // request without it, and a recorded echo was what a client without it got).
        let pick = |f: &dyn Fn(&Entry) -> bool| {
            candidates()
                .find(|e| e.meta.service == service && e.meta.allow_204 == allow_204 && f(e))
                .or_else(|| candidates().find(|e| e.meta.allow_204 == allow_204 && f(e)))
                .or_else(|| candidates().find(|e| e.meta.service == service && f(e)))
                .or_else(|| candidates().find(|e| f(e)))
        };
        if method == Method::Options {
            return pick(&|_| true);
        }
        if let Some((sha, _)) = body
            && let Some(e) = pick(&|e| e.meta.body_sha256.eq_ignore_ascii_case(sha))
        {
            return Some(e);
        }
        if let Some(name) = filename
            && let Some(e) = pick(&|e| e.meta.filename.as_deref() == Some(name))
        {
            return Some(e);
        }
        let len = body.map_or(0, |(_, l)| l);
        pick(&|e| e.meta.body_len == len && e.meta.filename.is_none() && filename.is_none())
    }
}

/// A recorded answer made ready to send: its final head and body chunks, decoded.
pub(crate) struct Answer {
    pub(crate) head: ResponseHead,
    pub(crate) body: Vec<bytes::Bytes>,
}

/// Decodes a recorded `.res`: skips a `100 Continue`, keeps the final answer.
pub(crate) fn decode_answer(
    bytes: &[u8],
    method: Method,
    limits: icap_proto::Limits,
) -> Result<Answer, String> {
    let mut buf = BytesMut::from(bytes);
    let mut dec = ResponseDecoder::new(method, limits);
    let mut head: Option<Box<ResponseHead>> = None;
    let mut body = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Err(e) => return Err(format!("recorded answer: {e}")),
            Ok(None) => return Err("recorded answer is incomplete".into()),
            Ok(Some(Event::Head(h))) => head = Some(h),
            Ok(Some(Event::Data(d))) => body.push(d),
            Ok(Some(Event::PreviewEnd { .. })) => {}
            Ok(Some(Event::End(_))) => match head.take() {
                Some(h) if h.status == StatusCode::CONTINUE => {}
                Some(mut h) => {
                    if h.headers.contains("Date")
                        && let Ok(v) = icap_proto::HeaderValue::new(http_date_now().into_bytes())
                    {
                        h.headers
                            .set(icap_proto::HeaderName::from_static("Date"), v);
                    }
                    return Ok(Answer { head: *h, body });
                }
                None => return Err("recorded answer has no head".into()),
            },
        }
    }
}

/// Now as an HTTP date (`Tue, 01 Dec 2026 12:00:00 GMT`).
fn http_date_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    http_date(secs)
}

fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[usize::try_from(days % 7).unwrap_or(0)],
        MONTHS[usize::try_from(m - 1).unwrap_or(0)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_798_760_159), "Thu, 31 Dec 2026 23:35:59 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
