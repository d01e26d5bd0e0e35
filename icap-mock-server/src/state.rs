//! The mock's state, shared by the listener, the connections, the admin API and the
//! handle: the settings, the rules snapshot, the journal and the per-service admission.
//!
//! The bottom floor of the server (mini-redis's `db.rs`): it imports nothing that serves
//! connections, so every module above can hold an `Arc<State>` without a circle. The
//! listener and its outage switch live in `listener.rs`, shutdown in `shutdown.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use icap_proto::Limits;

use crate::journal::{DEFAULT_JOURNAL_BYTES, DEFAULT_JOURNAL_LIMIT, Journal, Transaction};
use crate::mock::{Mock, Rule};
use crate::proxy::upstream::Upstream;
use crate::record::RecordSettings;
use crate::replay::Replay;
use crate::scan::{EICAR, PatternSet};
use crate::service::{ServiceConfig, Signature};

/// Default whole-head deadline ([`MockServerBuilder::header_read_timeout`](crate::MockServerBuilder::header_read_timeout)).
pub const DEFAULT_HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// Body markers that select a reply or fault per request (see the README's triggers).
pub(crate) const FAULT_MARKER: &[u8] = b"ICAP-MOCK-FAULT:";
/// See [`FAULT_MARKER`].
pub(crate) const VERDICT_MARKER: &[u8] = b"ICAP-MOCK-VERDICT:";

/// How many requests of one group an unmet-expectations message lists.
pub(crate) const LISTED_PER_GROUP: usize = 20;

/// Settings shared by all connections.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Shared, not copied, by each transaction.
    pub(crate) services: Vec<Arc<ServiceConfig>>,
    pub(crate) limits: Limits,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_capture: usize,
    pub(crate) triggers: bool,
    pub(crate) journal_limit: usize,
    pub(crate) journal_bytes: usize,
    pub(crate) trigger_delay: Duration,
    pub(crate) body_digest: bool,
    /// The upstream of services that name none (proxy mode).
    pub(crate) upstream: Option<Upstream>,
    /// Where proxied exchanges are recorded.
    pub(crate) record: Option<RecordSettings>,
    /// The recording answers are replayed from.
    pub(crate) replay: Option<Arc<Replay>>,
}

impl Default for Settings {
    /// The builder's defaults ([`MockServerBuilder`](crate::MockServerBuilder)'s docs).
    fn default() -> Self {
        Settings {
            services: Vec::new(),
            limits: Limits::default(),
            header_read_timeout: DEFAULT_HEAD_DEADLINE,
            idle_timeout: Duration::from_secs(120),
            body_capture: 64 * 1024,
            triggers: true,
            journal_limit: DEFAULT_JOURNAL_LIMIT,
            journal_bytes: DEFAULT_JOURNAL_BYTES,
            trigger_delay: Duration::from_secs(5),
            body_digest: true,
            upstream: None,
            record: None,
            replay: None,
        }
    }
}

/// Rules and the patterns they need, replaced as a whole when a rule is added or removed.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// Rules in precedence order: lowest priority number first, then the first mounted.
    pub(crate) rules: Arc<Vec<Arc<Rule>>>,
    pub(crate) patterns: PatternSet,
    /// The plain patterns in `patterns` order (for `Request::found`).
    pub(crate) plain: Vec<Vec<u8>>,
    pub(crate) eicar: usize,
    pub(crate) fault_marker: usize,
    pub(crate) verdict_marker: usize,
    pub(crate) generation: u64,
    /// The `ISTag` value for this generation (without quotes), made once per change of
    /// the rules rather than once per answer.
    pub(crate) istag: Arc<str>,
}

impl Compiled {
    pub(crate) fn build(
        settings: &Settings,
        rules: Vec<Arc<Rule>>,
        generation: u64,
        istag_base: u64,
    ) -> Self {
        let mut plain: Vec<Vec<u8>> = vec![EICAR.to_vec()];
        let mut add = |p: Vec<u8>| {
            if !p.is_empty() && !plain.contains(&p) {
                plain.push(p);
            }
        };
        for svc in &settings.services {
            for s in &svc.signatures {
                if let Signature::Bytes { pattern, .. } = s {
                    add(pattern.as_bytes().to_vec());
                }
            }
        }
        for r in &rules {
            for m in &r.mock.matchers {
                for p in m.body_patterns() {
                    add(p);
                }
            }
        }
        let capture = [FAULT_MARKER.to_vec(), VERDICT_MARKER.to_vec()];
        let patterns = PatternSet::new(&plain, &capture);
        Compiled {
            eicar: patterns
                .index_of(EICAR)
                .expect("EICAR is always in the set"),
            fault_marker: patterns
                .capture_index_of(FAULT_MARKER)
                .expect("marker is always in the set"),
            verdict_marker: patterns
                .capture_index_of(VERDICT_MARKER)
                .expect("marker is always in the set"),
            rules: Arc::new(rules),
            patterns,
            plain,
            generation,
            istag: format!("mock-{istag_base:x}-{generation}").into(),
        }
    }
}

