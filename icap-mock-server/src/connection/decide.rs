//! The decision what to answer, as free functions over the settings and the
//! transaction: mounted rules first, then the per-request triggers (body markers, URL and
//! file-name markers, file-name suffixes), then the scan.

use std::sync::LazyLock;
use std::time::Duration;

use super::plan::{Decision, Plan};
use super::tx::Tx;
use crate::mock::Selection;
use crate::reply::{FaultKind, Reaction, Reply, ReplyKind};
use crate::request::percent_decode;
use crate::state::{FAULT_MARKER, Settings, VERDICT_MARKER};

/// Parses a trigger token: `name[:arg]` for faults.
pub(super) fn fault_trigger(token: &str, settings_delay: Duration) -> Option<Plan> {
    let (name, arg) = token.split_once(':').unwrap_or((token, ""));
    let num = arg.parse::<u64>().ok();
    let kind = match name {
        "slow" => FaultKind::Delay(num.map_or(settings_delay, Duration::from_millis)),
        _ => FaultKind::parse(name, num, num.and_then(|n| u16::try_from(n).ok()))?,
    };
    Some(Plan::fault(kind))
}

/// Parses a reply trigger: `clean`, `infected[:Name]`, `error[:code[:status]]`,
/// `status:NNN`.
pub(super) fn verdict_trigger(token: &str) -> Option<Plan> {
    let mut parts = token.splitn(2, ':');
    let kind = parts.next()?;
    let rest = parts.next().filter(|s| !s.is_empty());
    let reply = match kind {
        "clean" => Reply::clean(),
        "infected" => Reply::infected(rest.unwrap_or("Mock.Trigger")),
        "error" => {
            let (code, status) = match rest {
                Some(r) => match r.split_once(':') {
                    Some((c, s)) => (c, s.parse().unwrap_or(500)),
                    None => (r, 500),
                },
                None => ("internal_error", 500),
            };
            Reply::error(status, code)
        }
        "status" => Reply::status(rest?.parse().ok()?),
        _ => return None,
    };
    Some(Plan::reply(reply))
}

/// File-name suffix triggers.
pub(super) fn filename_trigger(name: &str, delay: Duration) -> Option<Plan> {
    // The suffix in lower case, in a buffer on the stack: the longest suffix is 11 bytes.
    let ext = name.rsplit_once('.')?.1.as_bytes();
    let mut lower = [0u8; 11];
    let lower = lower.get_mut(..ext.len())?;
    lower.copy_from_slice(ext);
    lower.make_ascii_lowercase();
    let (fault, reply) = match &*lower {
        b"timeout" => (Some(FaultKind::NeverAnswer), Reply::scan()),
        b"slow" => (Some(FaultKind::Delay(delay)), Reply::scan()),
        b"reset" => (Some(FaultKind::Reset), Reply::scan()),
        b"garbage" => (Some(FaultKind::Garbage), Reply::scan()),
        b"infected" => (None, Reply::infected("Mock.Trigger.FileName")),
        b"encrypted" => (None, Reply::error(500, "password_protected")),
        b"unavailable" => (None, Reply::status(503)),
        _ => return None,
    };
    Some(Plan {
        fault,
        reply,
        rule: None,
    })
}

/// Decides how to answer, if it can be known yet: the plan already made, else the first
/// mounted rule that applies, else (triggers on) a per-request trigger, else the scan. A
/// plan, once made, stays for the rest of the transaction.
pub(super) fn decide(settings: &Settings, tx: &mut Tx) -> Decision {
    if let Some(p) = &tx.plan {
        return Decision::Answer(p.clone());
    }
    tx.refresh();
    let plan = match tx.selector.select(&tx.req) {
        Selection::Undecided => return Decision::WaitForRules,
        Selection::Rule(rule) => {
            let (fault, reply) = match rule.mock.responder.respond(&tx.req) {
                Reaction::Reply(v) => (None, v),
                Reaction::Fault(f) => (Some(f.kind), f.then),
            };
            Plan {
                fault,
                reply,
                rule: Some(rule.id),
            }
        }
        Selection::None if settings.triggers => match trigger(settings.trigger_delay, tx) {
            Decision::Answer(p) => p,
            waiting => return waiting,
        },
        Selection::None => Plan::scan(),
    };
    tx.plan = Some(plan.clone());
    Decision::Answer(plan)
}

