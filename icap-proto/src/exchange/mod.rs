//! The rules of one ICAP exchange (a request and its answer), as sans-IO state machines for
//! both sides: [`ClientExchange`] checks that each response is legal for the request that
//! was sent, [`ServerExchange`] tells a server what it may answer; both decide whether the
//! connection may carry another request ([`Reuse`]).
//!
//! No I/O, no clock: the caller moves bytes and runs timers, and tells the exchange what it
//! wrote (`handle_*`); the exchange decodes what was read and says what to do next
//! (`poll_*`, [`ClientExchange::state`]). What the peer did wrong is a [`ProtocolError`]
//! naming the rule ([`ProtocolError::rule`]); what the caller did wrong is a [`Misuse`].
//!
//! # Rules
//!
//! | answer | legal when | otherwise |
//! |---|---|---|
//! | `100 Continue` | the request had a preview that ended without `ieof`, no final head yet, the first 100 | [`UnexpectedContinue`](ProtocolError::UnexpectedContinue), [`DuplicateContinue`](ProtocolError::DuplicateContinue) |
//! | `100` with `Encapsulated` | only `null-body` (or no `Encapsulated`) | [`ContinueWithBody`](ProtocolError::ContinueWithBody) |
//! | other 1xx | never | [`UnexpectedInformational`](ProtocolError::UnexpectedInformational) |
//! | `200` to `OPTIONS` | always (`opt-body`, `null-body` or no `Encapsulated`) | |
//! | `200` to `REQMOD` | `Encapsulated` with `req-hdr` or `res-hdr` | [`MissingEncapsulated`](ProtocolError::MissingEncapsulated), [`EncapsulatedNotAllowed`](ProtocolError::EncapsulatedNotAllowed) |
//! | `200` to `RESPMOD` | `Encapsulated` with `res-hdr` | the same |
//! | `201` | with `X-Violations-Found` (vendor rule, below) | [`Created201WithoutViolations`](ProtocolError::Created201WithoutViolations) |
//! | `204` | `Allow: 204` was sent, or in answer to a preview (no 100 yet) (§4.6) | [`Unsolicited204`](ProtocolError::Unsolicited204) |
//! | `204` with `Encapsulated` | only `null-body` | [`BodyWith204`](ProtocolError::BodyWith204) |
//! | `206` | `Allow: 206` was sent, and it carries a body | [`Unsolicited206`](ProtocolError::Unsolicited206), [`PartialWithoutBody`](ProtocolError::PartialWithoutBody) |
//! | other 2xx, any 3xx, 600 and above | never | [`UnexpectedStatus`](ProtocolError::UnexpectedStatus) |
//! | 4xx, 5xx | always (an error answer; `Encapsulated` optional, decoded if present) | |
//! | end of stream | after the final message's framing ended | [`ClosedBeforeResponse`](ProtocolError::ClosedBeforeResponse), [`ClosedMidResponse`](ProtocolError::ClosedMidResponse) |
//!
//! `Encapsulated` itself (offsets, sections allowed for the method) and the framing are
//! checked by the decoders; their errors come as [`ProtocolError::Decode`].
//!
//! A connection may carry the next request ([`Reuse::Yes`]) only when the request was sent
//! completely (or its preview was answered with a final response, so the rest is not owed),
//! the final response is complete, neither side said `Connection: close`, no error
//! happened, and (client side) no byte is left in the buffer after the response.
//!
//! ## Vendor rule
//!
//! Symantec (Broadcom) Protection Engine answers an infected file with
//! `201 Created` and `X-Violations-Found`: the `201` is its infection report. That
//! combination is legal here, so the verdict reader can see the report; a `201` without
//! `X-Violations-Found` is an error.
//!
//! ## Tolerated
//!
//! - A `204` without `Encapsulated`: c-icap, Kaspersky and others omit it, and a `204`
//!   carries nothing anyway, so its absence loses no information. A `204` that does
//!   carry `Encapsulated` must say `null-body` only: a body in a `204` would be read by
//!   someone as a verdict.
//! - A 4xx or 5xx without `Encapsulated`: an error answer has nothing to encapsulate and
//!   vendors send it bare; it is never a verdict.
//! - A `200` to `OPTIONS` without `Encapsulated`: the capabilities are in the headers.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use icap_proto::exchange::{ClientEvent, ClientExchange, ClientState, PreviewPlan, RequestPlan, Reuse};
//! use icap_proto::{Limits, Method};
//!
//! let plan = RequestPlan::new(Method::Respmod)
//!     .with_preview(Some(PreviewPlan { size: 4, ieof: false }));
//! let mut ex = ClientExchange::new(plan, Limits::default());
//! assert_eq!(ex.state(), ClientState::SendPreview);
//! ex.handle_preview_sent().unwrap();
//! assert_eq!(ex.state(), ClientState::AwaitContinue);
//! // No Allow: 204, but the answer is to a preview (RFC 3507 section 4.6).
//! let mut buf = BytesMut::from(&b"ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\n\r\n"[..]);
//! assert!(matches!(ex.poll_event(&mut buf).unwrap(), Some(ClientEvent::Head(_))));
//! assert!(matches!(ex.poll_event(&mut buf).unwrap(), Some(ClientEvent::End(_))));
//! assert_eq!(ex.state(), ClientState::Done);
//! assert!(ex.answered_in_preview());
//! assert_eq!(ex.reuse(&buf), Reuse::Yes);
//! ```

