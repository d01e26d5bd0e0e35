//! The exchange rules (`icap_proto::exchange`): one table row per rule, legal and illegal,
//! fed whole and byte by byte; a socket-free `Pair` that drives a `ServerExchange` and a
//! `ClientExchange` against each other; misuse; and a property test over arbitrary
//! response scripts.

use bytes::{Bytes, BytesMut};
use icap_proto::exchange::{
    ClientEvent, ClientExchange, ClientState, Misuse, NotReusable, PreviewPlan, ProtocolError,
    RequestPlan, Reuse, ServerExchange,
};
use icap_proto::{
    BodyKind, DecodeError, Event, Headers, HttpResponseHead, Limits, Method, RequestHead,
    ResponseHead, StatusCode, chunked,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Client table

/// What the client has written when the response bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// The whole request (for a preview without ieof: the preview, and the rest as soon as
    /// 100 Continue arrives).
    All,
    /// Nothing completely (an early answer).
    Nothing,
}

/// What feeding a response produced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    events: Vec<ClientEvent>,
    result: Result<(), ProtocolError>,
    reuse: Reuse,
    leftover: usize,
}

fn mark_sent(ex: &mut ClientExchange, sent: Sent) {
    if sent == Sent::All {
        if ex.plan().expects_continue() {
            ex.handle_preview_sent().unwrap();
        } else {
            ex.handle_request_sent().unwrap();
        }
    }
}

/// Feeds `bytes` in pieces of `step` bytes (0: whole), polling after each, then reports EOF
/// if the response is not complete.
fn drive(plan: RequestPlan, sent: Sent, bytes: &[u8], step: usize) -> (Outcome, ClientExchange) {
    let mut ex = ClientExchange::new(plan, Limits::default());
    mark_sent(&mut ex, sent);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let pieces: Vec<&[u8]> = if step == 0 {
        vec![bytes]
    } else {
        bytes.chunks(step).collect()
    };
    let mut result = Ok(());
    'feed: for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match ex.poll_event(&mut buf) {
                Ok(Some(ev)) => {
                    if ev == ClientEvent::Continue && sent == Sent::All {
                        ex.handle_request_sent().unwrap();
                    }
                    events.push(ev);
                }
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break 'feed;
                }
            }
        }
    }
    if result.is_ok() && !ex.is_done() {
        result = ex.handle_eof();
    }
    let outcome = Outcome {
        events,
        result,
        reuse: ex.reuse(&buf),
        leftover: buf.len(),
    };
    (outcome, ex)
}

/// Drives whole and byte by byte; both must agree (an error may come after fewer events
/// byte by byte only in body data, which these rows do not split).
fn run(plan: RequestPlan, sent: Sent, bytes: &[u8]) -> (Outcome, ClientExchange) {
    let (whole, ex) = drive(plan, sent, bytes, 0);
    let (bytewise, _) = drive(plan, sent, bytes, 1);
    assert_eq!(whole.result, bytewise.result, "whole vs byte by byte");
    assert_eq!(whole.reuse, bytewise.reuse, "whole vs byte by byte");
    (whole, ex)
}

fn respmod() -> RequestPlan {
    RequestPlan::new(Method::Respmod)
}

/// A 4-byte preview, for `with_preview`.
#[expect(clippy::unnecessary_wraps, reason = "fed straight to with_preview")]
fn preview(ieof: bool) -> Option<PreviewPlan> {
    Some(PreviewPlan { size: 4, ieof })
}

const CONTINUE: &[u8] = b"ICAP/1.0 100 Continue\r\n\r\n";
const R204: &[u8] = b"ICAP/1.0 204 No Content\r\nISTag: \"t\"\r\n\r\n";
const R200_RESPMOD: &[u8] = b"ICAP/1.0 200 OK\r\nISTag: \"t\"\r\n\
    Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What a row expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The response is complete and legal; the connection reuse decision.
    Ok(Reuse),
    /// This protocol error.
    Err(ProtocolError),
}

