//! The answer's encoding, as free functions over the transaction: the `200` echo's
//! head, the final answer for a plan (in the dialect, chunked body included), the
//! OPTIONS answer, the refusals (`404`, `405`, `503`) and `100 Continue`.

use bytes::{Bytes, BytesMut};
use icap_proto::{BodyKind, Method, OptionsResponse, ResponseHead, StatusCode, chunked};

use super::faults::breaks_body;
use super::plan::Plan;
use super::tx::Tx;
use crate::dialect;
use crate::reply::{FaultKind, ReplyKind};
use crate::service::{Dialect, ServiceConfig};

/// The head of a `200` echo of the request's message (in the plan's dialect, or the
/// service's before a plan is made).
pub(super) fn echo_head(istag: &str, tx: &Tx) -> ResponseHead {
    let extra = tx
        .plan
        .as_ref()
        .map(|p| p.reply.headers.clone())
        .unwrap_or_default();
    let mut head = dialect::base(200, istag, &extra);
    let dialect = tx.plan.as_ref().map_or(tx.svc.dialect, |p| tx.dialect(p));
    dialect::clean_headers(dialect, &mut head);
    if tx.method == Method::Reqmod {
        head.http_request.clone_from(&tx.req.http_request);
        head.body = tx.body.filter(|b| *b == BodyKind::Request);
    } else {
        head.http_response.clone_from(&tx.req.http_response);
        head.body = tx.body.filter(|b| *b == BodyKind::Response);
    }
    head
}

/// The clean `204` a connection answered last, encoded: most answers are the same one
/// (same dialect, method and `ISTag`, no extra headers), so it is built once.
#[derive(Debug)]
pub(super) struct CleanAnswer {
    dialect: Dialect,
    method: Method,
    istag: Box<str>,
    pub(super) head: ResponseHead,
    pub(super) bytes: Bytes,
}

/// What `plan` answers once the scan is done and the fault is applied, and whether that is
/// a plain `204` (clean, legal here, no extra headers).
fn resolve_answer(tx: &Tx, plan: &Plan, may_204: bool) -> (ReplyKind, bool) {
    let mut resolved = tx.resolve(plan);
    if let Some(FaultKind::UnknownStatus(code)) = plan.fault {
        resolved = ReplyKind::Status(code);
    }
    // Faults that break a body need one: a clean answer without one becomes a block page.
    if breaks_body(plan.fault)
        && matches!(resolved, ReplyKind::Clean)
        && (may_204 || tx.body.is_none())
    {
        resolved = ReplyKind::Infected("Mock.Fault".into());
    }
    let plain_204 = may_204
        && plan.reply.headers.is_empty()
        && matches!(resolved, ReplyKind::Clean | ReplyKind::Scan);
    (resolved, plain_204)
}

/// Whether `c`, the last clean answer, is the answer to `plan` (a plain `204` in the same
/// dialect, method and `ISTag`).
pub(super) fn is_clean_answer(
    c: &CleanAnswer,
    istag: &str,
    tx: &Tx,
    plan: &Plan,
    may_204: bool,
) -> bool {
    c.dialect == tx.dialect(plan)
        && c.method == tx.method
        && *c.istag == *istag
        && resolve_answer(tx, plan, may_204).1
}

/// The final answer for `plan`: the head, its bytes and the body's bytes (chunked, last
/// chunk included; empty without a body). `may_204` is the exchange's word on whether a
/// `204` is legal here. Notes the status and any threat in the journal entry; takes the
/// kept echo body. A plain `204` is kept in `last_clean`, which the legal path resends
/// as it is ([`is_clean_answer`]) instead of calling this again.
pub(super) fn build_response(
    istag: &str,
    tx: &mut Tx,
    plan: &Plan,
    may_204: bool,
    last_clean: &mut Option<CleanAnswer>,
) -> (ResponseHead, BytesMut, BytesMut) {
    let dialect = tx.dialect(plan);
    let extra = &plan.reply.headers;
    let method = tx.method;
    let filename = tx.filename.as_deref();
    let (resolved, plain_204) = resolve_answer(tx, plan, may_204);
    let (head, body): (ResponseHead, Option<Bytes>) = match &resolved {
        // `resolve` never gives `Scan`; were it to, a scan that found nothing is clean.
        ReplyKind::Clean | ReplyKind::Scan if may_204 => {
            (dialect::no_content(dialect, istag, extra), None)
        }
        ReplyKind::Clean | ReplyKind::Scan => {
            let h = echo_head(istag, tx);
            let body = h.body.map(|_| std::mem::take(&mut tx.echo).freeze());
            (h, body)
        }
        ReplyKind::Infected(t) => {
            tx.record.threat = Some(t.clone());
            dialect::infected(dialect, t, filename, istag, extra)
        }
        ReplyKind::Error { status, code } => (dialect::error(*status, code, istag, extra), None),
        ReplyKind::Status(code) => (dialect::base(*code, istag, extra), None),
    };
    let mut head = head;
    if body.is_none() {
        dialect::frame_bodyless(dialect, &mut head);
    }
    let mut head_bytes = BytesMut::new();
    let (head, body) = if head.encode(method, &mut head_bytes).is_ok() {
        (head, body)
    } else {
        head_bytes.clear();
        let bare = dialect::base(500, istag, &[]);
        bare.encode(method, &mut head_bytes)
            .expect("a bare status head always encodes");
        (bare, None)
    };
    tx.record.status = Some(head.status.as_u16());
    if plain_204 {
        *last_clean = Some(CleanAnswer {
            dialect,
            method,
            istag: istag.into(),
            head: head.clone(),
            bytes: Bytes::copy_from_slice(&head_bytes),
        });
    }
    let mut body_bytes = BytesMut::new();
    if let Some(b) = body {
        chunked::encode_body(&b, &mut body_bytes);
    }
    (head, head_bytes, body_bytes)
}

