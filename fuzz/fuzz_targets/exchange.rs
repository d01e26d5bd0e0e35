//! The exchange state machines: any response bytes against any request plan, fed to a
//! `ClientExchange` whole and in pieces the input chooses; the same bytes as a request to a
//! `ServerExchange`. Must not panic; both client runs agree; a completed answer is legal
//! for the plan (checked by a second, independent statement of the rules); the connection
//! is never reusable after an error, with bytes left over or before the request was sent.
#![no_main]

use bytes::BytesMut;
use icap_proto::exchange::{
    ClientEvent, ClientExchange, NotReusable, PreviewPlan, ProtocolError, RequestPlan, Reuse,
    ServerExchange,
};
use icap_proto::{Limits, Method, ResponseHead};
use libfuzzer_sys::fuzz_target;

/// Byte 0: bits 0..=1 the method (0 OPTIONS, 1 REQMOD, else RESPMOD), bit 2 `Allow: 204`,
/// bit 3 `Allow: 206`, bits 4..=5 the preview (0 none, 1 with `ieof`, else without), bit 6
/// a body, bit 7 the request is written (else nothing is: every answer is early).
fn plan(b: u8) -> (RequestPlan, bool) {
    let method = match b & 3 {
        0 => Method::Options,
        1 => Method::Reqmod,
        _ => Method::Respmod,
    };
    let preview = match (b >> 4) & 3 {
        0 => None,
        1 => Some(PreviewPlan {
            size: 4,
            ieof: true,
        }),
        _ => Some(PreviewPlan {
            size: 4,
            ieof: false,
        }),
    };
    let plan = RequestPlan::new(method)
        .with_allow_204(b & 4 != 0)
        .with_allow_206(b & 8 != 0)
        .with_preview(preview)
        .with_body(b & 64 != 0);
    (plan, b & 128 != 0)
}

struct Outcome {
    events: Vec<ClientEvent>,
    result: Result<(), ProtocolError>,
    reuse: Reuse,
    leftover: usize,
    ex: ClientExchange,
}

fn drive(plan: RequestPlan, sent: bool, bytes: &[u8], step: usize) -> Outcome {
    let mut ex = ClientExchange::new(plan, Limits::default());
    if sent {
        let marked = if plan.expects_continue() {
            ex.handle_preview_sent()
        } else {
            ex.handle_request_sent()
        };
        assert_eq!(marked, Ok(()));
    }
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut result = Ok(());
    let step = if step == 0 { bytes.len().max(1) } else { step };
    'feed: for piece in bytes.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match ex.poll_event(&mut buf) {
                Ok(Some(ev)) => {
                    if ev == ClientEvent::Continue && sent {
                        assert_eq!(ex.handle_request_sent(), Ok(()));
                    }
                    events.push(ev);
                    assert!(events.len() <= 2 * bytes.len() + 2, "events without input");
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
        assert!(result.is_err(), "EOF before the end is an error");
    }
    Outcome {
        events,
        result,
        reuse: ex.reuse(&buf),
        leftover: buf.len(),
        ex,
    }
}

/// The legality of a completed final answer, said independently of `icap_proto::exchange`.
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

fn says_close(head: &ResponseHead) -> bool {
    head.headers.get_all("Connection").any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

fn check_client(plan: RequestPlan, sent: bool, bytes: &[u8], step: usize) {
    let out = drive(plan, sent, bytes, step);
    let whole = drive(plan, sent, bytes, 0);
    assert_eq!(out.result, whole.result, "pieces vs whole");
    assert_eq!(out.reuse, whole.reuse, "pieces vs whole");

    let continues = out
        .events
        .iter()
        .filter(|e| **e == ClientEvent::Continue)
        .count();
    assert!(continues <= 1);
    if continues == 1 {
        assert!(plan.expects_continue());
        assert_eq!(out.events[0], ClientEvent::Continue);
        assert!(out.ex.continued());
    }
    let heads = out
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Head(_)))
        .count();
    assert!(heads <= 1);
    // The head the exchange handed over (it keeps none).
    let final_head = out.events.iter().find_map(|e| match e {
        ClientEvent::Head(h) => Some(&**h),
        _ => None,
    });
    assert_eq!(out.ex.answered(), final_head.is_some());

    if let Err(e) = &out.result {
        assert_eq!(out.reuse, Reuse::No(NotReusable::Failed));
        assert!(out.ex.is_failed());
        assert!(!e.rule().is_empty());
    } else {
        assert!(out.ex.is_done());
        let head = final_head.expect("a done exchange has handed over a final head");
        assert!(
            legal_final(plan, out.ex.continued(), head),
            "{head:?} accepted for {plan:?}"
        );
        assert!(matches!(out.events.last(), Some(ClientEvent::End(_))));
    }
    if out.reuse == Reuse::Yes {
        assert!(out.result.is_ok());
        assert_eq!(out.leftover, 0);
        assert!(sent, "reusable although the request was not sent");
        assert!(!says_close(
            final_head.expect("reusable only after a final head")
        ));
    }
    if out.leftover > 0 {
        assert_ne!(out.reuse, Reuse::Yes);
    }
}

/// The same bytes as a request: the server side must not panic, continue only when the
/// rules allow, and never be reusable after an error.
fn check_server(bytes: &[u8], step: usize, answer: u8) {
    let mut ex = ServerExchange::new(Limits::default());
    let mut buf = BytesMut::new();
    let step = if step == 0 { bytes.len().max(1) } else { step };
    let mut failed = false;
    'feed: for piece in bytes.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match ex.poll_event(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) if ex.may_continue() => {
                    if answer & 1 == 0 {
                        assert_eq!(ex.handle_continue_sent(), Ok(()));
                    } else {
                        assert!(ex.may_answer(icap_proto::StatusCode::SERVER_ERROR));
                        let head = ResponseHead::new(icap_proto::StatusCode::SERVER_ERROR);
                        assert_eq!(ex.handle_response_sent(&head), Ok(()));
                        assert_eq!(ex.handle_response_end(), Ok(()));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    assert!((400..=599).contains(&e.status_code()));
                    failed = true;
                    break 'feed;
                }
            }
        }
    }
    if failed {
        assert_eq!(ex.reuse(), Reuse::No(NotReusable::Failed));
    } else if ex.reuse() == Reuse::Yes {
        assert!(ex.is_request_done());
    }
    let _ = ex.handle_eof();
}

fuzz_target!(|data: &[u8]| {
    let [control, split, bytes @ ..] = data else {
        return;
    };
    let (plan, sent) = plan(*control);
    let step = usize::from(*split & 0x3f);
    check_client(plan, sent, bytes, step);
    check_server(bytes, step, *split >> 6);
});
