//! `[[rule]]` (and `POST /rules`, `POST /faults`): the mocks a file describes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::matchers::{self, Match};
use crate::mock::{Mock, MockBuilder};
use crate::replay::Replay;
use crate::reply::{Fault, FaultKind, Reply};
use crate::service::Dialect;

use super::error::{ConfigError, parse_method};

/// The fault names a rule's `then.fault` and `POST /faults` take (aliases aside: `slow`,
/// `timeout`, `close`, `truncated`), in the README's order.
pub const FAULT_NAMES: &[&str] = &[
    "delay",
    "delay_continue",
    "slow_body",
    "never_answer",
    "close_immediately",
    "reset",
    "close_after_preview",
    "reset_mid_body",
    "close_mid_body",
    "close_mid_response",
    "truncated_response",
    "bad_chunk_size",
    "missing_terminal_chunk",
    "wrong_encapsulated",
    "unknown_status",
    "garbage",
    "early_response",
];

/// The verdicts a rule's `then.verdict` takes.
pub const VERDICT_NAMES: &[&str] = &["scan", "clean", "infected", "error", "status"];

/// A header condition: `{ name = "X-Client-IP", value = "10.0.0.1" }` (no `value`: present).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// The header's name, matched case-insensitively.
    pub name: String,
    /// Exact value; absent means "present with any value".
    pub value: Option<String>,
}

/// `when`: every given condition must hold (none given: every request).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    /// `RESPMOD`, `REQMOD` or `OPTIONS`.
    pub method: Option<String>,
    /// The service path the request names (`avscan` in `icap://host/avscan`).
    pub service: Option<String>,
    /// An ICAP header.
    pub icap_header: Option<HeaderSpec>,
    /// A header of the embedded HTTP request or response.
    pub http_header: Option<HeaderSpec>,
    /// A substring of the embedded URL's path.
    pub url_path_contains: Option<String>,
    /// A file-name glob.
    pub filename: Option<String>,
    /// A byte string (UTF-8) the body contains.
    pub body_contains: Option<String>,
    /// Smallest body size.
    pub body_size_min: Option<u64>,
    /// Largest body size.
    pub body_size_max: Option<u64>,
}

/// `then`: a verdict, a fault, or a fault followed by a verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThenSpec {
    /// `scan` (default), `clean`, `infected`, `error` or `status`.
    pub verdict: Option<String>,
    /// Threat name for `infected` (default `Mock.Rule`).
    pub threat: Option<String>,
    /// Status for `error` (default 500) and `status`, or the code of `unknown_status`.
    pub status: Option<u16>,
    /// `X-Error-Code` for `error` (default `internal_error`).
    pub error_code: Option<String>,
    /// A fault name (see the README), applied before or instead of the verdict.
    pub fault: Option<String>,
    /// Milliseconds for `delay`, `delay_continue` and `slow_body` (default 5000).
    pub delay_ms: Option<u64>,
    /// Answer in this dialect instead of the service's: a built-in one (`c-icap`,
    /// `symantec`, ...) or `recorded:DIR`, the answers of a recording (see the README's replay).
    pub dialect: Option<String>,
    /// Extra ICAP headers on the answer.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One rule, as in the `[[rule]]` tables of the config file and `POST /rules`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A name for logs and expectation messages.
    pub name: Option<String>,
    /// The conditions, all of which must hold (none: every request).
    #[serde(default)]
    pub when: WhenSpec,
    /// The answer.
    #[serde(default)]
    pub then: ThenSpec,
    /// Apply to the first N matching requests only.
    pub times: Option<u64>,
    /// Apply to every k-th matching request.
    pub every: Option<u64>,
    /// Apply with this probability (0 to 1), drawn from a generator seeded with `seed`.
    pub probability: Option<f64>,
    /// Seed for `probability` (default 0).
    pub seed: Option<u64>,
    /// Expected number of applications (checked by `GET /verify`).
    pub expect: Option<u64>,
    /// Precedence: lower first ([`Mock::with_priority`]; default 5, rules from `POST
    /// /faults` 0), then the first mounted.
    pub priority: Option<u8>,
}

