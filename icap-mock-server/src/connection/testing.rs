//! In-memory transactions for the unit tests of the decision, the answer and the faults:
//! a state without a listener, a head decoded from bytes, body fed by hand.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use icap_proto::{Event, RequestHead, ServerExchange};

use super::tx::Tx;
use crate::mock::Mock;
use crate::service::ServiceConfig;
use crate::state::{Settings, State};

/// A state with the `avscan` service and these rules, mounted in order (of equal
/// priority, the first takes precedence), triggers as given.
pub(super) fn state(triggers: bool, mocks: Vec<Mock>) -> State {
    let settings = Settings {
        services: vec![std::sync::Arc::new(ServiceConfig::new("avscan"))],
        triggers,
        ..Settings::default()
    };
    let state = State::new(settings, 0);
    for m in mocks {
        state.add_rule(m);
    }
    state
}

/// A RESPMOD head for `GET <path>` with a chunked response body, optionally with a
/// preview and `Allow: 204`.
pub(super) fn respmod(path: &str, preview: Option<u64>, allow_204: bool) -> Box<RequestHead> {
    let req_hdr = format!("GET {path} HTTP/1.1\r\nHost: files.example\r\n\r\n");
    let res_hdr = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
    let mut head = String::from("RESPMOD icap://127.0.0.1/avscan ICAP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some(p) = preview {
        let _ = write!(head, "Preview: {p}\r\n");
    }
    if allow_204 {
        head.push_str("Allow: 204\r\n");
    }
    let _ = write!(
        head,
        "Encapsulated: req-hdr=0, res-hdr={}, res-body={}\r\n\r\n{req_hdr}{res_hdr}",
        req_hdr.len(),
        req_hdr.len() + res_hdr.len()
    );
    let mut buf = BytesMut::from(head.as_bytes());
    match ServerExchange::new(icap_proto::Limits::default()).poll_event(&mut buf) {
        Ok(Some(Event::Head(h))) => h,
        other => panic!("the test head decodes: {other:?}"),
    }
}

/// The transaction of `head` on `state`.
pub(super) fn tx(state: &State, head: Box<RequestHead>) -> Tx {
    let plan = icap_proto::exchange::RequestPlan::from_head(&head, false).expect("a valid head");
    Tx::new(state, head, &plan, None)
}

/// Feeds `body` as one chunk; `end` completes the body.
pub(super) fn feed(tx: &mut Tx, body: &[u8], end: bool) {
    tx.feed(&Bytes::copy_from_slice(body), 64 * 1024);
    if end {
        tx.complete();
    }
}