mod client;
mod error;
mod server;

pub use client::{ClientEvent, ClientExchange, ClientState};
pub use error::{Misuse, ProtocolError};
pub use server::ServerExchange;

use crate::error::DecodeError;
use crate::header::Headers;
use crate::message::{RequestHead, ResponseHead};
use crate::types::Method;
use crate::types::StatusCode;

/// A preview the request carries: `Preview: size`, and whether the preview is the whole
/// body (its last chunk is `0; ieof`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewPlan {
    /// The announced `Preview` size.
    pub size: u64,
    /// The preview ends with `ieof`: it is the whole body, no `100 Continue` may follow.
    pub ieof: bool,
}

/// What the client sends, fixed before the first byte goes out: the facts the rules need.
///
/// ```
/// use icap_proto::exchange::{PreviewPlan, RequestPlan};
/// use icap_proto::Method;
/// let plan = RequestPlan::new(Method::Respmod)
///     .with_allow_204(true)
///     .with_preview(Some(PreviewPlan { size: 1024, ieof: false }));
/// assert!(plan.has_body);
/// assert!(!RequestPlan::new(Method::Options).has_body);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPlan {
    /// The method.
    pub method: Method,
    /// The request carried `Allow: 204`.
    pub allow_204: bool,
    /// The request carried `Allow: 206`.
    pub allow_206: bool,
    /// The preview, or `None` without a `Preview` header (or for a request without a body).
    pub preview: Option<PreviewPlan>,
    /// The request has a body (false for `OPTIONS` and `null-body`).
    pub has_body: bool,
}

impl RequestPlan {
    /// No `Allow`, no preview; a body unless the method is `OPTIONS`.
    pub fn new(method: Method) -> Self {
        RequestPlan {
            method,
            allow_204: false,
            allow_206: false,
            preview: None,
            has_body: method != Method::Options,
        }
    }

    /// Sets [`RequestPlan::allow_204`].
    pub fn with_allow_204(mut self, allow: bool) -> Self {
        self.allow_204 = allow;
        self
    }

    /// Sets [`RequestPlan::allow_206`].
    pub fn with_allow_206(mut self, allow: bool) -> Self {
        self.allow_206 = allow;
        self
    }

    /// Sets [`RequestPlan::preview`].
    pub fn with_preview(mut self, preview: Option<PreviewPlan>) -> Self {
        self.preview = preview;
        self
    }

    /// Sets [`RequestPlan::has_body`].
    pub fn with_body(mut self, has_body: bool) -> Self {
        self.has_body = has_body;
        self
    }