/// Which trigger applies, if it can be known yet: a marker in the body, then one in the
/// URL or file name, then a file-name suffix. A marker with an unknown token counts as
/// none ([`Plan::scan`]); without any, the body may still bring one until it is complete.
pub(super) fn trigger(delay: Duration, tx: &Tx) -> Decision {
    let found = |p: Option<Plan>| Decision::Answer(p.unwrap_or_else(Plan::scan));
    let scanner = &tx.scanner;
    if let Some(f) = scanner.found(tx.snap.fault_marker) {
        return found(fault_trigger(&String::from_utf8_lossy(&f.captured), delay));
    }
    if let Some(f) = scanner.found(tx.snap.verdict_marker) {
        return found(verdict_trigger(&String::from_utf8_lossy(&f.captured)));
    }
    // The URL is only put together and decoded when a marker may be in it.
    let url = may_hold_marker(tx)
        .then(|| tx.req.url().map(|u| percent_decode(&u)))
        .flatten();
    let filename = tx.filename.as_deref();
    for text in url.as_deref().into_iter().chain(filename) {
        if MARKER_START.find(text.as_bytes()).is_none() {
            continue;
        }
        for (marker, fault) in [(FAULT_MARKER, true), (VERDICT_MARKER, false)] {
            let marker = std::str::from_utf8(marker).expect("markers are ASCII");
            if let Some(i) = text.find(marker) {
                let token: String = text[i + marker.len()..]
                    .chars()
                    .take_while(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '=' | '-')
                    })
                    .collect();
                return found(if fault {
                    fault_trigger(&token, delay)
                } else {
                    verdict_trigger(&token)
                });
            }
        }
    }
    if let Some(p) = filename.and_then(|n| filename_trigger(n, delay)) {
        return Decision::Answer(p);
    }
    if tx.req.body_complete {
        Decision::Answer(Plan::scan())
    } else {
        Decision::WaitForMarker
    }
}

/// What both markers start with, searched first: most requests hold neither.
static MARKER_START: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"ICAP-MOCK-"));

/// Whether the embedded URL (its request target and `Host`) may hold a marker once
/// percent-decoded: it holds the markers' start as sent, or an escape that may spell it.
fn may_hold_marker(tx: &Tx) -> bool {
    let Some(req) = tx.req.http_request.as_ref() else {
        return false;
    };
    let host = req.headers.get("Host");
    [Some(req.target()), host.as_ref().map(|h| h.as_bytes())]
        .into_iter()
        .flatten()
        .any(|b| MARKER_START.find(b).is_some() || memchr::memchr(b'%', b).is_some())
}

