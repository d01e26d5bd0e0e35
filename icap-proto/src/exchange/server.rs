//! The server side: one [`ServerExchange`] per request.

use bytes::BytesMut;

use super::{
    AnswerContext, Misuse, NotReusable, ProtocolError, RequestPlan, Reuse, check_final, says_close,
    status_may_answer,
};
use crate::decoder::{Event, RequestDecoder};
use crate::encapsulated::Direction;
use crate::error::DecodeError;
use crate::limits::Limits;
use crate::message::{RequestHead, ResponseHead};
use crate::types::StatusCode;

/// One request's exchange, server side: it decodes the request, says what the server may
/// answer ([`may_continue`](Self::may_continue), [`may_answer`](Self::may_answer)), checks
/// the answer the server sends against the same rules the client applies, and decides
/// whether the connection may read the next request.
///
/// ```
/// use bytes::BytesMut;
/// use icap_proto::exchange::{Reuse, ServerExchange};
/// use icap_proto::{Event, Limits, ResponseHead, StatusCode};
///
/// let mut ex = ServerExchange::new(Limits::default());
/// let mut buf = BytesMut::from(
///     &b"RESPMOD icap://av/scan ICAP/1.0\r\nHost: av\r\nPreview: 4\r\n\
///        Encapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\
///        4\r\nabcd\r\n0\r\n\r\n"[..],
/// );
/// assert!(matches!(ex.poll_event(&mut buf).unwrap(), Some(Event::Head(_))));
/// assert!(matches!(ex.poll_event(&mut buf).unwrap(), Some(Event::Data(_))));
/// assert_eq!(ex.poll_event(&mut buf).unwrap(), Some(Event::PreviewEnd { ieof: false }));
/// assert!(ex.may_continue());
/// // No Allow: 204, but a 204 may answer a preview.
/// assert!(ex.may_answer(StatusCode::NO_CONTENT));
/// ex.handle_response_sent(&ResponseHead::new(StatusCode::NO_CONTENT)).unwrap();
/// ex.handle_response_end().unwrap();
/// assert_eq!(ex.reuse(), Reuse::Yes);
/// ```
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts of one exchange (what was sent, what came back); one enum of their combinations would hide them"
)]
#[derive(Debug)]
pub struct ServerExchange {
    decoder: RequestDecoder,
    /// Whether the request head said `Connection: close` (the head itself goes to the
    /// caller: keeping a copy here cost a clone of every head).
    request_close: bool,
    plan: Option<RequestPlan>,
    /// `Some(ieof)` once the preview ended.
    preview_end: Option<bool>,
    request_done: bool,
    continued: bool,
    received: bool,
    response_sent: bool,
    response_done: bool,
    response_close: bool,
    closed: bool,
    failed: Option<ProtocolError>,
}

impl ServerExchange {
    /// An exchange waiting for a request, decoded under `limits`.
    pub fn new(limits: Limits) -> Self {
        ServerExchange {
            decoder: RequestDecoder::new(limits),
            request_close: false,
            plan: None,
            preview_end: None,
            request_done: false,
            continued: false,
            received: false,
            response_sent: false,
            response_done: false,
            response_close: false,
            closed: false,
            failed: None,
        }
    }