    /// Reads the method, `Allow` (204, 206), `Preview` and the body kind from a head about
    /// to be encoded (or just decoded). `preview_ieof` says whether the preview will end
    /// with `ieof`. A `Preview` on a request without a body is ignored, as the decoder
    /// ignores it. A `Preview` that is not a number is an error.
    ///
    /// ```
    /// use icap_proto::exchange::{PreviewPlan, RequestPlan};
    /// use icap_proto::{BodyKind, HttpResponseHead, Method, RequestHead};
    /// let mut head = RequestHead::new(Method::Respmod, "icap://av/scan".parse().unwrap());
    /// head.headers.append("Allow", "204, 206").unwrap();
    /// head.headers.append("Preview", "0").unwrap();
    /// head.http_response = Some(HttpResponseHead::new(200, "OK").unwrap());
    /// head.body = Some(BodyKind::Response);
    /// let plan = RequestPlan::from_head(&head, true).unwrap();
    /// assert!(plan.allow_204 && plan.allow_206 && plan.has_body);
    /// assert_eq!(plan.preview, Some(PreviewPlan { size: 0, ieof: true }));
    /// ```
    pub fn from_head(head: &RequestHead, preview_ieof: bool) -> Result<Self, DecodeError> {
        Ok(Self::read(head, head.preview()?, preview_ieof).0)
    }

    /// [`RequestPlan::from_head`] with the head's `Preview` already read (`announced`, as
    /// [`RequestHead::preview`] gives it), and whether the head's `Connection` says
    /// `close`: one pass over the fields for `Allow` and `Connection`.
    pub(crate) fn read(
        head: &RequestHead,
        announced: Option<u64>,
        preview_ieof: bool,
    ) -> (Self, bool) {
        let has_body = head.body.is_some();
        let preview = announced.filter(|_| has_body).map(|size| PreviewPlan {
            size,
            ieof: preview_ieof,
        });
        let (mut allow_204, mut allow_206, mut close) = (false, false, false);
        for (name, value) in &head.headers {
            let name = name.as_bytes();
            if name.eq_ignore_ascii_case(b"Allow") {
                allow_204 |= list_has(value.as_bytes(), b"204");
                allow_206 |= list_has(value.as_bytes(), b"206");
            } else if name.eq_ignore_ascii_case(b"Connection") {
                close |= list_has(value.as_bytes(), b"close");
            }
        }
        let plan = RequestPlan {
            method: head.method,
            allow_204,
            allow_206,
            preview,
            has_body,
        };
        (plan, close)
    }

    /// The preview ends without `ieof`: the rest of the body waits for `100 Continue`.
    pub fn expects_continue(&self) -> bool {
        matches!(self.preview, Some(PreviewPlan { ieof: false, .. }))
    }
}

/// Whether a connection may carry another request after this exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// It may: the exchange ended cleanly and the framing of both sides is in step.
    Yes,
    /// It may not; close it.
    No(NotReusable),
}

impl Reuse {
    /// Whether the connection may be reused.
    pub fn is_yes(self) -> bool {
        self == Reuse::Yes
    }
}

/// Why a connection may not be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReusable {
    /// The exchange failed (a protocol error or an error answer to misuse).
    Failed,
    /// A side sent `Connection: close`.
    ConnectionClose,
    /// Bytes were left in the buffer after the final response (the count): they belong to
    /// no request, so the next exchange would read them as its answer.
    LeftoverBytes(usize),
    /// The request was not completely sent (client) or read (server).
    RequestIncomplete,
    /// The final response was not completely read (client) or written (server).
    ResponseIncomplete,
    /// The peer closed the connection.
    Closed,
}

/// The state of the exchange the status rules depend on, besides the request plan.
#[derive(Debug, Clone, Copy)]
struct AnswerContext {
    plan: RequestPlan,
    continued: bool,
}