#[allow(clippy::too_many_lines)] // a table-driven test: its rows read best as one list
#[test]
fn client_rules_table() {
    use ProtocolError as P;
    let yes = Want::Ok(Reuse::Yes);
    let a204 = respmod().with_allow_204(true);
    let a206 = respmod().with_allow_206(true);
    let reqmod = RequestPlan::new(Method::Reqmod);
    let options = RequestPlan::new(Method::Options);
    let r200_reqmod_req = b"ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, null-body=18\r\n\r\n\
        GET / HTTP/1.1\r\n\r\n";
    let r200_reqmod_res = b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=26\r\n\r\n\
        HTTP/1.1 403 Forbidden\r\n\r\n";
    let r206 = b"ICAP/1.0 206 Partial Content\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n\
        HTTP/1.1 200 OK\r\n\r\n0; use-original-body=0\r\n\r\n";
    let rows: Vec<(&str, RequestPlan, Sent, Vec<u8>, Want)> = vec![
        // 204 (RFC 3507 section 4.6)
        ("204 with Allow: 204", a204, Sent::All, R204.to_vec(), yes),
        ("204 without Allow, no preview", respmod(), Sent::All, R204.to_vec(), Want::Err(P::Unsolicited204)),
        ("204 answering a preview, no Allow", respmod().with_preview(preview(false)), Sent::All, R204.to_vec(), yes),
        ("204 answering an ieof preview, no Allow", respmod().with_preview(preview(true)), Sent::All, R204.to_vec(), yes),
        ("204 after 100 Continue, no Allow", respmod().with_preview(preview(false)), Sent::All, cat(&[CONTINUE, R204]), Want::Err(P::Unsolicited204)),
        ("204 after 100 Continue, with Allow", a204.with_preview(preview(false)), Sent::All, cat(&[CONTINUE, R204]), yes),
        ("204 with null-body=0", a204, Sent::All, b"ICAP/1.0 204 No Content\r\nEncapsulated: null-body=0\r\n\r\n".to_vec(), yes),
        ("204 with res-body", a204, Sent::All,
            b"ICAP/1.0 204 No Content\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
            Want::Err(P::BodyWith204)),
        ("204 with res-hdr and null-body", a204, Sent::All,
            b"ICAP/1.0 204 No Content\r\nEncapsulated: res-hdr=0, null-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n".to_vec(),
            Want::Err(P::BodyWith204)),
        // 100 Continue (section 4.5)
        ("100 then 200 after a preview", respmod().with_preview(preview(false)), Sent::All, cat(&[CONTINUE, R200_RESPMOD]), yes),
        ("100 with null-body=0", respmod().with_preview(preview(false)), Sent::All,
            cat(&[b"ICAP/1.0 100 Continue\r\nEncapsulated: null-body=0\r\n\r\n", R200_RESPMOD]), yes),
        ("100 after an ieof preview", respmod().with_preview(preview(true)), Sent::All, cat(&[CONTINUE, R200_RESPMOD]), Want::Err(P::UnexpectedContinue)),
        ("100 without a preview", a204, Sent::All, cat(&[CONTINUE, R204]), Want::Err(P::UnexpectedContinue)),
        ("second 100", respmod().with_preview(preview(false)), Sent::All, cat(&[CONTINUE, CONTINUE, R200_RESPMOD]), Want::Err(P::DuplicateContinue)),
        ("100 with a body", respmod().with_preview(preview(false)), Sent::All,
            b"ICAP/1.0 100 Continue\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n0\r\n\r\n".to_vec(),
            Want::Err(P::ContinueWithBody)),
        ("101", a204, Sent::All, b"ICAP/1.0 101 Switching Protocols\r\n\r\n".to_vec(), Want::Err(P::UnexpectedInformational(101))),
        ("199 after a preview", respmod().with_preview(preview(false)), Sent::All, b"ICAP/1.0 199 Hm\r\n\r\n".to_vec(), Want::Err(P::UnexpectedInformational(199))),
        // 206 (errata)
        ("206 without Allow: 206", respmod(), Sent::All, r206.to_vec(), Want::Err(P::Unsolicited206)),
        ("206 with Allow: 206", a206, Sent::All, r206.to_vec(), yes),
        ("206 without a body", a206, Sent::All,
            b"ICAP/1.0 206 Partial Content\r\nEncapsulated: res-hdr=0, null-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n".to_vec(),
            Want::Err(P::PartialWithoutBody)),
        // 200 and Encapsulated (sections 4.8.2, 4.9.2)
        ("200 to RESPMOD with res-hdr and res-body", respmod(), Sent::All, R200_RESPMOD.to_vec(), yes),
        ("200 to RESPMOD with only null-body", respmod(), Sent::All,
            b"ICAP/1.0 200 OK\r\nEncapsulated: null-body=0\r\n\r\n".to_vec(),
            Want::Err(P::EncapsulatedNotAllowed { status: 200, method: Method::Respmod })),
        ("200 to RESPMOD without Encapsulated", respmod(), Sent::All, b"ICAP/1.0 200 OK\r\nISTag: \"t\"\r\n\r\n".to_vec(),
            Want::Err(P::MissingEncapsulated { status: 200, method: Method::Respmod })),
        ("200 to REQMOD with req-hdr", reqmod, Sent::All, r200_reqmod_req.to_vec(), yes),
        ("200 to REQMOD with res-hdr", reqmod, Sent::All, r200_reqmod_res.to_vec(), yes),
        ("200 to REQMOD with only null-body", reqmod, Sent::All, b"ICAP/1.0 200 OK\r\nEncapsulated: null-body=0\r\n\r\n".to_vec(),
            Want::Err(P::EncapsulatedNotAllowed { status: 200, method: Method::Reqmod })),
        ("200 to REQMOD without Encapsulated", reqmod, Sent::All, b"ICAP/1.0 200 OK\r\n\r\n".to_vec(),
            Want::Err(P::MissingEncapsulated { status: 200, method: Method::Reqmod })),
        ("200 to RESPMOD with req-hdr (decoder)", respmod(), Sent::All, r200_reqmod_req.to_vec(),
            Want::Err(P::Decode(DecodeError::InvalidEncapsulated(icap_proto::EncapsulatedError::NotAllowed)))),
        ("200 to OPTIONS without Encapsulated", options, Sent::All, b"ICAP/1.0 200 OK\r\nISTag: \"t\"\r\nMethods: RESPMOD\r\n\r\n".to_vec(), yes),
        ("200 to OPTIONS with opt-body", options, Sent::All,
            b"ICAP/1.0 200 OK\r\nEncapsulated: opt-body=0\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(), yes),
        // other statuses
        ("202", a204, Sent::All, b"ICAP/1.0 202 Accepted\r\n\r\n".to_vec(), Want::Err(P::UnexpectedStatus(202))),
        ("299", a204, Sent::All, b"ICAP/1.0 299 Whatever\r\nEncapsulated: null-body=0\r\n\r\n".to_vec(), Want::Err(P::UnexpectedStatus(299))),
        ("301", a204, Sent::All, b"ICAP/1.0 301 Moved\r\n\r\n".to_vec(), Want::Err(P::UnexpectedStatus(301))),
        ("600", a204, Sent::All, b"ICAP/1.0 600 Odd\r\n\r\n".to_vec(), Want::Err(P::UnexpectedStatus(600))),
        ("999", a204, Sent::All, b"ICAP/1.0 999 Odd\r\n\r\n".to_vec(), Want::Err(P::UnexpectedStatus(999))),
        ("201 without X-Violations-Found", a204, Sent::All,
            b"ICAP/1.0 201 Created\r\nEncapsulated: res-hdr=0, null-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n".to_vec(),
            Want::Err(P::Created201WithoutViolations)),
        ("201 with X-Violations-Found (vendor rule)", a204, Sent::All,
            b"ICAP/1.0 201 Created\r\nX-Violations-Found: 1\r\n\tfile\r\n\tEICAR\r\n\t1\r\n\t0\r\n\
              Encapsulated: res-hdr=0, null-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n".to_vec(), yes),
        ("500 without Encapsulated", a204, Sent::All, b"ICAP/1.0 500 Server Error\r\n\r\n".to_vec(), yes),
        ("404 without Encapsulated", respmod(), Sent::All, b"ICAP/1.0 404 ICAP Service Not Found\r\n\r\n".to_vec(), yes),
        ("403 with an embedded 403", respmod(), Sent::All,
            b"ICAP/1.0 403 Forbidden\r\nEncapsulated: res-hdr=0, res-body=26\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n3\r\nbad\r\n0\r\n\r\n".to_vec(), yes),
        ("503 with a broken Encapsulated", respmod(), Sent::All, b"ICAP/1.0 503 Busy\r\nEncapsulated: bogus\r\n\r\n".to_vec(),
            Want::Err(P::Decode(DecodeError::InvalidEncapsulated(icap_proto::EncapsulatedError::Syntax)))),
        ("not an ICAP status line", a204, Sent::All, b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            Want::Err(P::Decode(DecodeError::InvalidStatusLine))),
        // reuse
        ("leftover bytes after a 204", a204, Sent::All, cat(&[R204, b"garbage"]), Want::Ok(Reuse::No(NotReusable::LeftoverBytes(7)))),
        ("a second response after a 204", a204, Sent::All, cat(&[R204, R204]), Want::Ok(Reuse::No(NotReusable::LeftoverBytes(R204.len())))),
        ("CRLF after a 200", respmod(), Sent::All, cat(&[R200_RESPMOD, b"\r\n"]), Want::Ok(Reuse::No(NotReusable::LeftoverBytes(2)))),
        ("Connection: close", a204, Sent::All, b"ICAP/1.0 204 No Content\r\nConnection: close\r\n\r\n".to_vec(),
            Want::Ok(Reuse::No(NotReusable::ConnectionClose))),
        ("Connection: Keep-Alive, Close", a204, Sent::All, b"ICAP/1.0 204 No Content\r\nConnection: Keep-Alive, Close\r\n\r\n".to_vec(),
            Want::Ok(Reuse::No(NotReusable::ConnectionClose))),
        ("early answer", respmod(), Sent::Nothing, R200_RESPMOD.to_vec(), Want::Ok(Reuse::No(NotReusable::RequestIncomplete))),
        ("early 500", respmod(), Sent::Nothing, b"ICAP/1.0 500 Server Error\r\n\r\n".to_vec(), Want::Ok(Reuse::No(NotReusable::RequestIncomplete))),
        // EOF (framing)
        ("EOF before any byte", a204, Sent::All, Vec::new(), Want::Err(P::ClosedBeforeResponse)),
        ("EOF in the status line", a204, Sent::All, b"ICAP/1.0 20".to_vec(), Want::Err(P::ClosedMidResponse)),
        ("EOF in the body", respmod(), Sent::All, R200_RESPMOD[..R200_RESPMOD.len() - 5].to_vec(), Want::Err(P::ClosedMidResponse)),
        ("EOF before the embedded head", respmod(), Sent::All,
            b"ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1".to_vec(), Want::Err(P::ClosedMidResponse)),
        ("EOF after 100 Continue", respmod().with_preview(preview(false)), Sent::All, CONTINUE.to_vec(), Want::Err(P::ClosedMidResponse)),
    ];
    for (name, plan, sent, bytes, want) in rows {
        let (out, ex) = run(plan, sent, &bytes);
        match want {
            Want::Ok(reuse) => {
                assert_eq!(out.result, Ok(()), "{name}: {out:?}");
                assert!(ex.is_done(), "{name}");
                assert_eq!(out.reuse, reuse, "{name}");
                assert!(
                    matches!(out.events.last(), Some(ClientEvent::End(_))),
                    "{name}"
                );
                assert_eq!(ex.state(), ClientState::Done, "{name}");
            }
            Want::Err(e) => {
                assert_eq!(out.result, Err(e), "{name}: {out:?}");
                assert!(!e.rule().is_empty());
                assert_eq!(out.reuse, Reuse::No(NotReusable::Failed), "{name}");
                assert!(!ex.is_done(), "{name}");
            }
        }
    }
}

#[test]
fn rule_names_cite_the_rfc_or_the_vendor_rule() {
    let all = [
        ProtocolError::UnexpectedContinue,
        ProtocolError::DuplicateContinue,
        ProtocolError::ContinueWithBody,
        ProtocolError::UnexpectedInformational(101),
        ProtocolError::Unsolicited204,
        ProtocolError::BodyWith204,
        ProtocolError::Unsolicited206,
        ProtocolError::PartialWithoutBody,
        ProtocolError::MissingEncapsulated {
            status: 200,
            method: Method::Respmod,
        },
        ProtocolError::EncapsulatedNotAllowed {
            status: 200,
            method: Method::Respmod,
        },
        ProtocolError::Created201WithoutViolations,
        ProtocolError::UnexpectedStatus(299),
        ProtocolError::ClosedBeforeResponse,
        ProtocolError::ClosedMidResponse,
        ProtocolError::Decode(DecodeError::BareLineFeed),
    ];
    for e in all {
        let rule = e.rule();
        assert!(
            rule.starts_with("RFC 3507") || rule.starts_with("vendor rule"),
            "{rule}"
        );
        assert_eq!(e.status_code(), 400);
    }
    assert_eq!(
        ProtocolError::UnexpectedContinue.rule(),
        "RFC 3507 §4.5: 100 Continue only after a preview that ended without ieof"
    );
    assert_eq!(
        ProtocolError::Decode(DecodeError::UnknownMethod).status_code(),
        501
    );
}

#[test]
fn after_an_error_the_exchange_is_dead() {
    let mut ex = ClientExchange::new(respmod(), Limits::default());
    ex.handle_request_sent().unwrap();
    let mut buf = BytesMut::from(R204);
    assert_eq!(ex.poll_event(&mut buf), Err(ProtocolError::Unsolicited204));
    let mut more = BytesMut::from(R200_RESPMOD);
    assert_eq!(ex.poll_event(&mut more), Err(ProtocolError::Unsolicited204));
    assert_eq!(
        more.len(),
        R200_RESPMOD.len(),
        "nothing consumed after the error"
    );
    assert_eq!(ex.handle_eof(), Err(ProtocolError::Unsolicited204));
    assert_eq!(ex.handle_request_sent(), Err(Misuse::Failed));
    assert_eq!(ex.state(), ClientState::Failed);
    assert!(ex.is_failed());
    assert_eq!(ex.reuse(&[]), Reuse::No(NotReusable::Failed));
}

#[test]
fn after_the_final_end_bytes_stay_leftovers() {
    let plan = respmod().with_allow_204(true);
    let mut ex = ClientExchange::new(plan, Limits::default());
    ex.handle_request_sent().unwrap();
    let mut buf = BytesMut::from(&cat(&[R204, R204])[..]);
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::Head(_)))
    ));
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::End(_)))
    ));
    assert_eq!(ex.poll_event(&mut buf), Ok(None));
    assert_eq!(buf.len(), R204.len());
    assert_eq!(
        ex.reuse(&buf),
        Reuse::No(NotReusable::LeftoverBytes(R204.len()))
    );
    assert_eq!(ex.handle_eof(), Ok(()));
    assert_eq!(ex.reuse(&[]), Reuse::No(NotReusable::Closed));
}