/// State shared by the listener, the connections, the admin API and the handle.
pub(crate) struct State {
    pub(crate) settings: Settings,
    compiled: Mutex<Arc<Compiled>>,
    next_rule: AtomicU64,
    // A ring: the oldest entries go in O(1) once a budget is reached.
    journal: Mutex<Journal>,
    per_service: Mutex<HashMap<String, u32>>,
    istag_base: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("services", &self.settings.services.len())
            .field("istag_base", &self.istag_base)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (plain pushes and
    // swaps), so a poisoned lock is used as is.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// Fresh state: no rules, an empty journal, every service at zero connections.
    /// `istag_base` makes the `ISTag` differ between runs.
    pub(crate) fn new(settings: Settings, istag_base: u64) -> Self {
        let journal = Journal::new(settings.journal_limit, settings.journal_bytes);
        State {
            compiled: Mutex::new(Arc::new(Compiled::build(
                &settings,
                Vec::new(),
                0,
                istag_base,
            ))),
            settings,
            next_rule: AtomicU64::new(1),
            journal: Mutex::new(journal),
            per_service: Mutex::new(HashMap::new()),
            istag_base,
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Compiled> {
        lock(&self.compiled).clone()
    }

    pub(crate) fn service(&self, name: &str) -> Option<&Arc<ServiceConfig>> {
        self.settings.services.iter().find(|s| s.name == name)
    }

    /// The `ISTag` value (without quotes); it changes whenever the rules change.
    pub(crate) fn istag(&self) -> Arc<str> {
        Arc::clone(&lock(&self.compiled).istag)
    }

    pub(crate) fn add_rule(&self, mock: Mock) -> u64 {
        let id = self.next_rule.fetch_add(1, Ordering::Relaxed);
        let rule = Arc::new(Rule::new(id, mock));
        let mut c = lock(&self.compiled);
        let mut rules: Vec<Arc<Rule>> = c.rules.iter().cloned().collect();
        rules.push(rule);
        // Stable, and ids grow with mount order: priority first, then the first mounted.
        rules.sort_by_key(|r| (r.mock.priority, r.id));
        *c = Arc::new(Compiled::build(
            &self.settings,
            rules,
            c.generation.wrapping_add(1),
            self.istag_base,
        ));
        id
    }

    /// Removes the rules `keep` rejects; returns how many went.
    pub(crate) fn remove_rules(&self, keep: impl Fn(&Rule) -> bool) -> usize {
        let mut c = lock(&self.compiled);
        let before = c.rules.len();
        let rules: Vec<Arc<Rule>> = c.rules.iter().filter(|r| keep(r)).cloned().collect();
        let removed = before - rules.len();
        if removed > 0 {
            *c = Arc::new(Compiled::build(
                &self.settings,
                rules,
                c.generation.wrapping_add(1),
                self.istag_base,
            ));
        }
        removed
    }

    /// Records a request that just arrived: gives it its id (in journal order) and puts it
    /// in the journal, to be updated by [`State::record`] as the exchange proceeds.
    pub(crate) fn open_entry(&self, tx: Transaction) -> u64 {
        lock(&self.journal).open(tx)
    }

    /// The id of a transaction that is not recorded (the journal is off).
    pub(crate) fn skip_entry(&self) -> u64 {
        lock(&self.journal).skip()
    }

    /// Whether the journal keeps entries (`journal_limit` above 0). Fixed at start.
    pub(crate) fn journal_on(&self) -> bool {
        self.settings.journal_limit > 0
    }

    /// Updates the journal entry of `tx` (gone already if the budgets pushed it out).
    pub(crate) fn record(&self, tx: &Transaction) {
        if self.journal_on() {
            lock(&self.journal).update(tx);
        }
    }

    pub(crate) fn journal(&self) -> Vec<Transaction> {
        lock(&self.journal).to_vec()
    }

    pub(crate) fn journal_bytes(&self) -> usize {
        lock(&self.journal).bytes()
    }

    pub(crate) fn clear_journal(&self) {
        lock(&self.journal).clear();
    }

    /// Counts a connection against its service's `Max-Connections`; false when full.
    pub(crate) fn attach(&self, svc: &ServiceConfig) -> bool {
        let mut m = lock(&self.per_service);
        let n = m.entry(svc.name.clone()).or_insert(0);
        if svc.max_connections.is_some_and(|max| *n >= max) {
            return false;
        }
        *n += 1;
        true
    }

    pub(crate) fn detach(&self, service: &str) {
        if let Some(n) = lock(&self.per_service).get_mut(service) {
            *n = n.saturating_sub(1);
        }
    }

    /// Unmet expectations, one line each (for the admin API's `/verify`).
    #[cfg(feature = "admin")]
    pub(crate) fn unmet_expectations(&self) -> Vec<String> {
        self.unmet_of(None)
    }

    /// Unmet expectations of rule `only` (of every rule for `None`), one line each, in
    /// mount order.
    fn unmet_of(&self, only: Option<u64>) -> Vec<String> {
        let c = self.snapshot();
        let mut rules: Vec<&Arc<Rule>> = c
            .rules
            .iter()
            .filter(|r| only.is_none_or(|id| r.id == id))
            .collect();
        rules.sort_by_key(|r| r.id);
        let mut out = Vec::new();
        for r in rules {
            if let Some(want) = r.mock.expect {
                let st = lock(&r.state);
                if !want.contains(st.applied) {
                    out.push(format!(
                        "{} expected {want} request(s), got {} (matched {})",
                        r.describe(),
                        st.applied,
                        st.matched
                    ));
                }
            }
        }
        out
    }

    /// The failure message for the unmet expectations of rule `only` (every rule for
    /// `None`), or `None` when all are met: the unmet ones, then the requests the journal
    /// holds, grouped by the mock that answered them or "unmatched" (as wiremock lists
    /// them), at most [`LISTED_PER_GROUP`] per group.
    pub(crate) fn unmet_report(&self, only: Option<u64>) -> Option<String> {
        use std::fmt::Write as _;
        let unmet = self.unmet_of(only);
        if unmet.is_empty() {
            return None;
        }
        let mut msg = String::from("icap-mock-server: unmet expectations:\n");
        for u in &unmet {
            let _ = writeln!(msg, "  {u}");
        }
        if !self.journal_on() {
            msg.push_str("(the journal is off: journal_limit is 0)");
            return Some(msg);
        }
        let journal = self.journal();
        if journal.is_empty() {
            msg.push_str("no requests were received");
            return Some(msg);
        }
        let c = self.snapshot();
        let name = |id: u64| {
            c.rules
                .iter()
                .find(|r| r.id == id)
                .map_or_else(|| format!("mock #{id} (unmounted)"), |r| r.describe())
        };
        // Groups in mount order, "unmatched" last.
        let mut groups: Vec<(Option<u64>, Vec<&Transaction>)> = Vec::new();
        for t in &journal {
            match groups.iter_mut().find(|(k, _)| *k == t.rule) {
                Some((_, v)) => v.push(t),
                None => groups.push((t.rule, vec![t])),
            }
        }
        groups.sort_by_key(|(k, _)| k.map_or((1, 0), |id| (0, id)));
        let _ = writeln!(msg, "received requests ({}):", journal.len());
        for (key, entries) in &groups {
            let title = key.map_or_else(|| "unmatched".to_owned(), name);
            let _ = writeln!(msg, "  {title}:");
            for t in entries.iter().take(LISTED_PER_GROUP) {
                let _ = writeln!(msg, "    {}", t.summary());
            }
            if entries.len() > LISTED_PER_GROUP {
                let _ = writeln!(msg, "    ... and {} more", entries.len() - LISTED_PER_GROUP);
            }
        }
        Some(msg.trim_end().to_owned())
    }

    /// Removes rule `id`; whether it was there.
    pub(crate) fn remove_rule(&self, id: u64) -> bool {
        self.remove_rules(|r| r.id != id) > 0
    }
}
