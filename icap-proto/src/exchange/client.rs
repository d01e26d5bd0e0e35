//! The client side: one [`ClientExchange`] per request.

use bytes::{Bytes, BytesMut};

use super::{
    AnswerContext, Misuse, NotReusable, ProtocolError, RequestPlan, Reuse, check_continue,
    check_final, says_close,
};
use crate::chunked::BodyEnd;
use crate::decoder::{Event, ResponseDecoder};
use crate::limits::Limits;
use crate::message::ResponseHead;
use crate::types::StatusCode;

/// What [`ClientExchange::poll_event`] found: a legal `100 Continue`, or the final response
/// as `Head`, `Data`* and `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A `100 Continue` (already checked): send the rest of the body.
    Continue,
    /// The final response head, checked against the request, handed over: the exchange
    /// keeps no copy.
    Head(Box<ResponseHead>),
    /// Body bytes of the final response.
    Data(Bytes),
    /// The final response is complete.
    End(BodyEnd),
}

/// What the caller should do next (in the manner of rustls' unbuffered API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Write the head and the preview, then call
    /// [`handle_preview_sent`](ClientExchange::handle_preview_sent) (or, when the preview
    /// ends with `ieof`, [`handle_request_sent`](ClientExchange::handle_request_sent)).
    SendPreview,
    /// The preview is out: read the answer (`100 Continue` or a final response).
    AwaitContinue,
    /// Write the request (for a plan without a preview: the head and the whole body; after
    /// `100 Continue`: the rest of the body), then call
    /// [`handle_request_sent`](ClientExchange::handle_request_sent). Reading may go on at
    /// the same time: a server may answer early.
    SendBody,
    /// Read the response.
    ReadResponse,
    /// The final response is complete; see [`ClientExchange::reuse`].
    Done,
    /// A protocol error happened; close the connection.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Waiting for a response head (the first, or the final after a `100`).
    Head,
    /// Inside a `100 Continue` message (its `End` is next).
    Continue,
    /// Inside the final response's body.
    Body,
    /// The final response is complete.
    Done,
}

/// One request's exchange, client side: told what was written, fed what was read, it checks
/// every response event against the rules of the [module](super) and decides reuse.
///
/// ```
/// use bytes::BytesMut;
/// use icap_proto::exchange::{ClientExchange, NotReusable, ProtocolError, RequestPlan, Reuse};
/// use icap_proto::{Limits, Method};
///
/// // A 204 to a request without Allow: 204 and without a preview.
/// let mut ex = ClientExchange::new(RequestPlan::new(Method::Respmod), Limits::default());
/// ex.handle_request_sent().unwrap();
/// let mut buf = BytesMut::from(&b"ICAP/1.0 204 No Content\r\n\r\n"[..]);
/// assert_eq!(ex.poll_event(&mut buf), Err(ProtocolError::Unsolicited204));
/// assert_eq!(ex.reuse(&buf), Reuse::No(NotReusable::Failed));
/// ```
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts of one exchange (what was sent, what came back); one enum of their combinations would hide them"
)]
#[derive(Debug)]
pub struct ClientExchange {
    plan: RequestPlan,
    decoder: ResponseDecoder,
    preview_sent: bool,
    request_sent: bool,
    continued: bool,
    /// Any byte of a response was seen.
    received: bool,
    reading: Reading,
    /// The final head says `Connection: close` ([`ClientEvent::Head`] hands the head over;
    /// the exchange keeps only what it decides with).
    close_asked: bool,
    early: bool,
    closed: bool,
    failed: Option<ProtocolError>,
}

impl ClientExchange {
    /// An exchange for a request sent according to `plan`, decoding its answer under `limits`.
    pub fn new(plan: RequestPlan, limits: Limits) -> Self {
        ClientExchange {
            plan,
            decoder: ResponseDecoder::new(plan.method, limits),
            preview_sent: false,
            request_sent: false,
            continued: false,
            received: false,
            reading: Reading::Head,
            close_asked: false,
            early: false,
            closed: false,
            failed: None,
        }
    }

    /// The plan this exchange checks against.
    pub fn plan(&self) -> &RequestPlan {
        &self.plan
    }

    /// The caller finished writing the request: the whole body (its last chunk), the
    /// preview that ended with `ieof`, or the head of a request without a body.
    ///
    /// Misuse: calling it twice; after a preview without `ieof` before a `100 Continue`
    /// (the rest of the body is not owed yet, and after a final answer to the preview not
    /// at all); after a `100 Continue` without [`handle_preview_sent`](Self::handle_preview_sent);
    /// after a failure.
    pub fn handle_request_sent(&mut self) -> Result<(), Misuse> {
        if self.failed.is_some() {
            return Err(Misuse::Failed);
        }
        if self.request_sent {
            return Err(Misuse::RequestAlreadySent);
        }
        if self.plan.expects_continue() {
            if !self.continued {
                return Err(Misuse::ContinueNotReceived);
            }
            if !self.preview_sent {
                return Err(Misuse::PreviewNotSent);
            }
        }
        self.request_sent = true;
        Ok(())
    }

    /// The caller wrote the preview (its last chunk, `0` without `ieof`) of a request whose
    /// plan has a preview without `ieof`.
    pub fn handle_preview_sent(&mut self) -> Result<(), Misuse> {
        if self.failed.is_some() {
            return Err(Misuse::Failed);
        }
        if !self.plan.expects_continue() {
            return Err(Misuse::PreviewNotPlanned);
        }
        if self.preview_sent {
            return Err(Misuse::PreviewAlreadySent);
        }
        self.preview_sent = true;
        Ok(())
    }

