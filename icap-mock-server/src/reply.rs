//! What a mock answers: a [`Reply`] (what the mock is told to reply), a [`Fault`] (how it
//! misbehaves first), the [`Reaction`] a [`Respond`]er chooses between them.

use std::sync::Arc;
use std::time::Duration;

use crate::replay::Replay;
use crate::request::Request;
use crate::service::Dialect;

/// What the mock is told to reply to a request (when no fault gets in the way): the
/// scan's finding, clean, a threat, an ICAP error or a bare status, in a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub(crate) kind: ReplyKind,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) dialect: Option<Dialect>,
    pub(crate) recorded: Option<Recorded>,
}

/// A recording used as a rule's dialect ([`Reply::with_recorded`]); two are equal when
/// they are the same loaded recording.
#[derive(Debug, Clone)]
pub(crate) struct Recorded(pub(crate) Arc<Replay>);

impl PartialEq for Recorded {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Recorded {}

/// The kinds of [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyKind {
    /// Whatever the scan finds (EICAR and the service's signatures): the default.
    Scan,
    /// Clean: `204` where the client allows it, else a `200` echo of the message.
    Clean,
    /// Infected with this threat, in the service's dialect.
    Infected(String),
    /// An ICAP error status with `X-Error-Code`.
    Error {
        /// The ICAP status (usually 500).
        status: u16,
        /// The `X-Error-Code` value, such as `password_protected`.
        code: String,
    },
    /// A bare status line with `ISTag` (`503`, `400`, ...).
    Status(u16),
}

impl Reply {
    /// Scan the body as the server would without a rule (EICAR, signatures).
    pub fn scan() -> Self {
        Reply::of(ReplyKind::Scan)
    }

    /// Clean: `204` if allowed, else `200` echoing the message unmodified.
    pub fn clean() -> Self {
        Reply::of(ReplyKind::Clean)
    }

    /// Infected with `threat`, reported in the service's dialect.
    pub fn infected(threat: &str) -> Self {
        Reply::of(ReplyKind::Infected(threat.to_owned()))
    }

    /// An error: `status` (e.g. 500) with `X-Error-Code: code` (e.g. `password_protected`).
    pub fn error(status: u16, code: &str) -> Self {
        Reply::of(ReplyKind::Error {
            status,
            code: code.to_owned(),
        })
    }

    /// A bare status (e.g. 503 or 400) with `ISTag` and nothing encapsulated.
    pub fn status(status: u16) -> Self {
        Reply::of(ReplyKind::Status(status))
    }

    fn of(kind: ReplyKind) -> Self {
        Reply {
            kind,
            headers: Vec::new(),
            dialect: None,
            recorded: None,
        }
    }

    /// Adds an ICAP header to the response.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers in `dialect` instead of the service's.
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// Answers the way a recorded server did (see [`crate::replay`]): the request is
    /// matched in `replay` and gets the recorded answer. Applies to rules that decide on the
    /// request's head (file name, method, headers); a rule decided on the body answers as
    /// its verdict says.
    #[must_use]
    pub fn with_recorded(mut self, replay: Replay) -> Self {
        self.recorded = Some(Recorded(Arc::new(replay)));
        self
    }

    /// What is replied: the scan's finding, clean, a threat, an error or a bare status.
    pub fn kind(&self) -> &ReplyKind {
        &self.kind
    }
}

/// A fault: a server misbehaving on purpose. Faults that eventually answer send
/// [`Fault::then`]'s verdict (by default what the scan finds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub(crate) kind: FaultKind,
    pub(crate) then: Reply,
}

/// The kinds of [`Fault`]; the README describes what the client sees for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Wait, then send the final response.
    Delay(Duration),
    /// Wait before `100 Continue` (only when the request has a preview that needs one).
    DelayContinue(Duration),
    /// Wait between response chunks (head, then body pieces of at most 256 bytes).
    SlowBody(Duration),
    /// Read the whole request, never answer; close when the client does (or after the
    /// idle timeout).
    NeverAnswer,
    /// Close right after reading the request head.
    CloseImmediately,
    /// Reset the connection (TCP RST) right after reading the request head.
    Reset,
    /// Close after the preview instead of answering it.
    CloseAfterPreview,
    /// Reset (RST) after the first body bytes.
    ResetMidBody,
    /// Close after the first body bytes.
    CloseMidBody,
    /// Send the response head and part of the body, then close.
    CloseMidResponse,
    /// Send half of the response head, then close.
    TruncatedResponse,
    /// Send the response with a chunk-size line that is not hex.
    BadChunkSize,
    /// Send the response body without its last chunk, then stay silent.
    MissingTerminalChunk,
    /// Send the response with `Encapsulated` offsets that do not match the heads.
    WrongEncapsulated,
    /// Answer with this unregistered status code.
    UnknownStatus(u16),
    /// Send bytes that are not ICAP, then close.
    Garbage,
    /// Answer right after the request head, while the client is still sending the body.
    EarlyResponse,
}

