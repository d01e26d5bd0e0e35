//! The typed answer to `OPTIONS` (RFC 3507 section 4.10), validated.
//!
//! [`OptionsResponse::from_head_with`] reads a `200` answer under [`OptionsRules`]:
//!
//! - no `ISTag` (a MUST of section 4.10.2) is [`OptionsError::MissingIsTag`], unless
//!   [`OptionsRules::require_istag`] is off (the lenient switch);
//! - `Options-TTL` above [`OptionsRules::max_ttl`] (default 30 days) is clamped to it, and
//!   `Preview` above [`OptionsRules::max_preview`] (default 64 KiB) is clamped to it, each
//!   with an [`OptionsWarning`]; numbers of any size are read without overflow;
//! - `Max-Connections` of 0, above [`OptionsRules::max_connections`] (default 100 000) or not
//!   a number is ignored (`None`: the caller uses its default), with a warning.
//!
//! A single-valued header given more than once follows the one rule of
//! [`Headers::get_single`]: copies with equal values (after trimming spaces and tabs) count
//! as one; copies that differ are a conflict. A conflict in an advisory field (`Preview`,
//! `Options-TTL`, `Max-Connections`, `Service`, `Service-ID`) makes it absent, with an
//! [`OptionsWarning::Conflicting`]; a conflicting `ISTag` is absent, so
//! [`OptionsError::MissingIsTag`] when it is required. (Elsewhere: a conflicting `Preview`
//! in a request is a decode error, and `Encapsulated` twice always is.)

use std::fmt;
use std::time::Duration;

use crate::error::EncodeError;
use crate::header::trim_ows;
use crate::header::{HeaderName, HeaderValue, HeaderValueRef, Headers, Single};
use crate::message::{ResponseHead, allow_lists, unquote};
use crate::types::{Method, StatusCode};

/// What a service says about itself in its `OPTIONS` response.
///
/// ```
/// use icap_proto::{Method, OptionsResponse};
/// // A server's answer, written with `to_head` and read back.
/// let mut o = OptionsResponse::new(vec![Method::Respmod], "\"av-1\"");
/// o.preview = Some(1024);
/// o.allow_204 = true;
/// let head = o.to_head().unwrap();
/// let back = OptionsResponse::from_head(&head).unwrap();
/// assert_eq!(back.preview, Some(1024));
/// assert_eq!(back.istag.as_deref(), Some("av-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptionsResponse {
    /// `Methods`: what the service supports (unknown methods are dropped).
    pub methods: Vec<Method>,
    /// `Service`: a description of the service.
    pub service: Option<String>,
    /// `ISTag` without quotes (unquoted values are tolerated).
    pub istag: Option<String>,
    /// `Max-Connections`.
    pub max_connections: Option<u32>,
    /// `Options-TTL`: how long this answer stays valid.
    pub options_ttl: Option<Duration>,
    /// `Preview`: how many bytes the service wants in a preview.
    pub preview: Option<u64>,
    /// `Transfer-Preview`: file extensions to send with a preview (`*` for all).
    pub transfer_preview: Vec<String>,
    /// `Transfer-Ignore`: file extensions not to send.
    pub transfer_ignore: Vec<String>,
    /// `Transfer-Complete`: file extensions to send whole.
    pub transfer_complete: Vec<String>,
    /// `Allow: 204`: the service may answer 204 outside a preview.
    pub allow_204: bool,
    /// `Allow: 206`.
    pub allow_206: bool,
    /// `Allow: trailers`.
    pub allow_trailers: bool,
    /// `Service-ID`.
    pub service_id: Option<String>,
    /// Every header as received.
    pub headers: Headers,
    /// What [`OptionsResponse::from_head_with`] clamped, ignored or found conflicting.
    /// Empty for a value built in code.
    pub warnings: Vec<OptionsWarning>,
}

