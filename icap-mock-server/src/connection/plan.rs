//! What the connection decided to answer: a [`Plan`] once known, a [`Decision`] while
//! the rules or the triggers may still wait for more of the body.

use crate::reply::{FaultKind, Reply};

/// How a transaction will be answered: the reply, the fault that gets in its way (if
/// any), and the rule that chose them (none for the scan and for triggers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) fault: Option<FaultKind>,
    pub(super) reply: Reply,
    pub(super) rule: Option<u64>,
}

impl Plan {
    /// No rule, no trigger: answer with what the scan finds.
    pub(super) fn scan() -> Self {
        Plan::reply(Reply::scan())
    }

    /// This reply, no fault, no rule.
    pub(super) fn reply(reply: Reply) -> Self {
        Plan {
            fault: None,
            reply,
            rule: None,
        }
    }

    /// This fault before the scan's answer, no rule.
    pub(super) fn fault(kind: FaultKind) -> Self {
        Plan {
            fault: Some(kind),
            reply: Reply::scan(),
            rule: None,
        }
    }

    /// Whether the fault, if any, only changes the timing (the answer itself is legal).
    pub(super) fn only_timing(&self) -> bool {
        matches!(
            self.fault,
            None | Some(FaultKind::Delay(_) | FaultKind::SlowBody(_) | FaultKind::DelayContinue(_))
        )
    }
}

/// Whether the answer is known yet, and if not, what it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// Known: answer so.
    Answer(Plan),
    /// A rule of higher precedence waits for more of the body.
    WaitForRules,
    /// No rule applies, but a trigger marker may still come in the body.
    WaitForMarker,
}

impl Decision {
    /// The plan if known, else the scan's (at the end of the body nothing waits any more).
    pub(super) fn or_scan(self) -> Plan {
        match self {
            Decision::Answer(p) => p,
            Decision::WaitForRules | Decision::WaitForMarker => Plan::scan(),
        }
    }

    /// Whether a mounted rule chose the plan.
    pub(super) fn is_rule(&self) -> bool {
        matches!(self, Decision::Answer(p) if p.rule.is_some())
    }
}
