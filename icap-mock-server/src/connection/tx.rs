//! The state of one transaction: what was read so far (journal entry, the request the
//! rules see, scanner, digest, body kept for an echo) and the plan once decided.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use icap_proto::exchange::RequestPlan;
use icap_proto::{BodyKind, Headers, Method, RequestHead, Uri};
use sha2::{Digest, Sha256};

use super::plan::Plan;
use crate::journal::{Stage, Transaction, compact_head, hex};
use crate::mock::Selector;
use crate::reply::{FaultKind, ReplyKind};
use crate::request::Request;
use crate::scan::Scanner;
use crate::service::{Dialect, ServiceConfig, Signature, glob_match};
use crate::state::{Compiled, State};

/// The first body bytes, kept for the rules (up to the capture size): the decoder's own
/// `Bytes` while the body came in one piece (no copy; most small files do), one buffer once
/// a second piece comes.
#[derive(Debug, Default)]
pub(super) struct Capture {
    first: Bytes,
    more: BytesMut,
}

impl Capture {
    fn len(&self) -> usize {
        if self.more.is_empty() {
            self.first.len()
        } else {
            self.more.len()
        }
    }

    /// Keeps what of `d` fits under `max` bytes in all.
    fn push(&mut self, d: &Bytes, max: usize) {
        let room = max.saturating_sub(self.len()).min(d.len());
        if room == 0 {
            return;
        }
        if self.first.is_empty() && self.more.is_empty() {
            self.first = d.slice(..room);
            return;
        }
        if self.more.is_empty() {
            self.more
                .extend_from_slice(&std::mem::take(&mut self.first));
        }
        self.more.extend_from_slice(&d[..room]);
    }

    /// The bytes kept so far.
    fn bytes(&self) -> Bytes {
        if self.more.is_empty() {
            self.first.clone()
        } else {
            Bytes::copy_from_slice(&self.more)
        }
    }
}

/// The empty list of found patterns, shared (most requests find none).
fn no_patterns() -> Arc<Vec<Vec<u8>>> {
    static NONE: std::sync::LazyLock<Arc<Vec<Vec<u8>>>> =
        std::sync::LazyLock::new(|| Arc::new(Vec::new()));
    Arc::clone(&NONE)
}

/// The state of one transaction.
#[allow(clippy::struct_excessive_bools)] // independent facts of one message
pub(super) struct Tx {
    pub(super) record: Transaction,
    pub(super) req: Request,
    pub(super) svc: Arc<ServiceConfig>,
    pub(super) snap: Arc<Compiled>,
    pub(super) scanner: Scanner,
    /// `None` when neither the journal nor a signature needs the body's SHA-256.
    pub(super) hasher: Option<Sha256>,
    pub(super) capture: Capture,
    /// The message body kept for a `200` echo (until the echo starts streaming).
    pub(super) echo: BytesMut,
    pub(super) echo_wanted: bool,
    pub(super) echo_started: bool,
    pub(super) in_preview: bool,
    pub(super) plan: Option<Plan>,
    pub(super) selector: Selector,
    /// The request's method and body kind: what is left of its head once the rules'
    /// [`Request`] took the rest (the journal keeps its own copy).
    pub(super) method: Method,
    pub(super) body: Option<BodyKind>,
    /// The request URI as received.
    pub(super) uri: Uri,
    /// [`Request::filename`], worked out once: the heads it reads do not change.
    pub(super) filename: Option<String>,
    pub(super) seen_data: bool,
    /// A legal-path answer the exchange refused (a rule's `Reply::status(299)`, say): it
    /// was sent as asked, and the connection closes after it.
    pub(super) off_rules: bool,
}

