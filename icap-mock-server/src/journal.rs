//! The journal: what the server received and what it answered.

//!
//! Bounded twice: in entries and in bytes. Each entry is counted by what it owns (its
//! strings, header fields and embedded heads, plus the fixed size of the record), and the
//! oldest entries go first when either budget is exceeded.
//!
//! An entry never shares memory with a connection: heads decoded by icap-proto are slices
//! of the connection's read buffer (zero-copy), so a journal entry holding them would keep
//! that whole buffer (64 KiB of capacity) alive long after the connection closed. Heads are
//! copied into one compact allocation of their own before they are recorded
//! ([`compact_head`]).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use icap_proto::{
    HeaderName, HeaderValue, Headers, HttpRequestHead, HttpResponseHead, Method, RequestHead,
};
use serde_json::{Value, json};

use crate::request::{filename_of, http_header_of};

/// Default number of transactions the journal keeps.
pub const DEFAULT_JOURNAL_LIMIT: usize = 10_000;

/// Default number of bytes the journal's entries may hold together (8 MiB).
pub const DEFAULT_JOURNAL_BYTES: usize = 8 * 1024 * 1024;

/// How far a journal entry's exchange has got. An entry is recorded when the request's
/// head arrives and updated as the exchange proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// The head is in; the body (if any) is still coming.
    Receiving,
    /// The mock holds the request before answering (a delay fault, say); what came of the
    /// body so far is in the entry.
    Waiting,
    /// The mock is done with the exchange: it answered, a fault struck, or the client went
    /// away. [`Transaction::bytes_written`] and [`Transaction::client_gone`] say which.
    Done,
}

impl Stage {
    /// The stage's name in the journal's JSON: `receiving`, `waiting`, `done`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Receiving => "receiving",
            Stage::Waiting => "waiting",
            Stage::Done => "done",
        }
    }
}

/// One received request and what the server did with it, recorded when the head arrives
/// and updated as the exchange proceeds (see [`Stage`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // independent facts of one message
pub struct Transaction {
    /// Sequence number, from 1.
    pub id: u64,
    /// When the request's head arrived.
    pub received_at: SystemTime,
    /// How far the exchange has got.
    pub stage: Stage,
    /// Bytes actually written to the client for this request (a `100 Continue`
    /// included), as far as the socket took them.
    pub bytes_written: u64,
    /// Whether the client went away (closed, reset, or a write to it failed) before the
    /// mock was done with the request. A client that half-closes its side while a delay
    /// fault holds its request counts as gone.
    pub client_gone: bool,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The ICAP method.
    pub method: Method,
    /// The service name.
    pub service: String,
    /// The ICAP request URI.
    pub uri: String,
    /// The ICAP header fields as received.
    pub icap_headers: Headers,
    /// The embedded HTTP request head.
    pub http_request: Option<HttpRequestHead>,
    /// The embedded HTTP response head.
    pub http_response: Option<HttpResponseHead>,
    /// Body bytes received (preview included).
    pub body_len: u64,
    /// SHA-256 of the received body, lowercase hex (of the empty string for no body).
    pub body_sha256: String,
    /// The announced `Preview` size, if a preview was sent.
    pub preview: Option<u64>,
    /// Body bytes that came in the preview.
    pub preview_bytes: u64,
    /// The preview ended with `ieof`.
    pub ieof: bool,
    /// Whether the client sent `Allow: 204`.
    pub allow_204: bool,
    /// The final status sent (`None` when a fault sent none, or when nothing was written
    /// because the client was gone). `100 Continue` is not counted.
    pub status: Option<u16>,
    /// Whether a `100 Continue` was sent.
    pub continued: bool,
    /// The threat reported, if any.
    pub threat: Option<String>,
    /// The fault applied, if any (its name, as in [`FaultKind::name`](crate::FaultKind::name)).
    pub fault: Option<String>,
    /// The id of the rule that applied, if any.
    pub rule: Option<u64>,
    /// Whether the whole request was received.
    pub complete: bool,
    /// What the mock wants a reader of the journal to know about how it handled the
    /// request (in proxy mode: `"forwarded undecided: ..."` when body rules could not
    /// decide within the hold bound).
    pub note: Option<String>,
}