#[test]
fn client_states_and_flags() {
    // Preview without ieof, 100, rest, 200.
    let plan = respmod().with_preview(preview(false));
    let mut ex = ClientExchange::new(plan, Limits::default());
    assert_eq!(ex.state(), ClientState::SendPreview);
    assert_eq!(ex.handle_request_sent(), Err(Misuse::ContinueNotReceived));
    ex.handle_preview_sent().unwrap();
    assert_eq!(ex.handle_preview_sent(), Err(Misuse::PreviewAlreadySent));
    assert_eq!(ex.state(), ClientState::AwaitContinue);
    assert_eq!(ex.handle_request_sent(), Err(Misuse::ContinueNotReceived));
    let mut buf = BytesMut::from(CONTINUE);
    assert_eq!(ex.poll_event(&mut buf), Ok(Some(ClientEvent::Continue)));
    assert!(ex.continued());
    assert_eq!(ex.state(), ClientState::SendBody);
    ex.handle_request_sent().unwrap();
    assert_eq!(ex.handle_request_sent(), Err(Misuse::RequestAlreadySent));
    assert_eq!(ex.state(), ClientState::ReadResponse);
    buf.extend_from_slice(R200_RESPMOD);
    let Ok(Some(ClientEvent::Head(head))) = ex.poll_event(&mut buf) else {
        panic!()
    };
    assert_eq!(head.status, StatusCode::OK);
    assert!(ex.answered());
    assert!(!ex.answered_in_preview() && !ex.is_early());
    assert_eq!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::Data(Bytes::from_static(b"hello"))))
    );
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::End(_)))
    ));
    assert_eq!(ex.state(), ClientState::Done);
    assert_eq!(ex.reuse(&buf), Reuse::Yes);

    // A 100 that arrives before our flush returned is legal.
    let mut ex = ClientExchange::new(plan, Limits::default());
    let mut buf = BytesMut::from(CONTINUE);
    assert_eq!(ex.poll_event(&mut buf), Ok(Some(ClientEvent::Continue)));
    assert_eq!(ex.state(), ClientState::SendPreview);
    assert_eq!(ex.handle_request_sent(), Err(Misuse::PreviewNotSent));
    ex.handle_preview_sent().unwrap();
    assert_eq!(ex.state(), ClientState::SendBody);
    ex.handle_request_sent().unwrap();

    // A final answer to the preview before our flush returned: reusable once it is out.
    let mut ex = ClientExchange::new(plan, Limits::default());
    let mut buf = BytesMut::from(R204);
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::Head(_)))
    ));
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::End(_)))
    ));
    assert!(ex.answered_in_preview() && !ex.is_early());
    assert_eq!(ex.reuse(&buf), Reuse::No(NotReusable::RequestIncomplete));
    ex.handle_preview_sent().unwrap();
    assert_eq!(ex.reuse(&buf), Reuse::Yes);
    assert_eq!(ex.handle_request_sent(), Err(Misuse::ContinueNotReceived));

    // Plans without a preview (or with ieof) have no preview to mark.
    let mut ex = ClientExchange::new(respmod(), Limits::default());
    assert_eq!(ex.state(), ClientState::SendBody);
    assert_eq!(ex.handle_preview_sent(), Err(Misuse::PreviewNotPlanned));
    let mut ex = ClientExchange::new(respmod().with_preview(preview(true)), Limits::default());
    assert_eq!(ex.state(), ClientState::SendPreview);
    assert_eq!(ex.handle_preview_sent(), Err(Misuse::PreviewNotPlanned));
    ex.handle_request_sent().unwrap();
    assert_eq!(ex.state(), ClientState::ReadResponse);

    // Early answer: the request body was not finished.
    let mut ex = ClientExchange::new(respmod(), Limits::default());
    let mut buf = BytesMut::from(b"ICAP/1.0 500 Server Error\r\n\r\n".as_slice());
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::Head(_)))
    ));
    assert!(ex.is_early());
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::End(_)))
    ));
    assert_eq!(ex.reuse(&buf), Reuse::No(NotReusable::RequestIncomplete));
    // The caller may still finish the body; then the framing is in step again.
    ex.handle_request_sent().unwrap();
    assert_eq!(ex.reuse(&buf), Reuse::Yes);

    // Not complete yet.
    let mut ex = ClientExchange::new(respmod(), Limits::default());
    ex.handle_request_sent().unwrap();
    let mut buf = BytesMut::from(&R200_RESPMOD[..90]);
    assert!(matches!(
        ex.poll_event(&mut buf),
        Ok(Some(ClientEvent::Head(_)))
    ));
    assert_eq!(ex.reuse(&[]), Reuse::No(NotReusable::ResponseIncomplete));
}