/// The sections a response carries, from its `Encapsulated` header when decoded, or from
/// its embedded heads and body when about to be encoded.
#[expect(
    clippy::struct_excessive_bools,
    reason = "which sections a message carries: four independent flags"
)]
#[derive(Debug, Clone, Copy)]
struct Shape {
    present: bool,
    req_hdr: bool,
    res_hdr: bool,
    body: bool,
}

impl Shape {
    fn of(head: &ResponseHead) -> Self {
        let req_hdr = head.http_request.is_some();
        let res_hdr = head.http_response.is_some();
        let body = head.body.is_some();
        Shape {
            present: head.headers.contains("Encapsulated") || req_hdr || res_hdr || body,
            req_hdr,
            res_hdr,
            body,
        }
    }

    fn is_empty(self) -> bool {
        !(self.req_hdr || self.res_hdr || self.body)
    }
}

/// Checks a `100 Continue` (the caller knows the status is 100).
fn check_continue(ctx: AnswerContext, head: &ResponseHead) -> Result<(), ProtocolError> {
    if ctx.continued {
        return Err(ProtocolError::DuplicateContinue);
    }
    if !ctx.plan.expects_continue() {
        return Err(ProtocolError::UnexpectedContinue);
    }
    if !Shape::of(head).is_empty() {
        return Err(ProtocolError::ContinueWithBody);
    }
    Ok(())
}

/// Checks a final (non-100) response head against the request and the exchange so far.
fn check_final(ctx: AnswerContext, head: &ResponseHead) -> Result<(), ProtocolError> {
    let code = head.status.as_u16();
    let shape = Shape::of(head);
    let plan = ctx.plan;
    match code {
        100 => check_continue(ctx, head),
        101..=199 => Err(ProtocolError::UnexpectedInformational(code)),
        200 => {
            let method = plan.method;
            let fits = match method {
                Method::Options => return Ok(()),
                Method::Reqmod => shape.req_hdr || shape.res_hdr,
                Method::Respmod => shape.res_hdr,
            };
            if !shape.present {
                Err(ProtocolError::MissingEncapsulated {
                    status: code,
                    method,
                })
            } else if fits {
                Ok(())
            } else {
                Err(ProtocolError::EncapsulatedNotAllowed {
                    status: code,
                    method,
                })
            }
        }
        201 if head.headers.contains("X-Violations-Found") => Ok(()),
        201 => Err(ProtocolError::Created201WithoutViolations),
        204 => {
            let in_preview = plan.preview.is_some() && !ctx.continued;
            if !(plan.allow_204 || in_preview) {
                Err(ProtocolError::Unsolicited204)
            } else if !shape.is_empty() {
                Err(ProtocolError::BodyWith204)
            } else {
                Ok(())
            }
        }
        206 if !plan.allow_206 => Err(ProtocolError::Unsolicited206),
        206 if !shape.body => Err(ProtocolError::PartialWithoutBody),
        206 | 400..=599 => Ok(()),
        _ => Err(ProtocolError::UnexpectedStatus(code)),
    }
}

/// Whether a status is allowed at all here, before its head is known (the server's
/// [`ServerExchange::may_answer`]); [`check_final`] has the last word.
fn status_may_answer(ctx: AnswerContext, status: StatusCode) -> bool {
    match status.as_u16() {
        100 => !ctx.continued && ctx.plan.expects_continue(),
        204 => ctx.plan.allow_204 || (ctx.plan.preview.is_some() && !ctx.continued),
        206 => ctx.plan.allow_206,
        200 | 201 | 400..=599 => true,
        _ => false,
    }
}

/// Whether the comma-separated list in the fields `name` contains `token`
/// (case-insensitive), as in `Allow: 204, 206` or `Connection: keep-alive, close`.
fn list_contains(headers: &Headers, name: &str, token: &[u8]) -> bool {
    headers.get_all(name).any(|v| list_has(v.as_bytes(), token))
}

/// Whether the comma-separated field value `v` lists `token` (case-insensitive).
fn list_has(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether a head's `Connection` field says `close`.
fn says_close(headers: &Headers) -> bool {
    list_contains(headers, "Connection", b"close")
}