    /// Decodes and checks the next response event from `buf`; `Ok(None)`: feed more bytes.
    ///
    /// After the final `End` it returns `Ok(None)` and consumes nothing: what is left in
    /// `buf` belongs to no request (see [`reuse`](Self::reuse)). After an error the exchange
    /// is dead and every later call returns the same error.
    pub fn poll_event(&mut self, buf: &mut BytesMut) -> Result<Option<ClientEvent>, ProtocolError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.reading == Reading::Done {
            return Ok(None);
        }
        if !buf.is_empty() {
            self.received = true;
        }
        loop {
            let event = match self.decoder.decode(buf) {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(e.into())),
            };
            match (self.reading, event) {
                (Reading::Head, Event::Head(head)) => {
                    if head.status == StatusCode::CONTINUE {
                        if let Err(e) = check_continue(self.context(), &head) {
                            return Err(self.fail(e));
                        }
                        // Its End follows without bytes (it has no body); read it now.
                        self.reading = Reading::Continue;
                        continue;
                    }
                    if let Err(e) = check_final(self.context(), &head) {
                        return Err(self.fail(e));
                    }
                    let in_preview = self.plan.expects_continue() && !self.continued;
                    self.early = !self.request_sent && !in_preview;
                    self.reading = Reading::Body;
                    self.close_asked = says_close(&head.headers);
                    return Ok(Some(ClientEvent::Head(head)));
                }
                (Reading::Continue, Event::End(_)) => {
                    self.continued = true;
                    self.reading = Reading::Head;
                    return Ok(Some(ClientEvent::Continue));
                }
                (Reading::Body, Event::Data(data)) => return Ok(Some(ClientEvent::Data(data))),
                (Reading::Body, Event::End(end)) => {
                    self.reading = Reading::Done;
                    return Ok(Some(ClientEvent::End(end)));
                }
                // A response decoder yields Head, Data* then End and never PreviewEnd, and
                // check_continue refuses a 100 with a body, so nothing else can come.
                (reading, event) => {
                    if cfg!(debug_assertions) {
                        unreachable!("response decoder gave {event:?} while reading {reading:?}");
                    }
                    return Err(self.fail(ProtocolError::ContinueWithBody));
                }
            }
        }
    }

    /// The peer closed the stream (a read returned 0), after `poll_event` returned
    /// `Ok(None)` on everything buffered. `Ok(())` if the final response was complete;
    /// otherwise the error for where the exchange was (and the exchange has failed).
    pub fn handle_eof(&mut self) -> Result<(), ProtocolError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.closed = true;
        if self.reading == Reading::Done {
            return Ok(());
        }
        Err(self.fail(if self.received {
            ProtocolError::ClosedMidResponse
        } else {
            ProtocolError::ClosedBeforeResponse
        }))
    }

    /// What the caller should do now.
    pub fn state(&self) -> ClientState {
        if self.failed.is_some() {
            return ClientState::Failed;
        }
        if self.reading == Reading::Done {
            return ClientState::Done;
        }
        if self.request_sent || self.answered() {
            return ClientState::ReadResponse;
        }
        match self.plan.preview {
            Some(p) if !p.ieof => {
                if !self.preview_sent {
                    ClientState::SendPreview
                } else if self.continued {
                    ClientState::SendBody
                } else {
                    ClientState::AwaitContinue
                }
            }
            Some(_) => ClientState::SendPreview,
            None => ClientState::SendBody,
        }
    }

    /// Whether the final response is complete.
    pub fn is_done(&self) -> bool {
        self.reading == Reading::Done && self.failed.is_none()
    }

    /// Whether the exchange has failed (a protocol error was returned).
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The error the exchange failed with.
    pub fn error(&self) -> Option<ProtocolError> {
        self.failed
    }

    /// Whether the final response head was returned (as [`ClientEvent::Head`], which
    /// hands the head to the caller).
    pub fn answered(&self) -> bool {
        matches!(self.reading, Reading::Body | Reading::Done)
    }

    /// Whether the final answer came in answer to the preview: the plan has a preview and
    /// no `100 Continue` came before the final head.
    pub fn answered_in_preview(&self) -> bool {
        self.answered() && self.plan.preview.is_some() && !self.continued
    }

    /// Whether the final head came before the request was completely written (and not as
    /// an answer to a preview without `ieof`, after which the rest is never owed).
    pub fn is_early(&self) -> bool {
        self.early
    }

    /// Whether a `100 Continue` was received.
    pub fn continued(&self) -> bool {
        self.continued
    }

    /// Whether the request is complete on the wire: all of it was written, or its preview
    /// was written and answered with a final response (the rest is not owed).
    fn request_complete(&self) -> bool {
        self.request_sent
            || (self.plan.expects_continue()
                && self.preview_sent
                && !self.continued
                && self.answered())
    }

    /// Whether the connection may carry another request, given the bytes still buffered
    /// after the final response (`leftover`). Never after an error, after
    /// `Connection: close`, with leftover bytes, after the peer closed, when the request
    /// was not completely sent, or before the response is complete.
    pub fn reuse(&self, leftover: &[u8]) -> Reuse {
        let why = if self.failed.is_some() {
            NotReusable::Failed
        } else if self.closed {
            NotReusable::Closed
        } else if self.reading != Reading::Done {
            NotReusable::ResponseIncomplete
        } else if !self.request_complete() {
            NotReusable::RequestIncomplete
        } else if self.close_asked {
            NotReusable::ConnectionClose
        } else if !leftover.is_empty() {
            NotReusable::LeftoverBytes(leftover.len())
        } else {
            return Reuse::Yes;
        };
        Reuse::No(why)
    }

    fn context(&self) -> AnswerContext {
        AnswerContext {
            plan: self.plan,
            continued: self.continued,
        }
    }

    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.failed = Some(e);
        e
    }
}