#[test]
fn plan_from_head() {
    let mut head = RequestHead::new(Method::Respmod, "icap://av/scan".parse().unwrap());
    head.headers.append("Allow", "204").unwrap();
    head.headers.append("Preview", "1024").unwrap();
    head.http_response = Some(HttpResponseHead::new(200, "OK").unwrap());
    head.body = Some(BodyKind::Response);
    let plan = RequestPlan::from_head(&head, false).unwrap();
    assert_eq!(
        plan,
        RequestPlan::new(Method::Respmod)
            .with_allow_204(true)
            .with_preview(Some(PreviewPlan {
                size: 1024,
                ieof: false
            }))
    );
    // No body: no preview, whatever the header says.
    head.body = None;
    let plan = RequestPlan::from_head(&head, false).unwrap();
    assert_eq!(plan.preview, None);
    assert!(!plan.has_body);
    // A Preview that is not a number.
    let mut bad = RequestHead::new(Method::Respmod, "icap://av/scan".parse().unwrap());
    bad.headers.append("Preview", "lots").unwrap();
    assert_eq!(
        RequestPlan::from_head(&bad, false),
        Err(DecodeError::InvalidHeaderValue("Preview"))
    );
    let opts = RequestHead::new(Method::Options, "icap://av/scan".parse().unwrap());
    assert_eq!(
        RequestPlan::from_head(&opts, false).unwrap(),
        RequestPlan::new(Method::Options)
    );
}