impl FaultKind {
    /// The name used in configuration files, the admin API, triggers and the journal.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Delay(_) => "delay",
            FaultKind::DelayContinue(_) => "delay_continue",
            FaultKind::SlowBody(_) => "slow_body",
            FaultKind::NeverAnswer => "never_answer",
            FaultKind::CloseImmediately => "close_immediately",
            FaultKind::Reset => "reset",
            FaultKind::CloseAfterPreview => "close_after_preview",
            FaultKind::ResetMidBody => "reset_mid_body",
            FaultKind::CloseMidBody => "close_mid_body",
            FaultKind::CloseMidResponse => "close_mid_response",
            FaultKind::TruncatedResponse => "truncated_response",
            FaultKind::BadChunkSize => "bad_chunk_size",
            FaultKind::MissingTerminalChunk => "missing_terminal_chunk",
            FaultKind::WrongEncapsulated => "wrong_encapsulated",
            FaultKind::UnknownStatus(_) => "unknown_status",
            FaultKind::Garbage => "garbage",
            FaultKind::EarlyResponse => "early_response",
        }
    }

    /// Parses a fault name; `arg_ms` is the delay for the delay faults (default 5000 ms)
    /// and `status` the code for `unknown_status` (default 299).
    pub fn parse(name: &str, arg_ms: Option<u64>, status: Option<u16>) -> Option<Self> {
        let d = Duration::from_millis(arg_ms.unwrap_or(5000));
        Some(match name {
            "delay" | "slow" => FaultKind::Delay(d),
            "delay_continue" => FaultKind::DelayContinue(d),
            "slow_body" => FaultKind::SlowBody(d),
            "never_answer" | "timeout" => FaultKind::NeverAnswer,
            "close_immediately" | "close" => FaultKind::CloseImmediately,
            "reset" => FaultKind::Reset,
            "close_after_preview" => FaultKind::CloseAfterPreview,
            "reset_mid_body" => FaultKind::ResetMidBody,
            "close_mid_body" => FaultKind::CloseMidBody,
            "close_mid_response" => FaultKind::CloseMidResponse,
            "truncated_response" | "truncated" => FaultKind::TruncatedResponse,
            "bad_chunk_size" => FaultKind::BadChunkSize,
            "missing_terminal_chunk" => FaultKind::MissingTerminalChunk,
            "wrong_encapsulated" => FaultKind::WrongEncapsulated,
            "unknown_status" => FaultKind::UnknownStatus(status.unwrap_or(299)),
            "garbage" => FaultKind::Garbage,
            "early_response" => FaultKind::EarlyResponse,
            _ => return None,
        })
    }
}

impl Fault {
    fn of(kind: FaultKind) -> Self {
        Fault {
            kind,
            then: Reply::scan(),
        }
    }

    /// The verdict sent by faults that eventually answer (default: what the scan finds;
    /// for [`Fault::early_response`], an infection named `Mock.EarlyResponse`).
    pub fn then(mut self, verdict: Reply) -> Self {
        self.then = verdict;
        self
    }

    /// How the server misbehaves (the README's fault table says what a client sees).
    pub fn kind(&self) -> FaultKind {
        self.kind
    }

