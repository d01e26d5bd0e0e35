//! Rules in the style of wiremock: `Mock::given(matcher).respond_with(responder)`.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::matchers::Match;
use crate::request::Request;
use crate::rng::splitmix64;
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
pub(crate) struct Recorded(pub(crate) Arc<crate::replay::Replay>);

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
    pub fn with_recorded(mut self, replay: crate::replay::Replay) -> Self {
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
    pub fn close_immediately() -> Self {
        Fault::of(FaultKind::CloseImmediately)
    }
    /// Resets (RST) right after the request head.
    pub fn reset() -> Self {
        Fault::of(FaultKind::Reset)
    }
    /// Closes after the preview instead of answering it.
    pub fn close_after_preview() -> Self {
        Fault::of(FaultKind::CloseAfterPreview)
    }
    /// Resets (RST) after the first body bytes.
    pub fn reset_mid_body() -> Self {
        Fault::of(FaultKind::ResetMidBody)
    }
    /// Closes after the first body bytes.
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
}

impl Respond for Reply {
    fn respond(&self, _: &Request) -> Reaction {
        Reaction::Reply(self.clone())
    }
}

impl Respond for Fault {
    fn respond(&self, _: &Request) -> Reaction {
        Reaction::Fault(self.clone())
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

/// How many times a mock is expected to apply: a number or a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times(Bound<u64>, Bound<u64>);

impl Times {
    pub(crate) fn contains(self, n: u64) -> bool {
        (self.0, self.1).contains(&n)
    }
}

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Bound::Included(a), Bound::Included(b)) if a == b => write!(f, "exactly {a}"),
            (a, b) => {
                let lo = match a {
                    Bound::Included(n) => format!("at least {n}"),
                    Bound::Excluded(n) => format!("more than {n}"),
                    Bound::Unbounded => String::new(),
                };
                let hi = match b {
                    Bound::Included(n) => format!("at most {n}"),
                    Bound::Excluded(n) => format!("fewer than {n}"),
                    Bound::Unbounded => String::new(),
                };
                let sep = if lo.is_empty() || hi.is_empty() {
                    ""
                } else {
                    " and "
                };
                write!(f, "{lo}{sep}{hi}")
            }
        }
    }
}

impl From<u64> for Times {
    fn from(n: u64) -> Self {
        Times(Bound::Included(n), Bound::Included(n))
    }
}

macro_rules! times_from_range {
    ($($t:ty),*) => {$(
        impl From<$t> for Times {
            fn from(r: $t) -> Self {
                Times(r.start_bound().cloned(), r.end_bound().cloned())
            }
        }
    )*};
}
times_from_range!(
    std::ops::Range<u64>,
    std::ops::RangeInclusive<u64>,
    std::ops::RangeFrom<u64>,
    std::ops::RangeTo<u64>,
    std::ops::RangeToInclusive<u64>
);

/// When a matching mock applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Schedule {
    Always,
    /// The first `n` matching requests.
    Times(u64),
    /// Every `k`-th matching request (`k`, `2k`, ...).
    Every(u64),
    /// Each matching request with probability `p`, from a seeded generator.
    Probability {
        p: f64,
        seed: u64,
    },
}

/// A rule: matchers, a responder, a schedule and an expectation.
pub struct Mock {
    pub(crate) matchers: Vec<Box<dyn Match>>,
    pub(crate) responder: Box<dyn Respond>,
    pub(crate) expect: Option<Times>,
    pub(crate) schedule: Schedule,
    pub(crate) name: Option<String>,
}

impl fmt::Debug for Mock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mock")
            .field("name", &self.name)
            .field("matchers", &self.matchers.len())
            .field("expect", &self.expect)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

/// A mock being built: [`Mock::given`], more matchers with [`MockBuilder::and`], then
/// [`MockBuilder::respond_with`].
pub struct MockBuilder {
    matchers: Vec<Box<dyn Match>>,
}

impl fmt::Debug for MockBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockBuilder")
            .field("matchers", &self.matchers.len())
            .finish()
    }
}

impl Mock {
    /// Starts a mock that applies to requests matching `matcher`.
    pub fn given(matcher: impl Match) -> MockBuilder {
        MockBuilder {
            matchers: vec![Box::new(matcher)],
        }
    }

    /// Expects the mock to apply this many times (a number or a range); checked by
    /// [`MockServer::verify`](crate::MockServer::verify) and when the server is dropped.
    pub fn expect(mut self, times: impl Into<Times>) -> Self {
        self.expect = Some(times.into());
        self
    }

    /// Applies to the first `n` matching requests only; later ones fall through.
    pub fn times(mut self, n: u64) -> Self {
        self.schedule = Schedule::Times(n);
        self
    }

    /// Applies to every `k`-th matching request (the `k`-th, `2k`-th, ...).
    pub fn every(mut self, k: u64) -> Self {
        self.schedule = Schedule::Every(k.max(1));
        self
    }

    /// Applies to each matching request with probability `p`, drawn from a generator
    /// seeded with `seed` (the same seed gives the same sequence).
    pub fn probability(mut self, p: f64, seed: u64) -> Self {
        self.schedule = Schedule::Probability {
            p: p.clamp(0.0, 1.0),
            seed,
        };
        self
    }

    /// Names the mock (shown in expectation failures and the journal).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

impl MockBuilder {
    /// Adds a matcher (all must match).
    pub fn and(mut self, matcher: impl Match) -> Self {
        self.matchers.push(Box::new(matcher));
        self
    }