impl ThenSpec {
    fn verdict(&self) -> Result<Reply, ConfigError> {
        let mut v = match self.verdict.as_deref().unwrap_or("scan") {
            "scan" => Reply::scan(),
            "clean" => Reply::clean(),
            "infected" => Reply::infected(self.threat.as_deref().unwrap_or("Mock.Rule")),
            "error" => Reply::error(
                self.status.unwrap_or(500),
                self.error_code.as_deref().unwrap_or("internal_error"),
            ),
            "status" => Reply::status(self.status.ok_or_else(|| ConfigError::Invalid {
                key: "rule.then.status",
                message: "verdict \"status\" needs a \"status\" code".into(),
            })?),
            other => {
                return Err(ConfigError::Invalid {
                    key: "rule.then.verdict",
                    message: format!(
                        "unknown verdict {other:?}; valid verdicts: {}",
                        VERDICT_NAMES.join(", ")
                    ),
                });
            }
        };
        if let Some(dir) = self
            .dialect
            .as_deref()
            .and_then(|d| d.strip_prefix("recorded:"))
        {
            let replay = Replay::load(dir).map_err(|source| ConfigError::Replay {
                key: "rule.then.dialect",
                source,
            })?;
            v = v.with_recorded(replay);
        } else if let Some(d) = &self.dialect {
            let d: Dialect =
                serde_json::from_value(serde_json::Value::String(d.clone())).map_err(|e| {
                    ConfigError::Invalid {
                        key: "rule.then.dialect",
                        message: format!("dialect {d:?}: {e}"),
                    }
                })?;
            v = v.with_dialect(d);
        }
        for (n, val) in &self.headers {
            v = v.with_header(n, val);
        }
        Ok(v)
    }

    fn fault(&self) -> Result<Option<FaultKind>, ConfigError> {
        self.fault
            .as_deref()
            .map(|name| {
                FaultKind::parse(name, self.delay_ms, self.status).ok_or_else(|| {
                    ConfigError::Invalid {
                        key: "rule.then.fault",
                        message: format!(
                            "unknown fault {name:?}; valid faults: {}",
                            FAULT_NAMES.join(", ")
                        ),
                    }
                })
            })
            .transpose()
    }
}

impl ThenSpec {
    /// This answer with every default written out: the verdict, the threat of
    /// `infected`, the status and code of `error`, the canonical fault name and its delay
    /// or status. What the server will do, as the admin API echoes it back.
    pub fn effective(&self) -> ThenSpec {
        let mut t = self.clone();
        let verdict = t.verdict.get_or_insert_with(|| "scan".to_owned()).clone();
        match verdict.as_str() {
            "infected" => {
                t.threat.get_or_insert_with(|| "Mock.Rule".to_owned());
            }
            "error" => {
                t.status.get_or_insert(500);
                t.error_code
                    .get_or_insert_with(|| "internal_error".to_owned());
            }
            _ => {}
        }
        if let Some(kind) = t
            .fault
            .as_deref()
            .and_then(|f| FaultKind::parse(f, t.delay_ms, t.status))
        {
            t.fault = Some(kind.name().to_owned());
            match kind {
                FaultKind::Delay(d) | FaultKind::DelayContinue(d) | FaultKind::SlowBody(d) => {
                    t.delay_ms = Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                }
                FaultKind::UnknownStatus(code) => t.status = Some(code),
                _ => {}
            }
        }
        t
    }
}

impl RuleSpec {
    /// This rule with its answer's defaults written out ([`ThenSpec::effective`]).
    pub fn effective(&self) -> RuleSpec {
        RuleSpec {
            then: self.then.effective(),
            ..self.clone()
        }
    }