    /// Waits `d` before the final response, then answers normally.
    pub fn delay(d: Duration) -> Self {
        Fault::of(FaultKind::Delay(d))
    }
    /// Waits `d` before `100 Continue`.
    pub fn delay_continue(d: Duration) -> Self {
        Fault::of(FaultKind::DelayContinue(d))
    }
    /// Waits `d` between response chunks.
    pub fn slow_body(d: Duration) -> Self {
        Fault::of(FaultKind::SlowBody(d))
    }
    /// Never answers (the client's timeout must fire).
    pub fn never_answer() -> Self {
        Fault::of(FaultKind::NeverAnswer)
    }
    /// Closes right after the request head.
    ///
    /// One-shot: icap-client retries once when a reused connection fails before any answer,
    /// so `.times(1)` of this fault is absorbed by that retry; use `.times(2)` to make the
    /// scan fail (the README's "one-shot faults").
    pub fn close_immediately() -> Self {
        Fault::of(FaultKind::CloseImmediately)
    }
    /// Resets (RST) right after the request head.
    ///
    /// One-shot: icap-client retries once when a reused connection fails before any answer,
    /// so `.times(1)` of this fault is absorbed by that retry; use `.times(2)` to make the
    /// scan fail (the README's "one-shot faults").
    pub fn reset() -> Self {
        Fault::of(FaultKind::Reset)
    }
    /// Closes after the preview instead of answering it.
    ///
    /// One-shot: icap-client retries once when a reused connection fails before any answer,
    /// so `.times(1)` of this fault is absorbed by that retry; use `.times(2)` to make the
    /// scan fail (the README's "one-shot faults").
    pub fn close_after_preview() -> Self {
        Fault::of(FaultKind::CloseAfterPreview)
    }
    /// Resets (RST) after the first body bytes.
    ///
    /// One-shot: icap-client retries once when a reused connection fails before any answer,
    /// so `.times(1)` of this fault is absorbed by that retry; use `.times(2)` to make the
    /// scan fail (the README's "one-shot faults").
    pub fn reset_mid_body() -> Self {
        Fault::of(FaultKind::ResetMidBody)
    }
    /// Closes after the first body bytes.
    ///
    /// One-shot: icap-client retries once when a reused connection fails before any answer,
    /// so `.times(1)` of this fault is absorbed by that retry; use `.times(2)` to make the
    /// scan fail (the README's "one-shot faults").
    pub fn close_mid_body() -> Self {
        Fault::of(FaultKind::CloseMidBody)
    }
    /// Sends part of the response, then closes.
    pub fn close_mid_response() -> Self {
        Fault::of(FaultKind::CloseMidResponse)
    }
    /// Sends half of the response head, then closes.
    pub fn truncated_response() -> Self {
        Fault::of(FaultKind::TruncatedResponse)
    }
    /// Sends a chunk-size line that is not hex.
    pub fn bad_chunk_size() -> Self {
        Fault::of(FaultKind::BadChunkSize)
    }
    /// Leaves out the last chunk of the response body.
    pub fn missing_terminal_chunk() -> Self {
        Fault::of(FaultKind::MissingTerminalChunk)
    }
    /// Sends `Encapsulated` offsets that do not match.
    pub fn wrong_encapsulated() -> Self {
        Fault::of(FaultKind::WrongEncapsulated)
    }
    /// Answers with the status `code` (for example 299 or 600).
    pub fn unknown_status(code: u16) -> Self {
        Fault::of(FaultKind::UnknownStatus(code))
    }
    /// Sends non-ICAP bytes, then closes.
    pub fn garbage() -> Self {
        Fault::of(FaultKind::Garbage)
    }
    /// Answers right after the head, while the client still sends the body.
    pub fn early_response() -> Self {
        Fault::of(FaultKind::EarlyResponse)
    }
}

/// What a responder tells the server to do with one request: reply, or misbehave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Send this reply (on the legal path: the exchange rules apply).
    Reply(Reply),
    /// Break the rules in this way, then (for faults that answer at all) send its reply.
    Fault(Fault),
}

impl From<Reply> for Reaction {
    fn from(v: Reply) -> Self {
        Reaction::Reply(v)
    }
}

impl From<Fault> for Reaction {
    fn from(f: Fault) -> Self {
        Reaction::Fault(f)
    }
}

/// Produces the action for a matched request. Implemented by [`Reply`], [`Fault`],
/// [`Reaction`] and closures `Fn(&Request) -> impl Into<Reaction>`.
pub trait Respond: Send + Sync + 'static {
    /// The action for `req`.
    fn respond(&self, req: &Request) -> Reaction;

    /// The answer as text for the admin API's `GET /rules` (`{"reply": "..."}`); `None`
    /// for a closure.
    fn describe(&self) -> Option<serde_json::Value> {
        None
    }
}

impl Respond for Reply {
    fn respond(&self, _: &Request) -> Reaction {
        Reaction::Reply(self.clone())
    }
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "reply": format!("{:?}", self.kind),
            "dialect": self.dialect.map(Dialect::name),
            "headers": self.headers,
        }))
    }
}

impl Respond for Fault {
    fn respond(&self, _: &Request) -> Reaction {
        Reaction::Fault(self.clone())
    }
    fn describe(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({
            "fault": self.kind.name(),
            "then": format!("{:?}", self.then.kind),
        }))
    }
}

impl Respond for Reaction {
    fn respond(&self, _: &Request) -> Reaction {
        self.clone()
    }
}

impl<F, R> Respond for F
where
    F: Fn(&Request) -> R + Send + Sync + 'static,
    R: Into<Reaction>,
{
    fn respond(&self, req: &Request) -> Reaction {
        self(req).into()
    }
}
