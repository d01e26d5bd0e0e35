//! What the peer did wrong in an exchange ([`ProtocolError`]) and what the caller did wrong
//! ([`Misuse`]), kept apart as the codec keeps `DecodeError` and `EncodeError` apart.

use crate::error::DecodeError;
use crate::types::Method;

/// The peer broke a rule of the exchange: the bytes did not decode, or a message that did
/// decode is not a legal answer to the request that was sent (or, on the server side, the
/// request's framing broke).
///
/// Every variant names its rule ([`ProtocolError::rule`]). After one, the exchange is dead
/// and the connection must be closed: it is never reusable and no verdict may be read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes are not a valid ICAP message (or break a limit).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A `100 Continue` when the request had no preview, or its preview ended with `ieof`.
    #[error("unexpected 100 Continue")]
    UnexpectedContinue,
    /// A second `100 Continue` in one exchange.
    #[error("a second 100 Continue")]
    DuplicateContinue,
    /// A `100 Continue` that encapsulates a head or a body.
    #[error("100 Continue with encapsulated content")]
    ContinueWithBody,
    /// A 1xx status other than `100`.
    #[error("unexpected informational status {0}")]
    UnexpectedInformational(u16),
    /// A `204` to a request without `Allow: 204`, outside a preview.
    #[error("204 without Allow: 204 outside a preview")]
    Unsolicited204,
    /// A `204` whose `Encapsulated` is not just `null-body`.
    #[error("204 with encapsulated content")]
    BodyWith204,
    /// A `206` to a request without `Allow: 206`.
    #[error("206 without Allow: 206")]
    Unsolicited206,
    /// A `206` without a body.
    #[error("206 without a body")]
    PartialWithoutBody,
    /// A `200` to `REQMOD` or `RESPMOD` without `Encapsulated`.
    #[error("{status} to {method} without Encapsulated")]
    MissingEncapsulated {
        /// The status of the response.
        status: u16,
        /// The method of the request.
        method: Method,
    },
    /// A `200` whose `Encapsulated` sections do not carry the adapted message (`null-body`
    /// alone, or no `res-hdr` in answer to `RESPMOD`).
    #[error("{status} to {method} with Encapsulated sections that do not fit the method")]
    EncapsulatedNotAllowed {
        /// The status of the response.
        status: u16,
        /// The method of the request.
        method: Method,
    },
    /// A `201` without `X-Violations-Found`: only the vendor rule (an infection report)
    /// makes a `201` legal.
    #[error("201 without X-Violations-Found")]
    Created201WithoutViolations,
    /// A status no rule allows: 2xx other than 200, 201, 204 and 206, any 3xx, and 600 or
    /// more.
    #[error("unexpected status {0}")]
    UnexpectedStatus(u16),
    /// The peer closed the connection before sending a byte of the response.
    #[error("connection closed before the response")]
    ClosedBeforeResponse,
    /// The peer closed the connection before the response was complete.
    #[error("connection closed in the middle of the response")]
    ClosedMidResponse,
    /// The peer closed the connection in the middle of a request (server side).
    #[error("connection closed in the middle of the request")]
    ClosedMidRequest,
}