/// How strictly [`OptionsResponse::from_head_with`] reads an answer, and the bounds it
/// clamps advisory numbers to.
///
/// ```
/// use std::time::Duration;
/// use icap_proto::OptionsRules;
/// let rules = OptionsRules::default();
/// assert!(rules.require_istag);
/// assert_eq!(rules.max_preview, 64 * 1024);
/// assert_eq!(rules.max_ttl, Duration::from_secs(30 * 24 * 3600));
/// assert_eq!(rules.max_connections, 100_000);
/// let lenient = rules.with_require_istag(false).with_max_preview(4096);
/// assert!(!lenient.require_istag);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionsRules {
    /// Refuse an answer without `ISTag` ([`OptionsError::MissingIsTag`]). Default `true`:
    /// RFC 3507 section 4.10.2 makes it a MUST, and without it cached verdicts cannot be
    /// tied to a signature version. `false` is the lenient switch for servers that omit it.
    pub require_istag: bool,
    /// Largest `Preview` taken from the answer; larger values are clamped to it. Default
    /// 64 KiB (RFC clients should support at least 4096).
    pub max_preview: u64,
    /// Longest `Options-TTL`; longer values are clamped to it. Default 30 days.
    pub max_ttl: Duration,
    /// Largest `Max-Connections` believed; larger values (and 0) are ignored. Default 100 000.
    pub max_connections: u32,
}

impl Default for OptionsRules {
    fn default() -> Self {
        OptionsRules {
            require_istag: true,
            max_preview: 64 * 1024,
            max_ttl: Duration::from_secs(30 * 24 * 3600),
            max_connections: 100_000,
        }
    }
}

impl OptionsRules {
    /// Sets [`OptionsRules::require_istag`].
    #[must_use]
    pub fn with_require_istag(mut self, on: bool) -> Self {
        self.require_istag = on;
        self
    }
    /// Sets [`OptionsRules::max_preview`].
    #[must_use]
    pub fn with_max_preview(mut self, n: u64) -> Self {
        self.max_preview = n;
        self
    }
    /// Sets [`OptionsRules::max_ttl`].
    #[must_use]
    pub fn with_max_ttl(mut self, d: Duration) -> Self {
        self.max_ttl = d;
        self
    }
    /// Sets [`OptionsRules::max_connections`].
    #[must_use]
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
}

/// Something [`OptionsResponse::from_head_with`] did not take as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsWarning {
    /// `Preview` was above [`OptionsRules::max_preview`].
    PreviewClamped {
        /// The value sent (numbers past `u64::MAX` read as `u64::MAX`).
        announced: u64,
        /// The value used.
        used: u64,
    },
    /// `Options-TTL` was above [`OptionsRules::max_ttl`].
    TtlClamped {
        /// The seconds sent (numbers past `u64::MAX` read as `u64::MAX`).
        announced: u64,
        /// The duration used.
        used: Duration,
    },
    /// `Max-Connections` was 0, above [`OptionsRules::max_connections`], or not a number;
    /// it is ignored (`None`).
    MaxConnectionsIgnored {
        /// The number sent, or `None` if it was not a decimal number.
        announced: Option<u64>,
        /// The largest value believed.
        max: u32,
    },
    /// A single-valued header was given more than once with different values; it is
    /// treated as absent.
    Conflicting {
        /// Which header.
        header: &'static str,
    },
}

impl fmt::Display for OptionsWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsWarning::PreviewClamped { announced, used } => {
                write!(f, "Preview: {announced} clamped to {used}")
            }
            OptionsWarning::TtlClamped { announced, used } => {
                write!(
                    f,
                    "Options-TTL: {announced} clamped to {} s",
                    used.as_secs()
                )
            }
            OptionsWarning::MaxConnectionsIgnored {
                announced: Some(n),
                max,
            } => write!(
                f,
                "Max-Connections: {n} ignored (not in 1..={max}); the default is used"
            ),
            OptionsWarning::MaxConnectionsIgnored {
                announced: None, ..
            } => f.write_str("Max-Connections is not a number; ignored, the default is used"),
            OptionsWarning::Conflicting { header } => {
                write!(f, "{header} given twice with different values; ignored")
            }
        }
    }
}

/// Why a response is not a usable `OPTIONS` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// The status was not 200.
    #[error("OPTIONS answered with status {0}")]
    Status(u16),
    /// A header the answer needs has a value that does not parse.
    #[error("invalid value in OPTIONS header {0}")]
    InvalidValue(&'static str),
    /// No `ISTag` (or copies that differ): RFC 3507 section 4.10.2 makes it a MUST. See
    /// [`OptionsRules::require_istag`] for the lenient switch.
    #[error("OPTIONS answer without ISTag (required by RFC 3507 section 4.10.2)")]
    MissingIsTag,
}