impl Transaction {
    /// The first value of an ICAP header as text (names are case-insensitive).
    pub fn icap_header(&self, name: &str) -> Option<String> {
        self.icap_headers
            .get(name)
            .map(|v| v.to_str_lossy().into_owned())
    }

    /// The first value of a header of the embedded HTTP response head, else of the request
    /// head, as text.
    pub fn http_header(&self, name: &str) -> Option<String> {
        http_header_of(
            self.http_request.as_ref(),
            self.http_response.as_ref(),
            name,
        )
    }

    /// The file name, as rules see it ([`Request::filename`](crate::Request::filename)):
    /// `Content-Disposition`'s, else the last segment of the URL path.
    pub fn filename(&self) -> Option<String> {
        filename_of(self.http_request.as_ref(), self.http_response.as_ref())
    }

    /// The ICAP method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The service name (the request URI's path, without `/` and query).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether this is an `OPTIONS` request (which clients send on their own, before and
    /// between scans); [`MockServer::journal_scans`](crate::MockServer::journal_scans)
    /// leaves them out.
    pub fn is_options(&self) -> bool {
        self.method == Method::Options
    }

    /// One line for listings (unmet expectations): `#id METHOD service file -> status`,
    /// with what became of an exchange that did not end in an answer.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "#{} {} {} {}",
            self.id,
            self.method.as_str(),
            self.service,
            self.filename().as_deref().unwrap_or("-")
        );
        match (self.stage, self.status) {
            (Stage::Done, Some(s)) => {
                let _ = write!(line, " -> {s}");
            }
            (Stage::Done, None) => line.push_str(" -> no answer"),
            (stage, _) => {
                let _ = write!(line, " ({})", stage.as_str());
            }
        }
        if let Some(f) = &self.fault {
            let _ = write!(line, " [fault {f}]");
        }
        if self.client_gone {
            line.push_str(" [client gone]");
        }
        line
    }

    /// The bytes this entry holds: the record itself, its strings, its header fields and its
    /// embedded heads. This is what the journal's byte budget counts.
    pub fn held_bytes(&self) -> usize {
        self.head_bytes().saturating_add(self.progress_bytes())
    }

    /// [`Transaction::held_bytes`] of what is fixed once the head was read: the record
    /// itself, its service and URI, its header fields and embedded heads.
    fn head_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            .saturating_add(self.service.capacity())
            .saturating_add(self.uri.capacity())
            .saturating_add(headers_bytes(&self.icap_headers))
            .saturating_add(self.http_request.as_ref().map_or(0, |r| {
                r.encoded_len()
                    .saturating_add(headers_bytes(&r.headers))
                    .saturating_add(std::mem::size_of::<HttpRequestHead>())
            }))
            .saturating_add(self.http_response.as_ref().map_or(0, |r| {
                r.encoded_len()
                    .saturating_add(headers_bytes(&r.headers))
                    .saturating_add(std::mem::size_of::<HttpResponseHead>())
            }))
    }

    /// [`Transaction::held_bytes`] of the strings the exchange fills in as it goes.
    fn progress_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        self.body_sha256
            .capacity()
            .saturating_add(opt(&self.threat))
            .saturating_add(opt(&self.fault))
            .saturating_add(opt(&self.note))
    }

    /// Copies from `from` what an exchange changes after its head was read (everything but
    /// the head, its id, arrival, peer and service), reusing this entry's allocations.
    fn take_progress(&mut self, from: &Transaction) {
        self.stage = from.stage;
        self.bytes_written = from.bytes_written;
        self.client_gone = from.client_gone;
        self.body_len = from.body_len;
        self.body_sha256.clone_from(&from.body_sha256);
        self.preview_bytes = from.preview_bytes;
        self.ieof = from.ieof;
        self.status = from.status;
        self.continued = from.continued;
        self.threat.clone_from(&from.threat);
        self.fault.clone_from(&from.fault);
        self.rule = from.rule;
        self.complete = from.complete;
        self.note.clone_from(&from.note);
    }

    /// The transaction as JSON (the admin API's journal format).
    pub fn to_json(&self) -> Value {
        fn headers(h: &Headers) -> Value {
            Value::Array(
                h.iter()
                    .map(|(n, v)| json!([n.as_str(), v.to_str_lossy()]))
                    .collect(),
            )
        }
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        json!({
            "id": self.id,
            "received_at": humantime::format_rfc3339_millis(self.received_at).to_string(),
            "received_at_unix_ms": unix_ms(self.received_at),
            "stage": self.stage.as_str(),
            "bytes_written": self.bytes_written,
            "client_gone": self.client_gone,
            "peer": self.peer.map(|p| p.to_string()),
            "method": self.method.as_str(),
            "service": self.service,
            "uri": self.uri,
            "icap_headers": headers(&self.icap_headers),
            "http_request": self.http_request.as_ref().map(|r| json!({
                "method": lossy(r.method()),
                "target": lossy(r.target()),
                "version": lossy(r.version()),
                "headers": headers(&r.headers),
            })),
            "http_response": self.http_response.as_ref().map(|r| json!({
                "status": r.status(),
                "reason": lossy(r.reason()),
                "version": lossy(r.version()),
                "headers": headers(&r.headers),
            })),
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "preview": self.preview,
            "preview_bytes": self.preview_bytes,
            "ieof": self.ieof,
            "allow_204": self.allow_204,
            "status": self.status,
            "continued": self.continued,
            "threat": self.threat,
            "fault": self.fault,
            "rule": self.rule,
            "complete": self.complete,
            "note": self.note,
        })
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating far after it).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a header list owns besides the bytes of its fields (counted by the heads'
/// `encoded_len`, or here for the ICAP headers): one name/value pair per field.
fn headers_bytes(h: &Headers) -> usize {
    h.iter().fold(0usize, |acc, (n, v)| {
        acc.saturating_add(std::mem::size_of::<(HeaderName, HeaderValue)>())
            .saturating_add(n.as_bytes().len())
            .saturating_add(v.as_bytes().len())
    })
}

/// A copy of `head` that shares no memory with the connection's read buffer (all its
/// shared pieces in one small allocation: [`RequestHead::detached`]), so that the journal
/// does not keep a 64 KiB buffer alive per entry.
pub(crate) fn compact_head(head: &RequestHead) -> RequestHead {
    head.detached()
}

/// The journal: a ring of transactions bounded in entries and in bytes.
#[derive(Debug)]
pub(crate) struct Journal {
    /// Each transaction with its [`Transaction::head_bytes`] (fixed once opened), in id
    /// order.
    entries: VecDeque<Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// The last id handed out by [`Journal::open`] (ids go on across a clear).
    next_id: u64,
}

#[derive(Debug)]
struct Entry {
    tx: Transaction,
    head_bytes: usize,
}

impl Entry {
    fn held(&self) -> usize {
        self.head_bytes.saturating_add(self.tx.progress_bytes())
    }
}

impl Journal {
    /// A journal keeping at most `max_entries` transactions and `max_bytes` bytes (the
    /// newest entry is always kept, even when it alone is over the byte budget). With
    /// `max_entries` 0 the journal is off: it keeps nothing, and only hands out ids.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Journal {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
            next_id: 0,
        }
    }

    /// Whether the journal keeps anything (`max_entries` above 0).
    pub(crate) fn is_on(&self) -> bool {
        self.max_entries > 0
    }

    /// Adds `tx`, dropping the oldest entries until both budgets hold (nothing when the
    /// journal is off).
    pub(crate) fn push(&mut self, tx: Transaction) {
        if !self.is_on() {
            return;
        }
        let entry = Entry {
            head_bytes: tx.head_bytes(),
            tx,
        };
        self.bytes = self.bytes.saturating_add(entry.held());
        self.entries.push_back(entry);
        self.evict();
    }

    /// Drops the oldest entries until both budgets hold (the newest always stays).
    fn evict(&mut self) {
        while self.entries.len() > 1
            && (self.entries.len() > self.max_entries || self.bytes > self.max_bytes)
        {
            if let Some(e) = self.entries.pop_front() {
                self.bytes = self.bytes.saturating_sub(e.held());
            }
        }
    }

    /// Records `tx` under the next id (assigned here, so the ring stays in id order) and
    /// returns that id.
    pub(crate) fn open(&mut self, mut tx: Transaction) -> u64 {
        tx.id = self.skip();
        self.push(tx);
        self.next_id
    }

    /// Hands out the next id without recording anything (what [`Journal::open`] does when
    /// the journal is off, without making an entry first).
    pub(crate) fn skip(&mut self) -> u64 {
        self.next_id = self.next_id.saturating_add(1);
        self.next_id
    }

    /// Where the entry with id `id` is. Ids are handed out in order and entries leave
    /// from the front only, so it is usually `id - first id`; a binary search otherwise.
    fn index_of(&self, id: u64) -> Option<usize> {
        let first = self.entries.front()?.tx.id;
        let guess = id
            .checked_sub(first)
            .and_then(|d| usize::try_from(d).ok())
            .filter(|&i| self.entries.get(i).is_some_and(|e| e.tx.id == id));
        guess.or_else(|| self.entries.binary_search_by_key(&id, |e| e.tx.id).ok())
    }

    /// Brings the entry with `tx`'s id up to date with `tx` (what changed since its head was
    /// read; its size counted again); does nothing when the entry already left the ring (or
    /// was cleared).
    pub(crate) fn update(&mut self, tx: &Transaction) {
        let Some(slot) = self.index_of(tx.id).and_then(|i| self.entries.get_mut(i)) else {
            return;
        };
        let before = slot.held();
        slot.tx.take_progress(tx);
        self.bytes = self
            .bytes
            .saturating_sub(before)
            .saturating_add(slot.held());
        self.evict();
    }

    /// The transactions, oldest first.
    pub(crate) fn to_vec(&self) -> Vec<Transaction> {
        self.entries.iter().map(|e| e.tx.clone()).collect()
    }

    /// The bytes the entries hold, as counted by [`Transaction::held_bytes`].
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Empties the journal.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// Lower-case hex of `b` (SHA-256 digests in the journal and the recordings).
pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use icap_proto::{Event, Limits, RequestDecoder};

    fn tx(id: u64, uri_len: usize) -> Transaction {
        Transaction {
            id,
            received_at: SystemTime::now(),
            stage: Stage::Done,
            bytes_written: 0,
            client_gone: false,
            peer: None,
            method: Method::Options,
            service: "avscan".into(),
            uri: "u".repeat(uri_len),
            icap_headers: Headers::new(),
            http_request: None,
            http_response: None,
            body_len: 0,
            body_sha256: String::new(),
            preview: None,
            preview_bytes: 0,
            ieof: false,
            allow_204: false,
            status: None,
            continued: false,
            threat: None,
            fault: None,
            rule: None,
            complete: true,
            note: None,
        }
    }

    #[test]
    fn byte_budget_drops_the_oldest_first() {
        let one = tx(0, 1000).held_bytes();
        let mut j = Journal::new(100, one * 3);
        for id in 1..=10 {
            j.push(tx(id, 1000));
            assert!(j.bytes() <= one * 3, "{} > {}", j.bytes(), one * 3);
        }
        let ids: Vec<u64> = j.to_vec().iter().map(|t| t.id).collect();
        assert_eq!(ids, [8, 9, 10]);
        assert_eq!(j.bytes(), one * 3);
        j.clear();
        assert_eq!(j.bytes(), 0);
        assert!(j.to_vec().is_empty());
    }

    #[test]
    fn open_numbers_entries_and_update_recounts_their_bytes() {
        let mut j = Journal::new(100, usize::MAX);
        let mut a = tx(0, 10);
        a.icap_headers.append("X-Kept", "in the journal").unwrap();
        a.id = j.open(a.clone());
        assert_eq!(a.id, 1);
        assert_eq!(j.open(tx(0, 10)), 2);
        let before = j.bytes();
        // The connection's own record need not carry the head: an update copies only what
        // the exchange fills in, and the entry keeps the head it was opened with.
        a.icap_headers = Headers::new();
        a.threat = Some("t".repeat(1000));
        a.stage = Stage::Done;
        j.update(&a);
        assert!(j.bytes() >= before + 1000, "{} {}", j.bytes(), before);
        let got = j.to_vec();
        assert_eq!(got[0].threat.as_deref().map(str::len), Some(1000));
        assert_eq!(got[0].stage, Stage::Done);
        assert_eq!(
            got[0].icap_header("X-Kept").as_deref(),
            Some("in the journal")
        );
        assert_eq!(got[1].id, 2);
        // An entry that left the ring is not brought back by an update.
        j.clear();
        j.update(&a);
        assert!(j.to_vec().is_empty());
        assert_eq!(j.bytes(), 0);
        // Ids go on across a clear, so a late update never hits a newer entry.
        assert_eq!(j.open(tx(0, 10)), 3);
    }

    #[test]
    fn an_update_that_grows_an_entry_keeps_the_byte_budget() {
        let one = tx(0, 100).held_bytes();
        let mut j = Journal::new(100, one * 3);
        let mut entries: Vec<Transaction> = (0..3).map(|_| tx(0, 100)).collect();
        for e in &mut entries {
            e.id = j.open(e.clone());
        }
        entries[2].note = Some("n".repeat(one));
        j.update(&entries[2]);
        assert!(j.bytes() <= one * 3, "{} > {}", j.bytes(), one * 3);
        assert_eq!(j.to_vec().last().map(|t| t.id), Some(3));
    }

    #[test]
    fn entry_budget_still_holds_and_the_newest_is_kept() {
        let mut j = Journal::new(2, usize::MAX);
        for id in 1..=5 {
            j.push(tx(id, 10));
        }
        assert_eq!(j.to_vec().iter().map(|t| t.id).collect::<Vec<_>>(), [4, 5]);
        // A byte budget smaller than one entry keeps just the newest.
        let mut j = Journal::new(1, 0);
        j.push(tx(1, 10));
        j.push(tx(2, 10));
        assert_eq!(j.to_vec().iter().map(|t| t.id).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_journal_of_no_entries_is_off_and_still_counts_ids() {
        let mut j = Journal::new(0, usize::MAX);
        assert!(!j.is_on());
        assert_eq!(j.open(tx(0, 10)), 1);
        assert_eq!(j.skip(), 2);
        let mut t = tx(2, 10);
        t.note = Some("n".into());
        j.update(&t);
        assert!(j.to_vec().is_empty());
        assert_eq!(j.bytes(), 0);
        assert_eq!(j.open(tx(0, 10)), 3, "ids go on");
    }

    #[test]
    fn held_bytes_counts_heads_and_strings() {
        let small = tx(1, 10).held_bytes();
        let mut big = tx(1, 10);
        big.icap_headers
            .append("X-Big", "a".repeat(5000).as_str())
            .unwrap();
        big.threat = Some("t".repeat(300));
        assert!(big.held_bytes() >= small + 5300, "{}", big.held_bytes());
    }

    #[test]
    fn compact_head_shares_no_memory_with_the_read_buffer() {
        let wire: &[u8] =
            b"RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: x\r\nX-Client-IP: 10.0.0.1\r\n\
            Encapsulated: req-hdr=0, res-hdr=32, res-body=51\r\n\r\n\
            GET /a HTTP/1.1\r\nHost: files\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(wire);
        let Ok(Some(Event::Head(head))) = RequestDecoder::new(Limits::default()).decode(&mut buf)
        else {
            panic!("the fixture decodes");
        };
        let region = buf.as_ptr() as usize - wire.len()..buf.as_ptr() as usize + buf.capacity();
        let inside = |p: *const u8| region.contains(&(p as usize));
        // The decoded head points into the read buffer (its request target does; short
        // field values are copied inline by icap-proto) ...
        let target = head.http_request.as_ref().unwrap().target();
        assert!(inside(target.as_ptr()));
        // ... its compact copy does not, and is equal.
        let c = compact_head(&head);
        assert_eq!(
            c.headers.get("X-Client-IP").unwrap().as_bytes(),
            b"10.0.0.1"
        );
        for (n, v) in &c.headers {
            assert!(!inside(v.as_bytes().as_ptr()), "{}", n.as_str());
        }
        let r = c.http_request.as_ref().unwrap();
        assert_eq!(r.target(), b"/a");
        assert!(!inside(r.target().as_ptr()));
        assert_eq!(c.http_request, head.http_request);
        assert_eq!(c.http_response, head.http_response);
        assert_eq!(c.uri, head.uri);
    }
}