impl ProtocolError {
    /// The rule that was broken, with its source (RFC 3507 section, the decoder, or the
    /// documented vendor rule).
    pub fn rule(&self) -> &'static str {
        match self {
            ProtocolError::Decode(_) => {
                "RFC 3507 §4.3-4.5: a message must decode (framing, Encapsulated, chunked body, limits)"
            }
            ProtocolError::UnexpectedContinue => {
                "RFC 3507 §4.5: 100 Continue only after a preview that ended without ieof"
            }
            ProtocolError::DuplicateContinue => {
                "RFC 3507 §4.5: at most one 100 Continue per request"
            }
            ProtocolError::ContinueWithBody => {
                "RFC 3507 §4.5: 100 Continue carries no encapsulated head or body (null-body at most)"
            }
            ProtocolError::UnexpectedInformational(_) => {
                "RFC 3507 §4.3.3: the only informational status is 100 Continue"
            }
            ProtocolError::Unsolicited204 => {
                "RFC 3507 §4.6: 204 only with Allow: 204 or in answer to a preview"
            }
            ProtocolError::BodyWith204 => {
                "RFC 3507 §4.6, §4.4.1: a 204 encapsulates nothing (Encapsulated: null-body)"
            }
            ProtocolError::Unsolicited206 => "RFC 3507 errata, §4.5: 206 only with Allow: 206",
            ProtocolError::PartialWithoutBody => {
                "RFC 3507 errata, §4.5: a 206 carries a body (ending with use-original-body)"
            }
            ProtocolError::MissingEncapsulated { .. } => {
                "RFC 3507 §4.4.1: a 200 to REQMOD or RESPMOD must carry Encapsulated"
            }
            ProtocolError::EncapsulatedNotAllowed { .. } => {
                "RFC 3507 §4.8.2, §4.9.2: a 200 to RESPMOD carries res-hdr, to REQMOD req-hdr or res-hdr"
            }
            ProtocolError::Created201WithoutViolations => {
                "vendor rule (Symantec): a 201 is legal only as an infection report with X-Violations-Found"
            }
            ProtocolError::UnexpectedStatus(_) => {
                "RFC 3507 §4.3.3: no rule allows this status (other 2xx, 3xx, 600 and above)"
            }
            ProtocolError::ClosedBeforeResponse => {
                "RFC 3507 §4.3: every request gets a response; the peer closed before any byte"
            }
            ProtocolError::ClosedMidResponse => {
                "RFC 3507 §4.3-4.5: a message is complete only when its framing says so"
            }
            ProtocolError::ClosedMidRequest => {
                "RFC 3507 §4.3-4.5: a request is complete only when its framing says so"
            }
        }
    }

    /// The ICAP status a server answers this error with before closing: the decoder's
    /// choice (400, 501, 505) for decoding errors, 400 otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            ProtocolError::Decode(e) => e.status_code(),
            _ => 400,
        }
    }

    /// Whether the peer closed the connection (before or in the middle of a message).
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            ProtocolError::ClosedBeforeResponse
                | ProtocolError::ClosedMidResponse
                | ProtocolError::ClosedMidRequest
        )
    }

    /// Whether the bytes did not decode (as opposed to a decoded message that is illegal here).
    pub fn is_decode(&self) -> bool {
        matches!(self, ProtocolError::Decode(_))
    }
}

/// The caller used an exchange out of order (a bug in the I/O layer, not in the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// The exchange has already failed; its error was returned before.
    #[error("the exchange has failed")]
    Failed,
    /// `handle_request_sent` was called twice.
    #[error("the request was already sent")]
    RequestAlreadySent,
    /// `handle_request_sent` after a preview without `ieof` before any `100 Continue`: the
    /// rest of the body may only follow a `100 Continue`.
    #[error("the rest of the body may only be sent after 100 Continue")]
    ContinueNotReceived,
    /// `handle_preview_sent` for a request whose plan has no preview without `ieof`.
    #[error("the plan has no preview without ieof")]
    PreviewNotPlanned,
    /// `handle_preview_sent` was called twice.
    #[error("the preview was already sent")]
    PreviewAlreadySent,
    /// `handle_request_sent` after a `100 Continue` but before `handle_preview_sent`.
    #[error("the preview was not sent")]
    PreviewNotSent,
    /// Server: a `100 Continue` is not allowed now (see `ServerExchange::may_continue`).
    #[error("100 Continue is not allowed now")]
    ContinueNotAllowed,
    /// Server: nothing to answer, no request head has been read.
    #[error("no request head has been read")]
    NoRequest,
    /// Server: a final response was already sent.
    #[error("a final response was already sent")]
    ResponseAlreadySent,
    /// Server: `100 Continue` goes through `handle_continue_sent`, not as a final response.
    #[error("100 Continue is not a final response")]
    ContinueIsNotFinal,
    /// Server: the response breaks a rule for this request; the client would reject it
    /// with this error.
    #[error("illegal response: {0}")]
    IllegalResponse(ProtocolError),
    /// Server: `handle_response_end` before `handle_response_sent`.
    #[error("no final response was sent")]
    ResponseNotSent,
    /// Server: `handle_response_end` was called twice.
    #[error("the response was already complete")]
    ResponseAlreadyEnded,
}