/// What to do with a file of a given extension, from the `Transfer-*` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Send with a preview.
    Preview,
    /// Do not send.
    Ignore,
    /// Send whole, without a preview.
    Complete,
}

const TYPED: &[&str] = &[
    "Methods",
    "Service",
    "ISTag",
    "Max-Connections",
    "Options-TTL",
    "Preview",
    "Transfer-Preview",
    "Transfer-Ignore",
    "Transfer-Complete",
    "Allow",
    "Service-ID",
    "Encapsulated",
];

impl OptionsResponse {
    /// An answer offering `methods` with the given `ISTag` (quoted or not).
    pub fn new(methods: Vec<Method>, istag: &str) -> Self {
        OptionsResponse {
            methods,
            istag: Some(istag.trim_matches('"').to_owned()),
            ..OptionsResponse::default()
        }
    }

    /// Reads the typed fields from a response head under the default [`OptionsRules`].
    pub fn from_head(head: &ResponseHead) -> Result<Self, OptionsError> {
        OptionsResponse::from_head_with(head, &OptionsRules::default())
    }

    /// Reads and validates the typed fields of a response head: see the
    /// [module documentation](self) for the rules.
    ///
    /// ```
    /// use icap_proto::{OptionsResponse, OptionsRules, OptionsWarning, ResponseHead, StatusCode};
    /// let head = ResponseHead::new(StatusCode::OK)
    ///     .with_header("ISTag", "\"av-1\"").unwrap()
    ///     .with_header("Options-TTL", "18446744073709551615").unwrap()
    ///     .with_header("Preview", "99999999999").unwrap();
    /// let o = OptionsResponse::from_head_with(&head, &OptionsRules::default()).unwrap();
    /// assert_eq!(o.preview, Some(64 * 1024));
    /// assert_eq!(o.options_ttl.unwrap().as_secs(), 30 * 24 * 3600);
    /// assert_eq!(o.warnings.len(), 2);
    /// assert!(matches!(o.warnings[1], OptionsWarning::PreviewClamped { announced: 99999999999, .. }));
    /// ```
    #[allow(clippy::too_many_lines)] // one header after another, in RFC 3507 4.10.2 order; splitting would scatter the table
    pub fn from_head_with(head: &ResponseHead, rules: &OptionsRules) -> Result<Self, OptionsError> {
        if head.status != StatusCode::OK {
            return Err(OptionsError::Status(head.status.as_u16()));
        }
        let h = &head.headers;
        let mut warnings = Vec::new();
        // The single-valued rule, once for every field: a conflict is absent, with a warning.
        let mut single = |name: &'static str| match h.get_single(name) {
            Single::Absent => None,
            Single::One(v) => Some(v),
            Single::Conflict => {
                warnings.push(OptionsWarning::Conflicting { header: name });
                None
            }
        };
        let text = |v: Option<HeaderValueRef<'_>>| v.map(|v| v.to_str_lossy().into_owned());
        let service = text(single("Service"));
        let service_id = text(single("Service-ID"));
        let istag_value = single("ISTag");
        let ttl_value = single("Options-TTL");
        let preview_value = single("Preview");
        let max_conn_value = single("Max-Connections");
        let istag =
            istag_value.map(|v| String::from_utf8_lossy(unquote(v.as_bytes())).into_owned());
        if istag.is_none() && rules.require_istag {
            return Err(OptionsError::MissingIsTag);
        }
        // Numbers of any length: past u64::MAX they saturate, and are clamped below anyway.
        let number =
            |v: HeaderValueRef<'_>| crate::header::parse_u64_saturating(trim_ows(v.as_bytes()));
        let options_ttl = ttl_value
            .map(|v| number(v).ok_or(OptionsError::InvalidValue("Options-TTL")))
            .transpose()?
            .map(|secs| {
                let announced = Duration::from_secs(secs);
                if announced > rules.max_ttl {
                    warnings.push(OptionsWarning::TtlClamped {
                        announced: secs,
                        used: rules.max_ttl,
                    });
                    rules.max_ttl
                } else {
                    announced
                }
            });
        let preview = preview_value
            .map(|v| number(v).ok_or(OptionsError::InvalidValue("Preview")))
            .transpose()?
            .map(|n| {
                if n > rules.max_preview {
                    warnings.push(OptionsWarning::PreviewClamped {
                        announced: n,
                        used: rules.max_preview,
                    });
                    rules.max_preview
                } else {
                    n
                }
            });
        let max_connections = max_conn_value.and_then(|v| {
            let announced = number(v);
            match announced.and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n != 0 && n <= rules.max_connections => Some(n),
                _ => {
                    warnings.push(OptionsWarning::MaxConnectionsIgnored {
                        announced,
                        max: rules.max_connections,
                    });
                    None
                }
            }
        });
        let list = |name| -> Vec<String> {
            h.get_all(name)
                .flat_map(|v| {
                    v.to_str_lossy()
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .collect::<Vec<_>>()
                })
                .filter(|s| !s.is_empty())
                .collect()
        };
        let methods = h
            .get_all("Methods")
            .flat_map(|v| {
                v.as_bytes()
                    .split(|&b| b == b',')
                    .map(trim_ows)
                    .collect::<Vec<_>>()
            })
            .filter_map(Method::from_bytes)
            .collect();
        Ok(OptionsResponse {
            methods,
            service,
            istag,
            max_connections,
            options_ttl,
            preview,
            transfer_preview: list("Transfer-Preview"),
            transfer_ignore: list("Transfer-Ignore"),
            transfer_complete: list("Transfer-Complete"),
            allow_204: allow_lists(h, b"204"),
            allow_206: allow_lists(h, b"206"),
            allow_trailers: allow_lists(h, b"trailers"),
            service_id,
            headers: h.clone(),
            warnings,
        })
    }

    /// Whether `method` is offered.
    pub fn supports(&self, method: Method) -> bool {
        self.methods.contains(&method)
    }

    /// How a file with extension `ext` (no dot) should be sent, per RFC 3507 section 4.10.2:
    /// an explicit list wins, then a `*` wildcard, then preview.
    pub fn transfer_for(&self, ext: &str) -> Transfer {
        let has = |l: &[String]| l.iter().any(|e| e.eq_ignore_ascii_case(ext));
        let star = |l: &[String]| l.iter().any(|e| e == "*");
        if has(&self.transfer_ignore) {
            Transfer::Ignore
        } else if has(&self.transfer_complete) {
            Transfer::Complete
        } else if has(&self.transfer_preview) {
            Transfer::Preview
        } else if star(&self.transfer_complete) {
            Transfer::Complete
        } else if star(&self.transfer_ignore) {
            Transfer::Ignore
        } else {
            Transfer::Preview
        }
    }

    /// Builds the `200 OK` head a server sends. Fields in `headers` that the typed fields do
    /// not cover are appended after them.
    pub fn to_head(&self) -> Result<ResponseHead, EncodeError> {
        let mut head = ResponseHead::new(StatusCode::OK);
        let h = &mut head.headers;
        let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        h.append("Methods", methods.join(", ").as_str())?;
        if let Some(s) = &self.service {
            h.append("Service", s.as_str())?;
        }
        if let Some(t) = &self.istag {
            h.append("ISTag", format!("\"{t}\""))?;
        }
        if let Some(n) = self.max_connections {
            h.push(
                HeaderName::from_static("Max-Connections"),
                HeaderValue::from_u64(n.into()),
            );
        }
        if let Some(d) = self.options_ttl {
            h.push(
                HeaderName::from_static("Options-TTL"),
                HeaderValue::from_u64(d.as_secs()),
            );
        }
        if let Some(p) = self.preview {
            h.push(HeaderName::from_static("Preview"), HeaderValue::from_u64(p));
        }
        for (name, l) in [
            ("Transfer-Preview", &self.transfer_preview),
            ("Transfer-Ignore", &self.transfer_ignore),
            ("Transfer-Complete", &self.transfer_complete),
        ] {
            if !l.is_empty() {
                h.append(name, l.join(", "))?;
            }
        }
        let allow: Vec<&str> = [
            (self.allow_204, "204"),
            (self.allow_206, "206"),
            (self.allow_trailers, "trailers"),
        ]
        .into_iter()
        .filter_map(|(on, s)| on.then_some(s))
        .collect();
        if !allow.is_empty() {
            h.append("Allow", allow.join(", ").as_str())?;
        }
        if let Some(s) = &self.service_id {
            h.append("Service-ID", s.as_str())?;
        }
        for (n, v) in &self.headers {
            if !TYPED.iter().any(|t| n.is(t)) {
                h.push(n.to_owned(), v.to_owned());
            }
        }
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&str, &str)]) -> ResponseHead {
        let mut h = ResponseHead::new(StatusCode::OK);
        for (n, v) in fields {
            h.headers.append(*n, *v).unwrap();
        }
        h
    }

    const TAG: (&str, &str) = ("ISTag", "\"av-1\"");
    const DAYS_30: u64 = 30 * 24 * 3600;

    #[test]
    fn istag_is_required_unless_lenient() {
        type Row = (
            &'static [(&'static str, &'static str)],
            bool,
            Result<Option<&'static str>, OptionsError>,
        );
        let rows: &[Row] = &[
            (&[TAG], true, Ok(Some("av-1"))),
            (&[("ISTag", "plain")], true, Ok(Some("plain"))),
            (&[], true, Err(OptionsError::MissingIsTag)),
            (&[], false, Ok(None)),
            // Equal copies count as one; copies that differ are none at all.
            (&[TAG, ("istag", " \"av-1\" ")], true, Ok(Some("av-1"))),
            (
                &[TAG, ("ISTag", "\"av-2\"")],
                true,
                Err(OptionsError::MissingIsTag),
            ),
            (&[TAG, ("ISTag", "\"av-2\"")], false, Ok(None)),
        ];
        for (fields, require, want) in rows {
            let rules = OptionsRules::default().with_require_istag(*require);
            let got = OptionsResponse::from_head_with(&head(fields), &rules).map(|o| o.istag);
            assert_eq!(
                got,
                want.map(|t| t.map(str::to_owned)),
                "{fields:?} {require}"
            );
        }
        assert_eq!(
            OptionsResponse::from_head(&head(&[])),
            Err(OptionsError::MissingIsTag),
            "from_head uses the default rules"
        );
    }

    #[allow(clippy::too_many_lines)] // a table-driven test: its rows read best as one list
    #[test]
    fn numbers_are_clamped_or_ignored_with_a_warning() {
        use OptionsWarning as W;
        type Row = (
            (&'static str, &'static str),
            fn(&OptionsResponse) -> bool,
            Option<OptionsWarning>,
        );
        let rows: &[Row] = &[
            (
                ("Options-TTL", "3600"),
                |o| o.options_ttl == Some(Duration::from_secs(3600)),
                None,
            ),
            (
                ("Options-TTL", "18446744073709551615"),
                |o| o.options_ttl == Some(Duration::from_secs(DAYS_30)),
                Some(W::TtlClamped {
                    announced: u64::MAX,
                    used: Duration::from_secs(DAYS_30),
                }),
            ),
            (
                // Past u64::MAX: read as u64::MAX, no overflow, no error.
                ("Options-TTL", "99999999999999999999999999"),
                |o| o.options_ttl == Some(Duration::from_secs(DAYS_30)),
                Some(W::TtlClamped {
                    announced: u64::MAX,
                    used: Duration::from_secs(DAYS_30),
                }),
            ),
            (
                ("Options-TTL", "2592000"),
                |o| o.options_ttl == Some(Duration::from_secs(DAYS_30)),
                None,
            ),
            (("Preview", "4096"), |o| o.preview == Some(4096), None),
            (("Preview", "65536"), |o| o.preview == Some(65536), None),
            (
                ("Preview", "99999999999"),
                |o| o.preview == Some(65536),
                Some(W::PreviewClamped {
                    announced: 99_999_999_999,
                    used: 65536,
                }),
            ),
            (
                ("Preview", "18446744073709551615"),
                |o| o.preview == Some(65536),
                Some(W::PreviewClamped {
                    announced: u64::MAX,
                    used: 65536,
                }),
            ),
            (
                ("Max-Connections", "100"),
                |o| o.max_connections == Some(100),
                None,
            ),
            (
                ("Max-Connections", "100000"),
                |o| o.max_connections == Some(100_000),
                None,
            ),
            (
                ("Max-Connections", "0"),
                |o| o.max_connections.is_none(),
                Some(W::MaxConnectionsIgnored {
                    announced: Some(0),
                    max: 100_000,
                }),
            ),
            (
                ("Max-Connections", "100001"),
                |o| o.max_connections.is_none(),
                Some(W::MaxConnectionsIgnored {
                    announced: Some(100_001),
                    max: 100_000,
                }),
            ),
            (
                ("Max-Connections", "18446744073709551615"),
                |o| o.max_connections.is_none(),
                Some(W::MaxConnectionsIgnored {
                    announced: Some(u64::MAX),
                    max: 100_000,
                }),
            ),
            (
                ("Max-Connections", "many"),
                |o| o.max_connections.is_none(),
                Some(W::MaxConnectionsIgnored {
                    announced: None,
                    max: 100_000,
                }),
            ),
        ];
        for (field, check, warning) in rows {
            let o = OptionsResponse::from_head(&head(&[TAG, *field])).unwrap();
            assert!(check(&o), "{field:?}: {o:?}");
            assert_eq!(
                o.warnings,
                warning.iter().cloned().collect::<Vec<_>>(),
                "{field:?}"
            );
            for w in &o.warnings {
                assert!(!w.to_string().is_empty());
            }
        }
    }

    #[test]
    fn bounds_are_configurable() {
        let rules = OptionsRules::default()
            .with_max_preview(4096)
            .with_max_ttl(Duration::from_secs(60))
            .with_max_connections(10);
        let o = OptionsResponse::from_head_with(
            &head(&[
                TAG,
                ("Preview", "8192"),
                ("Options-TTL", "61"),
                ("Max-Connections", "11"),
            ]),
            &rules,
        )
        .unwrap();
        assert_eq!(o.preview, Some(4096));
        assert_eq!(o.options_ttl, Some(Duration::from_secs(60)));
        assert_eq!(o.max_connections, None);
        assert_eq!(o.warnings.len(), 3);
        // A zero TTL bound clamps every TTL to zero without any arithmetic going wrong.
        let zero = OptionsRules::default().with_max_ttl(Duration::ZERO);
        let o =
            OptionsResponse::from_head_with(&head(&[TAG, ("Options-TTL", "1")]), &zero).unwrap();
        assert_eq!(o.options_ttl, Some(Duration::ZERO));
    }

    #[test]
    fn a_single_valued_header_given_twice() {
        type Row = (
            &'static str,
            &'static str,
            &'static str,
            fn(&OptionsResponse) -> bool,
        );
        let rows: &[Row] = &[
            ("Preview", "1024", "0", |o| o.preview.is_none()),
            ("Options-TTL", "60", "3600", |o| o.options_ttl.is_none()),
            ("Max-Connections", "10", "20", |o| {
                o.max_connections.is_none()
            }),
            ("Service", "AV", "Other", |o| o.service.is_none()),
            ("Service-ID", "a", "b", |o| o.service_id.is_none()),
        ];
        for (name, a, b, absent) in rows {
            let o = OptionsResponse::from_head(&head(&[TAG, (name, a), (name, b)])).unwrap();
            assert!(absent(&o), "{name}: {o:?}");
            assert_eq!(
                o.warnings,
                [OptionsWarning::Conflicting { header: name }],
                "{name}"
            );
            // The same value twice (spaces aside) is one value, no warning.
            let padded = format!("  {a}\t");
            let o = OptionsResponse::from_head(&head(&[TAG, (name, a), (name, &padded)])).unwrap();
            assert!(!absent(&o), "{name}: {o:?}");
            assert!(o.warnings.is_empty(), "{name}: {:?}", o.warnings);
        }
    }

    #[test]
    fn unparsable_preview_and_ttl_stay_errors() {
        for name in ["Preview", "Options-TTL"] {
            let got = OptionsResponse::from_head(&head(&[TAG, (name, "soon")]));
            assert!(
                matches!(got, Err(OptionsError::InvalidValue(n)) if n == name),
                "{name}"
            );
        }
    }

    #[test]
    fn built_values_read_back_without_warnings() {
        let mut o = OptionsResponse::new(vec![Method::Respmod], "\"av-1\"");
        o.preview = Some(1024);
        o.options_ttl = Some(Duration::from_secs(3600));
        o.max_connections = Some(50);
        let back = OptionsResponse::from_head(&o.to_head().unwrap()).unwrap();
        assert!(back.warnings.is_empty());
        assert_eq!(
            (back.preview, back.options_ttl, back.max_connections),
            (o.preview, o.options_ttl, o.max_connections)
        );
    }
}