// ---------------------------------------------------------------------------------------
// Pair: a ServerExchange and a ClientExchange against each other, in memory

/// Two ends and the bytes in flight each way, as quinn's test `Pair` but with no sockets.
struct Pair {
    client: ClientExchange,
    server: ServerExchange,
    method: Method,
    /// Bytes the client wrote that the server has not read.
    to_server: BytesMut,
    /// Bytes the server wrote that the client has not read.
    to_client: BytesMut,
}

impl Pair {
    fn new(plan: RequestPlan) -> Self {
        Pair {
            client: ClientExchange::new(plan, Limits::default()),
            server: ServerExchange::new(Limits::default()),
            method: plan.method,
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
        }
    }

    /// The next exchange on the same connection, keeping the bytes in flight.
    fn next(self, plan: RequestPlan) -> Self {
        Pair {
            client: ClientExchange::new(plan, Limits::default()),
            server: ServerExchange::new(Limits::default()),
            method: plan.method,
            ..self
        }
    }

    fn client_writes_head(&mut self, head: &RequestHead) {
        head.encode(&mut self.to_server).unwrap();
    }

    fn client_writes_chunk(&mut self, data: &[u8]) {
        chunked::encode_chunk(data, &mut self.to_server);
    }

    fn client_writes_last_chunk(&mut self, ieof: bool) {
        chunked::encode_last_chunk(ieof, &Headers::new(), &mut self.to_server);
    }

    /// The server reads all it can.
    fn server_reads(&mut self) -> Vec<Event<RequestHead>> {
        let mut out = Vec::new();
        while let Some(ev) = self.server.poll_event(&mut self.to_server).unwrap() {
            out.push(ev);
        }
        out
    }

    /// The client reads all it can.
    fn client_reads(&mut self) -> Vec<ClientEvent> {
        let mut out = Vec::new();
        while let Some(ev) = self.client.poll_event(&mut self.to_client).unwrap() {
            out.push(ev);
        }
        out
    }

    fn server_continues(&mut self) {
        assert!(self.server.may_continue());
        assert!(self.server.may_answer(StatusCode::CONTINUE));
        self.server.handle_continue_sent().unwrap();
        ResponseHead::new(StatusCode::CONTINUE)
            .encode(self.method, &mut self.to_client)
            .unwrap();
    }

    /// The server answers `head` and, if it has one, `body`.
    fn server_answers(&mut self, head: &ResponseHead, body: &[u8]) {
        assert!(self.server.may_answer(head.status), "{}", head.status);
        self.server.handle_response_sent(head).unwrap();
        head.encode(self.method, &mut self.to_client).unwrap();
        if head.body.is_some() {
            chunked::encode_body(body, &mut self.to_client);
        }
        self.server.handle_response_end().unwrap();
    }

    fn both_reusable(&self) {
        assert_eq!(self.client.reuse(&self.to_client), Reuse::Yes);
        assert_eq!(self.server.reuse(), Reuse::Yes);
    }
}

fn respmod_head(allow_204: bool, preview: Option<u64>) -> RequestHead {
    let mut head = RequestHead::new(Method::Respmod, "icap://127.0.0.1/avscan".parse().unwrap());
    head.headers.append("Host", "127.0.0.1").unwrap();
    if allow_204 {
        head.headers.append("Allow", "204").unwrap();
    }
    if let Some(n) = preview {
        head.headers.set(
            "Preview".try_into().unwrap(),
            icap_proto::HeaderValue::from_u64(n),
        );
    }
    head.http_response = Some(HttpResponseHead::new(200, "OK").unwrap());
    head.body = Some(BodyKind::Response);
    head
}

fn echo_200() -> ResponseHead {
    let mut head = ResponseHead::new(StatusCode::OK)
        .with_header("ISTag", "\"t\"")
        .unwrap();
    head.http_response = Some(HttpResponseHead::new(200, "OK").unwrap());
    head.body = Some(BodyKind::Response);
    head
}