/// The OPTIONS answer for `svc`.
pub(super) fn options_head(istag: &str, svc: &ServiceConfig) -> ResponseHead {
    let mut o = OptionsResponse::new(svc.methods.clone(), istag);
    o.service = Some(svc.description.clone());
    o.max_connections = svc.max_connections;
    o.options_ttl = svc.options_ttl;
    o.preview = svc.preview;
    o.transfer_preview.clone_from(&svc.transfer_preview);
    o.transfer_ignore.clone_from(&svc.transfer_ignore);
    o.transfer_complete.clone_from(&svc.transfer_complete);
    o.allow_204 = svc.allow_204;
    o.service_id = Some("icap-mock-server".to_owned());
    let _ = o.headers.append(
        "X-Include",
        "X-Client-IP, X-Client-Username, X-Authenticated-User",
    );
    o.to_head()
        .unwrap_or_else(|_| dialect::base(500, istag, &[]))
}

/// A refusal before the body: `status` (`404`, `405` with `Allow`, `503`) framed in the
/// service's dialect, with its bytes.
pub(super) fn refusal(
    istag: &str,
    svc: &ServiceConfig,
    status: u16,
    method: Method,
) -> (ResponseHead, BytesMut) {
    let mut head = dialect::base(status, istag, &[]);
    dialect::frame_bodyless(svc.dialect, &mut head);
    if status == 405 {
        let allowed: Vec<&str> = svc.methods.iter().map(|m| m.as_str()).collect();
        let _ = head
            .headers
            .append("Allow", format!("OPTIONS, {}", allowed.join(", ")).as_str());
    }
    let mut out = BytesMut::new();
    head.encode(method, &mut out)
        .expect("a bare status head always encodes");
    (head, out)
}