/// At the end of a preview (no `ieof`), with `decision` just made: whether to answer now
/// rather than send `100 Continue` (a rule's reply other than the scan, or a threat the
/// scan already found). The faults that act at this point are the caller's.
pub(super) fn answers_at_preview_end(decision: &Decision, tx: &Tx) -> bool {
    match decision {
        Decision::Answer(p) => {
            !matches!(p.reply.kind, ReplyKind::Scan) || tx.scan_threat(tx.dialect(p)).is_some()
        }
        Decision::WaitForMarker => tx.scan_threat(tx.svc.dialect).is_some(),
        Decision::WaitForRules => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::plan::{Decision, Plan};
    use super::super::testing::{feed, respmod, state, tx};
    use super::{answers_at_preview_end, decide, fault_trigger, filename_trigger, verdict_trigger};
    use crate::matchers::{body_contains, filename};
    use crate::mock::Mock;
    use crate::reply::{Fault, FaultKind, Reply};

    #[test]
    fn without_rules_a_file_name_suffix_decides_and_triggers_off_mean_the_scan() {
        let st = state(true, Vec::new());
        let mut t = tx(&st, respmod("/x/report.infected", None, true));
        assert_eq!(
            decide(&st.settings, &mut t),
            Decision::Answer(Plan::reply(Reply::infected("Mock.Trigger.FileName")))
        );
        let off = state(false, Vec::new());
        let mut t = tx(&off, respmod("/x/report.infected", None, true));
        assert_eq!(
            decide(&off.settings, &mut t),
            Decision::Answer(Plan::scan())
        );
    }

    #[test]
    fn a_body_marker_decides_once_seen_and_nothing_waits_past_the_end() {
        let st = state(true, Vec::new());
        let mut t = tx(&st, respmod("/plain.txt", None, true));
        assert_eq!(decide(&st.settings, &mut t), Decision::WaitForMarker);
        feed(&mut t, b"some text ICAP-MOCK-FAULT:reset\r\nmore", false);
        assert_eq!(
            decide(&st.settings, &mut t),
            Decision::Answer(Plan::fault(FaultKind::Reset))
        );
        // No marker at all: the scan, once the body is complete.
        let mut t = tx(&st, respmod("/plain.txt", None, true));
        feed(&mut t, b"nothing to see", true);
        assert_eq!(decide(&st.settings, &mut t), Decision::Answer(Plan::scan()));
    }

    #[test]
    fn a_marker_in_the_url_decides_and_an_unknown_token_means_the_scan() {
        let st = state(true, Vec::new());
        let mut t = tx(&st, respmod("/f?ICAP-MOCK-VERDICT:status:503", None, true));
        assert_eq!(
            decide(&st.settings, &mut t),
            Decision::Answer(Plan::reply(Reply::status(503)))
        );
        let mut t = tx(&st, respmod("/f?ICAP-MOCK-FAULT:no_such_fault", None, true));
        assert_eq!(decide(&st.settings, &mut t), Decision::Answer(Plan::scan()));
        // A marker spelled with escapes counts once decoded ("%49" is "I", "%2D" is "-").
        let mut t = tx(
            &st,
            respmod("/f?%49CAP%2DMOCK-VERDICT:status:507", None, true),
        );
        assert_eq!(
            decide(&st.settings, &mut t),
            Decision::Answer(Plan::reply(Reply::status(507)))
        );
    }

    #[test]
    fn a_mounted_rule_beats_the_triggers_and_its_plan_sticks() {
        let st = state(
            true,
            vec![Mock::given(filename("*.infected")).respond_with(Reply::clean())],
        );
        let mut t = tx(&st, respmod("/x/report.infected", None, true));
        let d = decide(&st.settings, &mut t);
        assert!(d.is_rule(), "{d:?}");
        assert_eq!(d.clone().or_scan().reply, Reply::clean());
        // A marker arriving later changes nothing: the plan is made.
        feed(&mut t, b"ICAP-MOCK-FAULT:reset\r\n", true);
        assert_eq!(decide(&st.settings, &mut t), d);
    }

    #[test]
    fn a_body_rule_waits_for_the_body_then_decides() {
        let rule = Mock::given(body_contains("SECRET")).respond_with(Fault {
            kind: FaultKind::Garbage,
            then: Reply::scan(),
        });
        let st = state(true, vec![rule]);
        let mut t = tx(&st, respmod("/doc.txt", None, true));
        assert_eq!(decide(&st.settings, &mut t), Decision::WaitForRules);
        feed(&mut t, b"the SECRET plan", false);
        let d = decide(&st.settings, &mut t);
        assert!(d.is_rule());
        assert_eq!(d.or_scan().fault, Some(FaultKind::Garbage));
    }

    #[test]
    fn at_the_end_of_a_preview_only_a_known_non_scan_reply_or_a_threat_answers() {
        let st = state(true, Vec::new());
        let t = tx(&st, respmod("/plain.txt", Some(4), true));
        assert!(!answers_at_preview_end(&Decision::WaitForRules, &t));
        assert!(!answers_at_preview_end(&Decision::WaitForMarker, &t));
        assert!(!answers_at_preview_end(&Decision::Answer(Plan::scan()), &t));
        let clean = Decision::Answer(Plan::reply(Reply::clean()));
        assert!(answers_at_preview_end(&clean, &t));
        let mut t = tx(&st, respmod("/plain.txt", Some(68), true));
        feed(&mut t, crate::EICAR, false);
        assert!(answers_at_preview_end(&Decision::WaitForMarker, &t));
        assert!(answers_at_preview_end(&Decision::Answer(Plan::scan()), &t));
    }

    #[test]
    fn trigger_tokens_parse_as_documented() {
        let d = Duration::from_secs(5);
        let rows: [(Option<Plan>, Option<Plan>); 8] = [
            (
                fault_trigger("reset", d),
                Some(Plan::fault(FaultKind::Reset)),
            ),
            (
                fault_trigger("slow", d),
                Some(Plan::fault(FaultKind::Delay(d))),
            ),
            (
                fault_trigger("slow:250", d),
                Some(Plan::fault(FaultKind::Delay(Duration::from_millis(250)))),
            ),
            (fault_trigger("sideways", d), None),
            (
                verdict_trigger("error:quota:507"),
                Some(Plan::reply(Reply::error(507, "quota"))),
            ),
            (
                verdict_trigger("infected"),
                Some(Plan::reply(Reply::infected("Mock.Trigger"))),
            ),
            // A status that is not a number is no trigger.
            (verdict_trigger("status:abc"), None),
            (
                filename_trigger("A.TIMEOUT", d),
                Some(Plan::fault(FaultKind::NeverAnswer)),
            ),
        ];
        for (i, (got, want)) in rows.into_iter().enumerate() {
            assert_eq!(got, want, "row {i}");
        }
        assert_eq!(filename_trigger("noext", d), None);
        assert_eq!(filename_trigger("a.pdf", d), None);
        // The longest suffix, in any case; longer ones and non-ASCII ones are none.
        assert_eq!(
            filename_trigger("x.UnAvailable", d),
            Some(Plan::reply(Reply::status(503)))
        );
        assert_eq!(filename_trigger("x.unavailablee", d), None);
        assert_eq!(filename_trigger("x.slöw", d), None);
    }
}