    /// The next request event from `buf`: `Head`, `Data`*, `PreviewEnd { ieof }` (with a
    /// preview), `Data`* after a `100 Continue`, `End`. `Ok(None)`: feed more bytes.
    ///
    /// Returns `Ok(None)` without consuming after `End` (the bytes are the next request's:
    /// start a new exchange on the same buffer), and after a preview without `ieof` until
    /// the server has sent `100 Continue` or a final answer. An error means the peer broke
    /// the framing: answer [`ProtocolError::status_code`] and close. After one, every call
    /// returns the same error.
    pub fn poll_event(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Event<RequestHead>>, ProtocolError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.request_done || self.awaiting_decision() {
            return Ok(None);
        }
        if !buf.is_empty() {
            self.received = true;
        }
        let event = match self.decoder.decode(buf) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(e.into())),
        };
        match &event {
            Event::Head(head) => {
                // The decoder has read (and checked) `Preview` with the head's fields.
                let (plan, close) =
                    RequestPlan::read(head, self.decoder.announced_preview(), false);
                self.plan = Some(plan);
                self.request_close = close;
            }
            Event::PreviewEnd { ieof } => {
                self.preview_end = Some(*ieof);
                if let Some(p) = self.plan.as_mut().and_then(|p| p.preview.as_mut()) {
                    p.ieof = *ieof;
                }
                if !*ieof && self.response_sent {
                    // Answered during the preview: the client sends nothing more.
                    self.finish_in_preview();
                }
            }
            Event::End(_) => self.request_done = true,
            Event::Data(_) => {}
        }
        Ok(Some(event))
    }

    /// The peer closed the stream, after `poll_event` returned `Ok(None)` on everything
    /// buffered. `Ok(())` between requests or after a complete request; otherwise
    /// [`ProtocolError::ClosedMidRequest`] (and the exchange has failed).
    pub fn handle_eof(&mut self) -> Result<(), ProtocolError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.closed = true;
        if self.request_done || !self.received {
            return Ok(());
        }
        Err(self.fail(ProtocolError::ClosedMidRequest))
    }

    /// The facts of the request the rules use, once its head was read (the preview's
    /// `ieof` is known once `PreviewEnd` was seen).
    pub fn plan(&self) -> Option<&RequestPlan> {
        self.plan.as_ref()
    }

    /// Whether a `100 Continue` may be sent now: the preview ended without `ieof`, no
    /// final answer was sent, no `100` yet.
    pub fn may_continue(&self) -> bool {
        self.failed.is_none()
            && self.preview_end == Some(false)
            && !self.continued
            && !self.response_sent
    }

    /// Whether `status` may answer this request now: `100` when [`may_continue`](Self::may_continue);
    /// `204` with `Allow: 204` or in answer to a preview; `206` with `Allow: 206`; `200`,
    /// `201` (the vendor rule still needs `X-Violations-Found`), 4xx and 5xx. Only after
    /// the head and before a final answer. [`handle_response_sent`](Self::handle_response_sent)
    /// checks the whole head.
    pub fn may_answer(&self, status: StatusCode) -> bool {
        match self.context() {
            Some(_) if status == StatusCode::CONTINUE => self.may_continue(),
            Some(ctx) => {
                self.failed.is_none() && !self.response_sent && status_may_answer(ctx, status)
            }
            None => false,
        }
    }

    /// The server wrote `100 Continue`.
    pub fn handle_continue_sent(&mut self) -> Result<(), Misuse> {
        if self.failed.is_some() {
            return Err(Misuse::Failed);
        }
        if !self.may_continue() {
            return Err(Misuse::ContinueNotAllowed);
        }
        self.continued = true;
        Ok(())
    }

    /// The server sends `head` as the final response: checks that it is legal for this
    /// request (the rules of the [module](super), and `Encapsulated` sections that fit the
    /// method), else [`Misuse::IllegalResponse`] naming the rule the client would apply.
    ///
    /// Sent during a preview without `ieof`, it ends the request (the client sends no
    /// more). Sent before the request's end otherwise, the rest of the request must still
    /// be read and dropped ([`must_drain`](Self::must_drain)).
    pub fn handle_response_sent(&mut self, head: &ResponseHead) -> Result<(), Misuse> {
        if self.failed.is_some() {
            return Err(Misuse::Failed);
        }
        let Some(ctx) = self.context() else {
            return Err(Misuse::NoRequest);
        };
        if self.response_sent {
            return Err(Misuse::ResponseAlreadySent);
        }
        if head.status == StatusCode::CONTINUE {
            return Err(Misuse::ContinueIsNotFinal);
        }
        head.encapsulated()
            .validate(ctx.plan.method, Direction::Response)
            .map_err(|e| Misuse::IllegalResponse(DecodeError::InvalidEncapsulated(e).into()))?;
        check_final(ctx, head).map_err(Misuse::IllegalResponse)?;
        self.response_sent = true;
        self.response_close = says_close(&head.headers);
        if self.preview_end == Some(false) && !self.continued && !self.request_done {
            self.finish_in_preview();
        }
        Ok(())
    }

    /// The final response's body (if any) is completely written.
    pub fn handle_response_end(&mut self) -> Result<(), Misuse> {
        if self.failed.is_some() {
            return Err(Misuse::Failed);
        }
        if !self.response_sent {
            return Err(Misuse::ResponseNotSent);
        }
        if self.response_done {
            return Err(Misuse::ResponseAlreadyEnded);
        }
        self.response_done = true;
        Ok(())
    }

    /// Whether a final answer went out before the request ended, so the rest of the
    /// request must be read (and dropped) before the next request can be read.
    pub fn must_drain(&self) -> bool {
        self.failed.is_none() && self.response_sent && !self.request_done
    }

    /// Whether the request was read to its end (or ended by an answer to its preview).
    pub fn is_request_done(&self) -> bool {
        self.request_done
    }

    /// Whether the exchange has failed.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Whether the connection may read the next request: the request was read to its end,
    /// the response was completely written, neither side said `Connection: close`, and
    /// nothing failed.
    pub fn reuse(&self) -> Reuse {
        let request_close = self.request_close;
        let why = if self.failed.is_some() {
            NotReusable::Failed
        } else if self.closed {
            NotReusable::Closed
        } else if !self.request_done {
            NotReusable::RequestIncomplete
        } else if !self.response_done {
            NotReusable::ResponseIncomplete
        } else if request_close || self.response_close {
            NotReusable::ConnectionClose
        } else {
            return Reuse::Yes;
        };
        Reuse::No(why)
    }

    /// After a preview without `ieof`, before the server decided: bytes wait in the buffer
    /// (they are the rest of the body after a `100`, or the next request after a final
    /// answer).
    fn awaiting_decision(&self) -> bool {
        self.preview_end == Some(false) && !self.continued && !self.response_sent
    }

    fn finish_in_preview(&mut self) {
        self.decoder.reset();
        self.request_done = true;
    }

    fn context(&self) -> Option<AnswerContext> {
        self.plan.map(|plan| AnswerContext {
            plan,
            continued: self.continued,
        })
    }

    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.failed = Some(e);
        e
    }
}
