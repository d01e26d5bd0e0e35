//! Rules in the style of wiremock: `Mock::given(matcher).respond_with(responder)`.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use crate::matchers::Match;
use crate::reply::Respond;
use crate::request::Request;
use crate::rng::splitmix64;

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

/// The priority of a mock that names none ([`Mock::with_priority`]): 5, as in wiremock.
pub const DEFAULT_PRIORITY: u8 = 5;

/// A rule: matchers, a responder, a schedule, a priority and an expectation.
///
/// When several mounted mocks match a request, the one with the lowest priority number
/// applies; among equal priorities, the one mounted first (as in wiremock). A mock whose
/// schedule lets this request pass ([`Mock::times`], [`Mock::every`],
/// [`Mock::probability`]) leaves it to the next one.
pub struct Mock {
    pub(crate) matchers: Vec<Box<dyn Match>>,
    pub(crate) responder: Box<dyn Respond>,
    pub(crate) expect: Option<Times>,
    pub(crate) schedule: Schedule,
    pub(crate) name: Option<String>,
    pub(crate) priority: u8,
    /// What the rule was written as (`when`, `then`, schedule), for rules from the config
    /// file or the admin API; `None` for rules built in Rust (closures have no text).
    pub(crate) description: Option<serde_json::Value>,
}

impl fmt::Debug for Mock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mock")
            .field("name", &self.name)
            .field("matchers", &self.matchers.len())
            .field("expect", &self.expect)
            .field("schedule", &self.schedule)
            .field("priority", &self.priority)
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

    /// Applies to the first `n` matching requests only; later ones fall through. For a
    /// fault that breaks the connection before any answer, mind icap-client's retry of a
    /// stale connection: `.times(1)` is absorbed by it, `.times(2)` makes the scan fail.
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

    /// Sets the mock's priority: among the mocks that match a request, the lowest number
    /// applies (1 before 5), then the one mounted first. The default is
    /// [`DEFAULT_PRIORITY`] (5); 0 is the highest of all.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
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

    /// Finishes the mock with its responder: a [`Reply`](crate::Reply), a [`Fault`](crate::Fault) or a closure.
    pub fn respond_with(self, responder: impl Respond) -> Mock {
        // Built in Rust: described when every matcher and the responder can say what they
        // are (the config file's and the admin API's rules replace this with their text).
        let when: Option<Vec<_>> = self.matchers.iter().map(|m| m.describe()).collect();
        let description = when.map(|w| {
            serde_json::json!({
                "source": "code",
                "when": w.into_iter().filter(|d| d != &serde_json::json!({})).collect::<Vec<_>>(),
                "then": responder.describe(),
            })
        });
        Mock {
            description,
            matchers: self.matchers,
            responder: Box::new(responder),
            expect: None,
            schedule: Schedule::Always,
            name: None,
            priority: DEFAULT_PRIORITY,
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
    /// `rules` in precedence order (priority, then mount order).
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
    use crate::reply::Reply;

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