fn kinds(events: &[Event<RequestHead>]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            Event::Head(_) => "head",
            Event::Data(_) => "data",
            Event::PreviewEnd { ieof: false } => "preview-end",
            Event::PreviewEnd { ieof: true } => "preview-end-ieof",
            Event::End(_) => "end",
        })
        .collect()
}

#[test]
fn pair_preview_then_continue() {
    let head = respmod_head(false, Some(4));
    let mut p = Pair::new(RequestPlan::from_head(&head, false).unwrap());
    p.client_writes_head(&head);
    p.client_writes_chunk(b"abcd");
    p.client_writes_last_chunk(false);
    p.client.handle_preview_sent().unwrap();
    assert_eq!(kinds(&p.server_reads()), ["head", "data", "preview-end"]);
    assert!(!p.server.may_answer(StatusCode::new(206).unwrap()));
    p.server_continues();
    assert!(!p.server.may_continue());
    assert_eq!(p.client_reads(), [ClientEvent::Continue]);
    assert_eq!(p.client.state(), ClientState::SendBody);
    p.client_writes_chunk(b"ef");
    p.client_writes_last_chunk(false);
    p.client.handle_request_sent().unwrap();
    assert_eq!(kinds(&p.server_reads()), ["data", "end"]);
    // After the 100, a 204 needs Allow: 204.
    assert!(!p.server.may_answer(StatusCode::NO_CONTENT));
    assert_eq!(
        p.server
            .handle_response_sent(&ResponseHead::new(StatusCode::NO_CONTENT)),
        Err(Misuse::IllegalResponse(ProtocolError::Unsolicited204))
    );
    p.server_answers(&echo_200(), b"abcdef");
    let events = p.client_reads();
    assert!(
        matches!(&events[..], [ClientEvent::Head(_), ClientEvent::Data(d), ClientEvent::End(_)] if &d[..] == b"abcdef")
    );
    p.both_reusable();
}

#[test]
fn pair_preview_answered_with_204_then_next_request() {
    let head = respmod_head(false, Some(4));
    let mut p = Pair::new(RequestPlan::from_head(&head, false).unwrap());
    p.client_writes_head(&head);
    p.client_writes_chunk(b"abcd");
    p.client_writes_last_chunk(false);
    p.client.handle_preview_sent().unwrap();
    assert_eq!(kinds(&p.server_reads()), ["head", "data", "preview-end"]);
    p.server_answers(&ResponseHead::new(StatusCode::NO_CONTENT), b"");
    assert!(p.server.is_request_done() && !p.server.must_drain());
    assert_eq!(p.client_reads().len(), 2);
    assert!(p.client.answered_in_preview());
    p.both_reusable();

    // The next request on the same connection is read from the start.
    let head = respmod_head(true, None);
    let mut p = p.next(RequestPlan::from_head(&head, false).unwrap());
    p.client_writes_head(&head);
    p.client_writes_chunk(b"xyz");
    p.client_writes_last_chunk(false);
    p.client.handle_request_sent().unwrap();
    assert_eq!(kinds(&p.server_reads()), ["head", "data", "end"]);
    p.server_answers(&ResponseHead::new(StatusCode::NO_CONTENT), b"");
    assert_eq!(p.client_reads().len(), 2);
    p.both_reusable();
}

#[test]
fn pair_ieof_preview() {
    let head = respmod_head(false, Some(4));
    let mut p = Pair::new(RequestPlan::from_head(&head, true).unwrap());
    p.client_writes_head(&head);
    p.client_writes_chunk(b"abc");
    p.client_writes_last_chunk(true);
    p.client.handle_request_sent().unwrap();
    assert_eq!(
        kinds(&p.server_reads()),
        ["head", "data", "preview-end-ieof", "end"]
    );
    assert!(!p.server.may_continue());
    assert!(!p.server.may_answer(StatusCode::CONTINUE));
    assert_eq!(
        p.server.handle_continue_sent(),
        Err(Misuse::ContinueNotAllowed)
    );
    assert!(p.server.plan().unwrap().preview.unwrap().ieof);
    p.server_answers(&ResponseHead::new(StatusCode::NO_CONTENT), b"");
    assert_eq!(p.client_reads().len(), 2);
    p.both_reusable();
}

#[test]
fn pair_no_preview() {
    let head = respmod_head(true, None);
    let mut p = Pair::new(RequestPlan::from_head(&head, false).unwrap());
    assert!(!p.server.may_answer(StatusCode::OK), "no request yet");
    p.client_writes_head(&head);
    p.client_writes_chunk(b"hello");
    p.client_writes_last_chunk(false);
    p.client.handle_request_sent().unwrap();
    assert_eq!(kinds(&p.server_reads()), ["head", "data", "end"]);
    assert!(!p.server.may_continue());
    assert!(p.server.may_answer(StatusCode::NO_CONTENT));
    p.server_answers(&echo_200(), b"hello");
    assert!(!p.server.may_answer(StatusCode::OK), "answered already");
    assert_eq!(
        p.server.handle_response_sent(&echo_200()),
        Err(Misuse::ResponseAlreadySent)
    );
    assert_eq!(
        p.server.handle_response_end(),
        Err(Misuse::ResponseAlreadyEnded)
    );
    assert_eq!(p.client_reads().len(), 3);
    p.both_reusable();
}