    /// Finishes the mock with its responder: a [`Reply`], a [`Fault`] or a closure.
    pub fn respond_with(self, responder: impl Respond) -> Mock {
        Mock {
            matchers: self.matchers,
            responder: Box::new(responder),
            expect: None,
            schedule: Schedule::Always,
            name: None,
        }
    }
}

/// A mounted mock with its counters.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) id: u64,
    pub(crate) mock: Mock,
    pub(crate) state: Mutex<RuleState>,
}

#[derive(Debug, Default)]
pub(crate) struct RuleState {
    /// Requests that matched.
    pub(crate) matched: u64,
    /// Requests the rule applied to.
    pub(crate) applied: u64,
    rng: u64,
}

impl Rule {
    pub(crate) fn new(id: u64, mock: Mock) -> Self {
        let rng = match mock.schedule {
            Schedule::Probability { seed, .. } => seed,
            _ => 0,
        };
        Rule {
            id,
            mock,
            state: Mutex::new(RuleState {
                rng,
                ..RuleState::default()
            }),
        }
    }

    /// Whether the matchers match: `None` while the body may still change the answer.
    pub(crate) fn evaluate(&self, req: &Request) -> Option<bool> {
        let mut undecided = false;
        for m in &self.mock.matchers {
            let r = if req.body_complete {
                Some(m.matches(req))
            } else {
                m.matches_partial(req)
            };
            match r {
                Some(false) => return Some(false),
                None => undecided = true,
                Some(true) => {}
            }
        }
        if undecided { None } else { Some(true) }
    }

    /// Counts a match and tells whether the schedule lets the rule apply this time.
    pub(crate) fn fire(&self) -> bool {
        let mut st = self
            .state
            .lock()
            .expect("rule state lock is never poisoned");
        st.matched += 1;
        let n = st.matched;
        let apply = match self.mock.schedule {
            Schedule::Always => true,
            Schedule::Times(k) => n <= k,
            Schedule::Every(k) => n.is_multiple_of(k),
            Schedule::Probability { p, .. } => {
                // 53 random bits as a fraction in [0, 1): exact in an f64.
                let x = splitmix64(&mut st.rng) >> 11;
                #[allow(clippy::cast_precision_loss)] // both values fit 53 bits
                let u = x as f64 / (1u64 << 53) as f64;
                u < p
            }
        };
        if apply {
            st.applied += 1;
        }
        apply
    }

    pub(crate) fn describe(&self) -> String {
        match &self.mock.name {
            Some(n) => format!("mock '{n}' (#{})", self.id),
            None => format!("mock #{}", self.id),
        }
    }
}

/// Which rule applies, per transaction.
#[derive(Debug)]
pub(crate) struct Selector {
    rules: Arc<Vec<Arc<Rule>>>,
    known: Vec<Option<bool>>,
}

/// The outcome of [`Selector::select`].
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// Not yet known: a rule of higher precedence waits for the body.
    Undecided,
    /// No rule applies.
    None,
    /// This rule applies.
    Rule(Arc<Rule>),
}

impl Selector {
    /// `rules` in precedence order (most recently mounted first).
    pub(crate) fn new(rules: Arc<Vec<Arc<Rule>>>) -> Self {
        let n = rules.len();
        Selector {
            rules,
            known: vec![None; n],
        }
    }

    pub(crate) fn select(&mut self, req: &Request) -> Selection {
        for (i, rule) in self.rules.iter().enumerate() {
            match self.known[i] {
                Some(false) => continue,
                Some(true) => return Selection::Rule(rule.clone()),
                None => {}
            }
            match rule.evaluate(req) {
                None => return Selection::Undecided,
                Some(false) => self.known[i] = Some(false),
                Some(true) => {
                    let applies = rule.fire();
                    self.known[i] = Some(applies);
                    if applies {
                        return Selection::Rule(rule.clone());
                    }
                }
            }
        }
        Selection::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_display_and_contains() {
        let t: Times = 2.into();
        assert!(t.contains(2) && !t.contains(1));
        assert_eq!(t.to_string(), "exactly 2");
        let r: Times = (1..).into();
        assert!(r.contains(5) && !r.contains(0));
        assert_eq!(r.to_string(), "at least 1");
    }

    #[test]
    fn schedules() {
        let mk = |s| {
            let mut m = Mock::given(crate::matchers::any()).respond_with(Reply::clean());
            m.schedule = s;
            Rule::new(1, m)
        };
        let r = mk(Schedule::Times(2));
        let got: Vec<bool> = (0..4).map(|_| r.fire()).collect();
        assert_eq!(got, [true, true, false, false]);
        let r = mk(Schedule::Every(3));
        let got: Vec<bool> = (0..6).map(|_| r.fire()).collect();
        assert_eq!(got, [false, false, true, false, false, true]);
        let a = mk(Schedule::Probability { p: 0.5, seed: 7 });
        let b = mk(Schedule::Probability { p: 0.5, seed: 7 });
        let sa: Vec<bool> = (0..64).map(|_| a.fire()).collect();
        let sb: Vec<bool> = (0..64).map(|_| b.fire()).collect();
        assert_eq!(sa, sb);
        let hits = sa.iter().filter(|x| **x).count();
        assert!((16..=48).contains(&hits), "{hits}");
        let never = mk(Schedule::Probability { p: 0.0, seed: 1 });
        assert!((0..100).all(|_| !never.fire()));
    }
}