    /// Builds the mock this rule describes.
    pub fn to_mock(&self) -> Result<Mock, ConfigError> {
        fn add(b: MockBuilder, m: impl Match) -> MockBuilder {
            b.and(m)
        }
        let w = &self.when;
        let mut b: MockBuilder = Mock::given(matchers::any());
        if let Some(m) = &w.method {
            b = add(b, matchers::method(parse_method("rule.when.method", m)?));
        }
        if let Some(s) = &w.service {
            b = add(b, matchers::service(s));
        }
        if let Some(h) = &w.icap_header {
            b = match &h.value {
                Some(v) => add(b, matchers::icap_header(&h.name, v)),
                None => add(b, matchers::icap_header_exists(&h.name)),
            };
        }
        if let Some(h) = &w.http_header {
            let v = h.value.clone().unwrap_or_default();
            b = add(b, matchers::http_header(&h.name, &v));
        }
        if let Some(p) = &w.url_path_contains {
            b = add(b, matchers::url_path_contains(p));
        }
        if let Some(f) = &w.filename {
            b = add(b, matchers::filename(f));
        }
        if let Some(c) = &w.body_contains {
            b = add(b, matchers::body_contains(c.as_bytes()));
        }
        if w.body_size_min.is_some() || w.body_size_max.is_some() {
            let lo = w.body_size_min.unwrap_or(0);
            let hi = w.body_size_max.unwrap_or(u64::MAX);
            b = add(b, matchers::body_size(lo..=hi));
        }
        let verdict = self.then.verdict()?;
        let mut mock = match self.then.fault()? {
            Some(kind) => b.respond_with(Fault {
                kind,
                then: verdict,
            }),
            None => b.respond_with(verdict),
        };
        let schedules = [
            self.times.is_some(),
            self.every.is_some(),
            self.probability.is_some(),
        ];
        if schedules.iter().filter(|x| **x).count() > 1 {
            return Err(ConfigError::Invalid {
                key: "rule",
                message: "use only one of times, every, probability".into(),
            });
        }
        if let Some(n) = self.times {
            mock = mock.times(n);
        }
        if let Some(k) = self.every {
            mock = mock.every(k);
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::Invalid {
                    key: "rule.probability",
                    message: format!("probability {p} is not between 0 and 1"),
                });
            }
            mock = mock.probability(p, self.seed.unwrap_or(0));
        }
        if let Some(e) = self.expect {
            mock = mock.expect(e);
        }
        if let Some(n) = &self.name {
            mock = mock.named(n);
        }
        if let Some(p) = self.priority {
            mock = mock.with_priority(p);
        }
        let d = self.effective();
        mock.description = Some(serde_json::json!({
            "source": "config",
            "when": d.when,
            "then": d.then,
            "times": d.times,
            "every": d.every,
            "probability": d.probability,
            "seed": d.seed,
            "priority": d.priority,
        }));
        Ok(mock)
    }
}

/// A fault switched on through `POST /faults`: `{"fault": "never_answer", "times": 3}`.
/// `outage` (or `refuse`), `accept_and_close` and `none` switch the outage mode instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The fault name.
    pub fault: String,
    /// Only for this service.
    pub service: Option<String>,
    /// Milliseconds for the delay faults.
    pub delay_ms: Option<u64>,
    /// Code for `unknown_status`.
    pub status: Option<u16>,
    /// The next N requests only.
    pub times: Option<u64>,
    /// Every k-th request.
    pub every: Option<u64>,
    /// With this probability.
    pub probability: Option<f64>,
    /// Seed for `probability`.
    pub seed: Option<u64>,
}

impl FaultSpec {
    /// The rule this fault amounts to.
    pub fn to_rule(&self) -> RuleSpec {
        RuleSpec {
            name: Some(format!("fault:{}", self.fault)),
            when: WhenSpec {
                service: self.service.clone(),
                ..WhenSpec::default()
            },
            then: ThenSpec {
                fault: Some(self.fault.clone()),
                delay_ms: self.delay_ms,
                status: self.status,
                ..ThenSpec::default()
            },
            times: self.times,
            every: self.every,
            probability: self.probability,
            seed: self.seed,
            expect: None,
            // A fault switched on at run time overrides every rule (the lowest priority
            // number a rule can have is 0, and among equals the first mounted wins).
            priority: Some(0),
        }
    }
}