#[test]
fn pair_early_answer_then_drain() {
    let head = respmod_head(false, None);
    let mut p = Pair::new(RequestPlan::from_head(&head, false).unwrap());
    p.client_writes_head(&head);
    p.client_writes_chunk(b"first half");
    assert_eq!(kinds(&p.server_reads()), ["head", "data"]);
    let mut refusal = ResponseHead::new(StatusCode::new(403).unwrap());
    refusal.http_response = Some(HttpResponseHead::new(403, "Forbidden").unwrap());
    refusal.body = Some(BodyKind::Response);
    p.server_answers(&refusal, b"no");
    assert!(p.server.must_drain());
    assert_eq!(p.server.reuse(), Reuse::No(NotReusable::RequestIncomplete));
    assert_eq!(p.client_reads().len(), 3);
    assert!(p.client.is_early());
    assert_eq!(
        p.client.reuse(&p.to_client),
        Reuse::No(NotReusable::RequestIncomplete)
    );
    // The client finishes the body; the server drains it; both are in step again.
    p.client_writes_chunk(b"second half");
    p.client_writes_last_chunk(false);
    p.client.handle_request_sent().unwrap();
    assert_eq!(kinds(&p.server_reads()), ["data", "end"]);
    assert!(!p.server.must_drain());
    p.both_reusable();
}

#[test]
fn server_misuse_and_framing_errors() {
    let mut ex = ServerExchange::new(Limits::default());
    assert_eq!(
        ex.handle_response_sent(&ResponseHead::new(StatusCode::OK)),
        Err(Misuse::NoRequest)
    );
    assert_eq!(ex.handle_response_end(), Err(Misuse::ResponseNotSent));
    assert_eq!(ex.handle_continue_sent(), Err(Misuse::ContinueNotAllowed));
    assert_eq!(ex.handle_eof(), Ok(()), "closed between requests");

    let head = respmod_head(false, None);
    let mut buf = BytesMut::new();
    head.encode(&mut buf).unwrap();
    let mut ex = ServerExchange::new(Limits::default());
    assert!(matches!(ex.poll_event(&mut buf), Ok(Some(Event::Head(_)))));
    assert_eq!(
        ex.handle_response_sent(&ResponseHead::new(StatusCode::CONTINUE)),
        Err(Misuse::ContinueIsNotFinal)
    );
    let mut null_200 = ResponseHead::new(StatusCode::OK);
    null_200
        .headers
        .append("Encapsulated", "null-body=0")
        .unwrap();
    assert_eq!(
        ex.handle_response_sent(&null_200),
        Err(Misuse::IllegalResponse(
            ProtocolError::EncapsulatedNotAllowed {
                status: 200,
                method: Method::Respmod
            }
        ))
    );
    assert_eq!(
        ex.handle_response_sent(&ResponseHead::new(StatusCode::OK)),
        Err(Misuse::IllegalResponse(
            ProtocolError::MissingEncapsulated {
                status: 200,
                method: Method::Respmod
            }
        ))
    );
    assert_eq!(
        ex.handle_response_sent(&ResponseHead::new(StatusCode::new(206).unwrap())),
        Err(Misuse::IllegalResponse(ProtocolError::Unsolicited206))
    );
    assert_eq!(
        ex.handle_response_sent(&ResponseHead::new(StatusCode::new(302).unwrap())),
        Err(Misuse::IllegalResponse(ProtocolError::UnexpectedStatus(
            302
        )))
    );
    assert!(!ex.may_answer(StatusCode::new(302).unwrap()));
    assert!(ex.may_answer(StatusCode::SERVER_ERROR));
    // The peer closes in the middle of the body.
    buf.extend_from_slice(b"5\r\nhel");
    while ex.poll_event(&mut buf).unwrap().is_some() {}
    assert_eq!(ex.handle_eof(), Err(ProtocolError::ClosedMidRequest));
    assert_eq!(ex.reuse(), Reuse::No(NotReusable::Failed));

    // A framing error: the status to answer, then the same error again.
    let mut ex = ServerExchange::new(Limits::default());
    let mut buf = BytesMut::from(b"FETCH icap://av/scan ICAP/1.0\r\n\r\n".as_slice());
    let err = ex.poll_event(&mut buf).unwrap_err();
    assert_eq!(err, ProtocolError::Decode(DecodeError::UnknownMethod));
    assert_eq!(err.status_code(), 501);
    assert_eq!(ex.poll_event(&mut buf), Err(err));
    assert_eq!(ex.handle_continue_sent(), Err(Misuse::Failed));
    assert_eq!(ex.reuse(), Reuse::No(NotReusable::Failed));

    // Connection: close from the client ends the connection after the answer.
    let mut head = respmod_head(true, None);
    head.headers.append("Connection", "close").unwrap();
    let mut buf = BytesMut::new();
    head.encode(&mut buf).unwrap();
    chunked::encode_body(b"x", &mut buf);
    let mut ex = ServerExchange::new(Limits::default());
    while ex.poll_event(&mut buf).unwrap().is_some() {}
    ex.handle_response_sent(&ResponseHead::new(StatusCode::NO_CONTENT))
        .unwrap();
    assert_eq!(ex.reuse(), Reuse::No(NotReusable::ResponseIncomplete));
    ex.handle_response_end().unwrap();
    assert_eq!(ex.reuse(), Reuse::No(NotReusable::ConnectionClose));
}

#[test]
fn server_waits_for_its_decision_after_a_preview() {
    let head = respmod_head(false, Some(2));
    let mut buf = BytesMut::new();
    head.encode(&mut buf).unwrap();
    chunked::encode_chunk(b"ab", &mut buf);
    chunked::encode_last_chunk(false, &Headers::new(), &mut buf);
    // A client that does not wait for 100 Continue: its bytes stay in the buffer.
    chunked::encode_body(b"cd", &mut buf);
    let mut ex = ServerExchange::new(Limits::default());
    let mut events = Vec::new();
    while let Some(ev) = ex.poll_event(&mut buf).unwrap() {
        events.push(ev);
    }
    assert_eq!(kinds(&events), ["head", "data", "preview-end"]);
    let rest = buf.len();
    assert_eq!(ex.poll_event(&mut buf), Ok(None));
    assert_eq!(buf.len(), rest, "nothing consumed before the decision");
    ex.handle_continue_sent().unwrap();
    let mut events = Vec::new();
    while let Some(ev) = ex.poll_event(&mut buf).unwrap() {
        events.push(ev);
    }
    assert_eq!(kinds(&events), ["data", "end"]);
    assert!(buf.is_empty());
}