impl Tx {
    /// The state of a transaction whose head was just read: its journal entry, the
    /// request the rules see, a scanner over the current rules snapshot.
    ///
    /// `plan` is the exchange's reading of the same head (its preview and `Allow: 204`),
    /// so that the journal and the answers go by the facts the exchange's rules use.
    pub(super) fn new(
        state: &State,
        head: Box<RequestHead>,
        plan: &RequestPlan,
        peer: Option<SocketAddr>,
    ) -> Self {
        let service = head.uri.service().to_owned();
        let has_body = head.body.is_some();
        let allow_204 = plan.allow_204;
        let preview = plan.preview.map(|p| p.size).filter(|_| has_body);
        let snap = state.snapshot();
        let svc = state
            .service(&service)
            .cloned()
            .unwrap_or_else(|| Arc::new(ServiceConfig::new(&service)));
        // Valid UTF-8 (ASCII, nearly always) is checked faster than it is made lossy.
        let uri = std::str::from_utf8(head.uri.as_bytes()).map_or_else(
            |_| String::from_utf8_lossy(head.uri.as_bytes()).into_owned(),
            str::to_owned,
        );
        // The transaction's own record keeps what the exchange fills in; its head goes to
        // the journal only (moved there, where the entry is updated with this record's
        // progress), so no copy of the heads is made per update.
        let mut record = Transaction {
            id: 0,
            received_at: std::time::SystemTime::now(),
            stage: Stage::Receiving,
            bytes_written: 0,
            client_gone: false,
            peer,
            method: head.method,
            service: service.clone(),
            uri: String::new(),
            icap_headers: Headers::new(),
            http_request: None,
            http_response: None,
            body_len: 0,
            body_sha256: String::new(),
            preview,
            preview_bytes: 0,
            ieof: false,
            allow_204,
            status: None,
            continued: false,
            threat: None,
            fault: None,
            rule: None,
            complete: false,
            note: None,
        };
        // The journal outlives the connection: its copy of the head must not keep the
        // connection's read buffer alive. With the journal off, no copy is made.
        record.id = if state.journal_on() {
            let kept = compact_head(&head);
            state.open_entry(Transaction {
                uri: uri.clone(),
                icap_headers: kept.headers,
                http_request: kept.http_request,
                http_response: kept.http_response,
                ..record.clone()
            })
        } else {
            state.skip_entry()
        };
        let req = Request {
            method: head.method,
            service,
            uri,
            icap_headers: head.headers,
            http_request: head.http_request,
            http_response: head.http_response,
            preview,
            body_len: 0,
            body: Bytes::new(),
            body_truncated: false,
            body_complete: !has_body,
            peer,
            found: no_patterns(),
        };
        let hasher = (state.settings.body_digest
            || svc
                .signatures
                .iter()
                .any(|s| matches!(s, Signature::Sha256 { .. })))
        .then(Sha256::new);
        Tx {
            record,
            filename: req.filename(),
            req,
            echo_wanted: has_body && !allow_204,
            svc,
            scanner: Scanner::new(&snap.patterns),
            selector: Selector::new(snap.rules.clone()),
            snap,
            hasher,
            capture: Capture::default(),
            echo: BytesMut::new(),
            echo_started: false,
            in_preview: preview.is_some(),
            plan: None,
            method: head.method,
            body: head.body,
            uri: head.uri,
            seen_data: false,
            off_rules: false,
        }
    }

    /// The request head again, from the parts the rules' [`Request`] holds (for the proxy,
    /// which sends it on).
    pub(super) fn request_head(&self) -> RequestHead {
        let mut head = RequestHead::new(self.method, self.uri.clone());
        head.headers = self.req.icap_headers.clone();
        head.http_request.clone_from(&self.req.http_request);
        head.http_response.clone_from(&self.req.http_response);
        head.body = self.body;
        head
    }

    /// Notes the plan's fault and rule in the journal entry.
    pub(super) fn note_fault(&mut self, plan: &Plan) {
        self.record.fault = plan.fault.map(|f| f.name().to_owned());
        self.record.rule = plan.rule;
    }

    pub(super) fn feed(&mut self, d: &Bytes, capture_max: usize) {
        self.scanner.feed(&self.snap.patterns, d);
        if let Some(h) = &mut self.hasher {
            h.update(d);
        }
        let n = u64::try_from(d.len()).unwrap_or(u64::MAX);
        self.record.body_len = self.record.body_len.saturating_add(n);
        if self.in_preview {
            self.record.preview_bytes = self.record.preview_bytes.saturating_add(n);
        }
        self.capture.push(d, capture_max);
    }

    pub(super) fn refresh(&mut self) {
        self.req.body_len = self.record.body_len;
        self.req.body = self.capture.bytes();
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
        // Most bodies hold none of the patterns: keep sharing the one empty list then.
        if !(found.is_empty() && self.req.found.is_empty()) {
            self.req.found = Arc::new(found);
        }
    }

    pub(super) fn complete(&mut self) {
        self.scanner.finish(&self.snap.patterns);
        self.req.body_complete = true;
        self.record.complete = true;
        if let Some(h) = self.hasher.take() {
            self.record.body_sha256 = hex(&h.finalize());
        }
    }

    pub(super) fn dialect(&self, plan: &Plan) -> Dialect {
        plan.reply.dialect.unwrap_or(self.svc.dialect)
    }

    /// What the service's signatures found so far (SHA-256 only once complete).
    pub(super) fn scan_threat(&self, dialect: Dialect) -> Option<String> {
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
                    .filename
                    .as_deref()
                    .is_some_and(|n| glob_match(filename, n)),
            };
            if hit {
                return Some(sig.name().to_owned());
            }
        }
        None
    }

    /// The plan's reply with the scan done: never [`ReplyKind::Scan`].
    pub(super) fn resolve(&self, plan: &Plan) -> ReplyKind {
        match &plan.reply.kind {
            ReplyKind::Scan => {
                if plan.fault == Some(FaultKind::EarlyResponse) && !self.record.complete {
                    return ReplyKind::Infected("Mock.EarlyResponse".into());
                }
                match self.scan_threat(self.dialect(plan)) {
                    Some(t) => ReplyKind::Infected(t),
                    None => ReplyKind::Clean,
                }
            }
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::Capture;

    #[test]
    fn a_capture_shares_one_piece_copies_two_and_stops_at_its_size() {
        let mut c = Capture::default();
        let one = Bytes::from_static(b"hello ");
        c.push(&one, 8);
        assert_eq!(c.bytes(), "hello ");
        assert_eq!(c.bytes().as_ptr(), one.as_ptr(), "one piece is not copied");
        c.push(&Bytes::from_static(b"world"), 8);
        assert_eq!(c.bytes(), "hello wo", "cut at the capture size");
        c.push(&Bytes::from_static(b"more"), 8);
        assert_eq!(c.bytes(), "hello wo");
        let mut none = Capture::default();
        none.push(&one, 0);
        assert!(none.bytes().is_empty());
    }
}