/// `100 Continue` with the `ISTag`, or without one (`istag` `None`: the proxy's own).
pub(super) fn continue_bytes(istag: Option<&str>, method: Method) -> BytesMut {
    let mut cont = ResponseHead::new(StatusCode::CONTINUE);
    if let Some(istag) = istag {
        cont.headers
            .append("ISTag", format!("\"{istag}\"").as_str())
            .expect("ISTag is a valid header value");
    }
    let mut out = BytesMut::new();
    cont.encode(method, &mut out)
        .expect("100 Continue always encodes");
    out
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use icap_proto::Method;

    use super::super::plan::Plan;
    use super::super::testing::{feed, respmod, state, tx};
    use super::{build_response, continue_bytes, options_head, refusal};
    use crate::reply::{FaultKind, Reply};
    use crate::service::ServiceConfig;

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn a_clean_file_gets_204_where_allowed_and_an_echo_otherwise() {
        let st = state(true, Vec::new());
        let mut t = tx(&st, respmod("/a.txt", None, true));
        feed(&mut t, b"hello", true);
        let (head, bytes, body) = build_response("tag", &mut t, &Plan::scan(), true, &mut None);
        assert_eq!(head.status.as_u16(), 204);
        assert!(
            text(&bytes).starts_with("ICAP/1.0 204 "),
            "{}",
            text(&bytes)
        );
        assert!(text(&bytes).contains("ISTag: \"tag\"\r\n"));
        assert!(body.is_empty());
        assert_eq!(t.record.status, Some(204));

        let mut t = tx(&st, respmod("/a.txt", None, false));
        feed(&mut t, b"hello", true);
        t.echo = BytesMut::from(&b"hello"[..]);
        let (head, _, body) = build_response("tag", &mut t, &Plan::scan(), false, &mut None);
        assert_eq!(head.status.as_u16(), 200);
        assert_eq!(&body[..], b"5\r\nhello\r\n0\r\n\r\n");
    }

    /// The clean `204` is built once per connection and reused only for the same answer:
    /// a new `ISTag`, a rule's extra headers or a threat build their own.
    #[test]
    fn a_clean_204_is_reused_only_for_the_same_answer() {
        let st = state(true, Vec::new());
        let mut cache = None;
        let clean = |tag: &str, plan: &Plan, cache: &mut _| {
            let mut t = tx(&st, respmod("/a.txt", None, true));
            feed(&mut t, b"hello", true);
            let (head, bytes, _) = build_response(tag, &mut t, plan, true, cache);
            assert_eq!(t.record.status, Some(head.status.as_u16()));
            (head, text(&bytes))
        };
        let first = clean("tag", &Plan::scan(), &mut cache);
        assert!(cache.is_some(), "kept for the next one");
        assert_eq!(clean("tag", &Plan::scan(), &mut cache), first);
        let (_, retagged) = clean("tag2", &Plan::scan(), &mut cache);
        assert!(retagged.contains("ISTag: \"tag2\""), "{retagged}");
        let extra = Plan::reply(Reply::clean().with_header("X-Rule", "1"));
        let (_, with_extra) = clean("tag2", &extra, &mut cache);
        assert!(with_extra.contains("X-Rule: 1\r\n"), "{with_extra}");
        let (_, again) = clean("tag2", &Plan::scan(), &mut cache);
        assert!(!again.contains("X-Rule"), "{again}");
        let mut t = tx(&st, respmod("/eicar.com", None, true));
        feed(&mut t, crate::EICAR, true);
        let (head, _, _) = build_response("tag2", &mut t, &Plan::scan(), true, &mut cache);
        assert_eq!(
            head.status.as_u16(),
            200,
            "a threat is never the cached 204"
        );
    }

    #[test]
    fn eicar_is_reported_as_the_dialects_threat_and_noted_in_the_journal() {
        let st = state(true, Vec::new());
        let mut t = tx(&st, respmod("/eicar.com", None, true));
        feed(&mut t, crate::EICAR, true);
        let (head, bytes, _) = build_response("tag", &mut t, &Plan::scan(), true, &mut None);
        assert_eq!(head.status.as_u16(), 200);
        let threat = t.record.threat.clone().expect("a threat");
        assert!(text(&bytes).contains(&threat), "{}", text(&bytes));
    }

    #[test]
    fn errors_statuses_and_the_unknown_status_fault_set_the_status_line() {
        let st = state(true, Vec::new());
        let rows = [
            (
                Plan::reply(Reply::error(500, "password_protected")),
                500,
                Some("X-Error-Code: password_protected"),
            ),
            (Plan::reply(Reply::status(503)), 503, None),
            (
                Plan {
                    fault: Some(FaultKind::UnknownStatus(299)),
                    reply: Reply::clean(),
                    rule: None,
                },
                299,
                None,
            ),
        ];
        for (plan, status, header) in rows {
            let mut t = tx(&st, respmod("/a.zip", None, true));
            feed(&mut t, b"PK", true);
            let (head, bytes, body) = build_response("tag", &mut t, &plan, true, &mut None);
            assert_eq!(head.status.as_u16(), status, "{plan:?}");
            assert!(text(&bytes).starts_with(&format!("ICAP/1.0 {status} ")));
            if let Some(h) = header {
                assert!(text(&bytes).contains(h), "{}", text(&bytes));
            }
            assert!(body.is_empty());
        }
    }

    #[test]
    fn a_body_breaking_fault_turns_a_clean_204_into_a_block_page() {
        let st = state(true, Vec::new());
        let mut t = tx(&st, respmod("/a.txt", None, true));
        feed(&mut t, b"hello", true);
        let plan = Plan::fault(FaultKind::BadChunkSize);
        let (head, _, body) = build_response("tag", &mut t, &plan, true, &mut None);
        assert_ne!(head.status.as_u16(), 204);
        assert_eq!(t.record.threat.as_deref(), Some("Mock.Fault"));
        assert!(!body.is_empty(), "the fault needs a body to break");
    }

    #[test]
    fn refusals_options_and_continue_encode_as_the_rfc_says() {
        let svc = ServiceConfig::new("avscan");
        let (head, bytes) = refusal("tag", &svc, 405, Method::Respmod);
        assert_eq!(head.status.as_u16(), 405);
        assert!(
            text(&bytes).contains("Allow: OPTIONS, RESPMOD, REQMOD\r\n"),
            "{}",
            text(&bytes)
        );
        let (_, bytes) = refusal("tag", &svc, 404, Method::Reqmod);
        assert!(!text(&bytes).contains("Allow:"));

        let o = options_head("tag", &svc);
        assert_eq!(o.status.as_u16(), 200);
        assert!(o.headers.get("Methods").is_some());

        let cont = continue_bytes(Some("tag"), Method::Respmod);
        assert!(text(&cont).starts_with("ICAP/1.0 100 "), "{}", text(&cont));
        assert!(text(&cont).contains("ISTag: \"tag\"\r\n"));
        assert!(cont.ends_with(b"\r\n\r\n"));
        assert!(!text(&continue_bytes(None, Method::Respmod)).contains("ISTag"));
    }
}