// ---------------------------------------------------------------------------------------
// Property test: arbitrary response scripts against arbitrary plans

fn arb_plan() -> impl Strategy<Value = RequestPlan> {
    (
        prop_oneof![
            Just(Method::Options),
            Just(Method::Reqmod),
            Just(Method::Respmod)
        ],
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(false)), Just(Some(true))],
        any::<bool>(),
    )
        .prop_map(|(method, a204, a206, preview, body)| {
            RequestPlan::new(method)
                .with_allow_204(a204)
                .with_allow_206(a206)
                .with_preview(preview.map(|ieof| PreviewPlan { size: 4, ieof }))
                .with_body(body)
        })
}

/// One piece of a response script: plausible heads (with statuses legal and not), bodies,
/// and garbage.
fn arb_piece() -> impl Strategy<Value = Vec<u8>> {
    let status = prop_oneof![
        Just(100u16),
        Just(101),
        Just(200),
        Just(201),
        Just(202),
        Just(204),
        Just(206),
        Just(299),
        Just(301),
        Just(403),
        Just(500),
        Just(600),
        100u16..1000
    ];
    let enc = prop_oneof![
        Just(""),
        Just("Encapsulated: null-body=0\r\n"),
        Just("Encapsulated: res-hdr=0, res-body=19\r\n"),
        Just("Encapsulated: res-hdr=0, null-body=19\r\n"),
        Just("Encapsulated: req-hdr=0, null-body=18\r\n"),
        Just("Encapsulated: opt-body=0\r\n"),
    ];
    let extra = prop_oneof![
        Just(""),
        Just("Connection: close\r\n"),
        Just("X-Violations-Found: 1\r\n\tf\r\n\tEICAR\r\n\t1\r\n\t0\r\n"),
    ];
    let head = (status, enc, extra).prop_map(|(s, enc, extra)| {
        let mut out = format!("ICAP/1.0 {s} X\r\nISTag: \"t\"\r\n{extra}{enc}\r\n").into_bytes();
        if enc.contains("res-hdr") {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        } else if enc.contains("req-hdr") {
            out.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        }
        // Most heads that announce a body come with one, so that scripts often complete.
        if enc.contains("-body=") && s % 4 != 0 {
            let mut body = BytesMut::new();
            chunked::encode_body(b"data", &mut body);
            out.extend_from_slice(&body);
        }
        out
    });
    prop_oneof![
        4 => head,
        2 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|d| {
            let mut out = BytesMut::new();
            chunked::encode_body(&d, &mut out);
            out.to_vec()
        }),
        1 => Just(b"0\r\n\r\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

/// The legality of a completed final answer, said independently of the implementation.
fn legal_final(plan: RequestPlan, continued: bool, head: &ResponseHead) -> bool {
    let embedded = head.http_request.is_some() || head.http_response.is_some();
    match head.status.as_u16() {
        200 => match plan.method {
            Method::Options => true,
            Method::Reqmod => embedded,
            Method::Respmod => head.http_response.is_some(),
        },
        201 => head.headers.contains("X-Violations-Found"),
        204 => {
            (plan.allow_204 || (plan.preview.is_some() && !continued))
                && !embedded
                && head.body.is_none()
        }
        206 => plan.allow_206 && head.body.is_some(),
        400..=599 => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_scripts_keep_the_invariants(
        plan in arb_plan(),
        sent in prop_oneof![Just(Sent::All), Just(Sent::Nothing)],
        script in prop::collection::vec(arb_piece(), 0..5),
        step in 0usize..6,
    ) {
        let bytes = script.concat();
        let (out, ex) = drive(plan, sent, &bytes, step);
        // The same outcome however the bytes arrive.
        let (whole, _) = drive(plan, sent, &bytes, 0);
        prop_assert_eq!(&out.result, &whole.result);
        prop_assert_eq!(out.reuse, whole.reuse);

        // Events: [Continue] Head Data* End, Continue only when a 100 may come.
        let continues = out.events.iter().filter(|e| **e == ClientEvent::Continue).count();
        prop_assert!(continues <= 1);
        if continues == 1 {
            prop_assert!(plan.expects_continue());
            prop_assert_eq!(&out.events[0], &ClientEvent::Continue);
        }
        let heads = out.events.iter().filter(|e| matches!(e, ClientEvent::Head(_))).count();
        prop_assert!(heads <= 1);
        // The head the exchange handed over (it keeps none).
        let final_head = out.events.iter().find_map(|e| match e {
            ClientEvent::Head(h) => Some(&**h),
            _ => None,
        });
        prop_assert_eq!(ex.answered(), final_head.is_some());

        if out.result.is_ok() {
            prop_assert!(ex.is_done());
            let head = final_head.expect("a done exchange has handed over a final head");
            prop_assert!(legal_final(plan, ex.continued(), head), "{:?} accepted for {:?}", head, plan);
            prop_assert!(matches!(out.events.last(), Some(ClientEvent::End(_))));
        } else {
            prop_assert_eq!(out.reuse, Reuse::No(NotReusable::Failed));
            prop_assert_eq!(ex.state(), ClientState::Failed);
        }
        if out.reuse == Reuse::Yes {
            prop_assert!(out.result.is_ok());
            prop_assert_eq!(out.leftover, 0);
            prop_assert_eq!(sent, Sent::All);
            let head = final_head.expect("reusable only after a final head");
            prop_assert!(!head.headers.get_all("Connection").any(|v| v.as_bytes().eq_ignore_ascii_case(b"close")));
        }
        if out.leftover > 0 {
            prop_assert_ne!(out.reuse, Reuse::Yes);
        }
    }
}
