//! Antivirus verdict headers: what the server found.
//!
//! Vendors report infections in different places:
//!
//! | vendor shape | where |
//! |---|---|
//! | `c-icap` / `ClamAV`, many gateways | `X-Infection-Found: Type=0; Resolution=2; Threat=...;` |
//! | Symantec, c-icap | `X-Violations-Found: N` then four folded lines per violation |
//! | Kaspersky, Sophos, others | `X-Virus-ID: name` (`no threats` when clean) |
//! | `McAfee`, Sophos, proxies | the embedded HTTP response: `403`, `X-Blocked`, `X-Virus-Name`, `X-Block-Reason` |
//!
//! [`threats`] reads all of them and returns each threat once.

use bytes::Bytes;

use crate::error::EncodeError;
use crate::header::{HeaderValue, HeaderValueRef, trim_ows};
use crate::message::ResponseHead;

/// Where a threat was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreatSource {
    /// `X-Infection-Found`.
    InfectionFound,
    /// `X-Violations-Found`.
    ViolationsFound,
    /// `X-Virus-ID`.
    VirusId,
    /// The embedded HTTP response (a 403 block page or vendor headers).
    HttpBlock,
}

/// One threat the server reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threat {
    /// The threat name, UTF-8 (invalid bytes replaced).
    pub name: String,
    /// Where it came from (the first source when several report it).
    pub source: ThreatSource,
    /// `Type=` of `X-Infection-Found` (0 virus, 1 mail policy, 2 container violation).
    pub kind: Option<u64>,
    /// `Resolution=` of `X-Infection-Found` or the resolution of a violation
    /// (0 not fixed, 1 repaired, 2 blocked or deleted).
    pub resolution: Option<u64>,
    /// The file name inside the scanned object, from `X-Violations-Found`.
    pub file: Option<String>,
    /// The vendor's problem id, from `X-Violations-Found`.
    pub problem_id: Option<String>,
}

impl Threat {
    fn new(name: impl Into<String>, source: ThreatSource) -> Self {
        let name = name.into();
        // A name of only whitespace (a form feed passes `trim_ows`) would print as nothing;
        // the infection still counts.
        let name = if name.trim().is_empty() {
            UNNAMED_THREAT.to_owned()
        } else {
            name
        };
        Threat {
            name,
            source,
            kind: None,
            resolution: None,
            file: None,
            problem_id: None,
        }
    }
}

/// The name used when a server signals an infection without naming it.
pub const UNNAMED_THREAT: &str = "unnamed threat";

/// `X-Infection-Found: Type=<n>; Resolution=<n>; Threat=<text>;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfectionFound {
    /// `Type=`.
    pub kind: Option<u64>,
    /// `Resolution=`.
    pub resolution: Option<u64>,
    /// `Threat=`, raw bytes (may contain spaces, `:` and non-ASCII).
    pub threat: Bytes,
}

impl InfectionFound {
    /// Parses the parameters; unknown ones are ignored, the trailing `;` is optional.
    /// Returns `None` only for a value with no `Threat=` and no `Type=`.
    pub fn parse(value: HeaderValueRef<'_>) -> Option<Self> {
        let v = value.to_bytes();
        let mut out = InfectionFound {
            kind: None,
            resolution: None,
            threat: Bytes::new(),
        };
        let mut seen = false;
        for part in v.split(|&b| b == b';') {
            let part = trim_ows(part);
            let Some(eq) = memchr::memchr(b'=', part) else {
                continue;
            };
            let (key, val) = (trim_ows(&part[..eq]), trim_ows(&part[eq + 1..]));
            if key.eq_ignore_ascii_case(b"Type") {
                out.kind = crate::header::parse_u64(val);
                seen = true;
            } else if key.eq_ignore_ascii_case(b"Resolution") {
                out.resolution = crate::header::parse_u64(val);
            } else if key.eq_ignore_ascii_case(b"Threat") {
                out.threat = if val.is_empty() {
                    Bytes::new()
                } else {
                    v.slice_ref(val)
                };
                seen = true;
            }
        }
        seen.then_some(out)
    }

    /// The header value, with the trailing `;` c-icap writes.
    pub fn to_header_value(&self) -> Result<HeaderValue, EncodeError> {
        let mut s = Vec::with_capacity(48 + self.threat.len());
        s.extend_from_slice(
            format!(
                "Type={}; Resolution={}; Threat=",
                self.kind.unwrap_or(0),
                self.resolution.unwrap_or(2)
            )
            .as_bytes(),
        );
        s.extend_from_slice(&self.threat);
        s.push(b';');
        HeaderValue::new(s)
    }
}

/// One violation of `X-Violations-Found`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The file name (`-` when the scanned object itself).
    pub filename: String,
    /// The threat name.
    pub threat: String,
    /// The vendor's problem id.
    pub problem_id: String,
    /// The resolution id (0 not fixed, 1 repaired, 2 deleted).
    pub resolution: String,
}

/// `X-Violations-Found`: a count line, then four folded lines per violation.
///
/// ```
/// use icap_proto::verdict::{Violation, ViolationsFound};
/// let v = ViolationsFound(vec![Violation {
///     filename: "-".into(),
///     threat: "Eicar-Test-Signature".into(),
///     problem_id: "0".into(),
///     resolution: "0".into(),
/// }]);
/// let value = v.to_header_value().unwrap();
/// assert_eq!(value.as_bytes(), b"1\r\n\t-\r\n\tEicar-Test-Signature\r\n\t0\r\n\t0");
/// assert_eq!(ViolationsFound::parse(value.as_view()), Some(v));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViolationsFound(pub Vec<Violation>);

impl ViolationsFound {
    /// Parses the count and the complete groups of four lines; `None` when the count line
    /// is not a number. A short last group is dropped.
    pub fn parse(value: HeaderValueRef<'_>) -> Option<Self> {
        let mut lines = value.lines();
        let count = crate::header::parse_u64(lines.next()?)?;
        let text = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
        let mut out = Vec::new();
        let rest: Vec<&[u8]> = lines.collect();
        for group in rest
            .chunks_exact(4)
            .take(usize::try_from(count).unwrap_or(usize::MAX))
        {
            out.push(Violation {
                filename: text(group[0]),
                threat: text(group[1]),
                problem_id: text(group[2]),
                resolution: text(group[3]),
            });
        }
        // The count is what the server claims; a count with missing lines still counts.
        if count > out.len() as u64 && out.is_empty() {
            return Some(ViolationsFound(vec![Violation {
                filename: "-".into(),
                threat: UNNAMED_THREAT.into(),
                problem_id: String::new(),
                resolution: String::new(),
            }]));
        }
        Some(ViolationsFound(out))
    }

    /// The folded header value.
    pub fn to_header_value(&self) -> Result<HeaderValue, EncodeError> {
        let mut lines = vec![self.0.len().to_string()];
        for v in &self.0 {
            lines.extend([
                v.filename.clone(),
                v.threat.clone(),
                v.problem_id.clone(),
                v.resolution.clone(),
            ]);
        }
        HeaderValue::from_lines(lines)
    }
}

/// Whether an `X-Virus-ID` value means "nothing found" (Kaspersky sends `no threats`).
pub fn is_clean_virus_id(value: &[u8]) -> bool {
    let v = trim_ows(value);
    v.is_empty()
        || v == b"-"
        || v.eq_ignore_ascii_case(b"no threats")
        || v.eq_ignore_ascii_case(b"none")
        || v.eq_ignore_ascii_case(b"clean")
}

/// Every threat a response head reports, each name once, or an empty list if none.
///
/// ICAP headers are read first (`X-Infection-Found`, `X-Violations-Found`, `X-Virus-ID`).
/// Only if they name nothing is the embedded HTTP response consulted: a `403` status or the
/// vendor headers `X-Virus-Name`, `X-Blocked`, `X-Block-Reason`. A header that signals an
/// infection without a readable name still yields a threat named [`UNNAMED_THREAT`], so
/// an infection is never lost to a formatting quirk.
pub fn threats(head: &ResponseHead) -> Vec<Threat> {
    let mut out: Vec<Threat> = Vec::new();
    let h = &head.headers;
    for v in h.get_all("X-Infection-Found") {
        let t = match InfectionFound::parse(v) {
            Some(f) => {
                let name = if f.threat.is_empty() {
                    UNNAMED_THREAT.into()
                } else {
                    String::from_utf8_lossy(&f.threat).into_owned()
                };
                let mut t = Threat::new(name, ThreatSource::InfectionFound);
                t.kind = f.kind;
                t.resolution = f.resolution;
                t
            }
            None => Threat::new(UNNAMED_THREAT, ThreatSource::InfectionFound),
        };
        add(&mut out, t);
    }
    for v in h.get_all("X-Violations-Found") {
        match ViolationsFound::parse(v) {
            Some(ViolationsFound(list)) => {
                for viol in list {
                    let mut t = Threat::new(viol.threat, ThreatSource::ViolationsFound);
                    t.file = Some(viol.filename);
                    t.problem_id = Some(viol.problem_id);
                    t.resolution = viol.resolution.parse().ok();
                    add(&mut out, t);
                }
            }
            None => add(
                &mut out,
                Threat::new(UNNAMED_THREAT, ThreatSource::ViolationsFound),
            ),
        }
    }
    for v in h.get_all("X-Virus-ID") {
        if !is_clean_virus_id(v.as_bytes()) {
            add(
                &mut out,
                Threat::new(v.to_str_lossy().trim(), ThreatSource::VirusId),
            );
        }
    }
    if out.is_empty()
        && let Some(res) = &head.http_response
    {
        let hh = &res.headers;
        let named = ["X-Virus-Name", "X-Block-Reason", "X-Blocked"]
            .iter()
            .find_map(|n| {
                hh.get(n)
                    .filter(|v| !is_clean_virus_id(v.as_bytes()))
                    .map(|v| (*n, v))
            });
        match named {
            Some((n, v)) if n == "X-Blocked" && is_flag(v.as_bytes()) => {
                add(
                    &mut out,
                    Threat::new(
                        http_block_name(res.status(), res.reason()),
                        ThreatSource::HttpBlock,
                    ),
                );
            }
            Some((_, v)) => add(
                &mut out,
                Threat::new(v.to_str_lossy().trim(), ThreatSource::HttpBlock),
            ),
            None if res.status() == 403 => {
                add(
                    &mut out,
                    Threat::new(
                        http_block_name(res.status(), res.reason()),
                        ThreatSource::HttpBlock,
                    ),
                );
            }
            None => {}
        }
    }
    out
}

fn is_flag(v: &[u8]) -> bool {
    let v = trim_ows(v);
    v == b"1" || v.eq_ignore_ascii_case(b"yes") || v.eq_ignore_ascii_case(b"true")
}

fn http_block_name(status: u16, reason: &[u8]) -> String {
    let reason = String::from_utf8_lossy(trim_ows(reason));
    if reason.is_empty() || reason.eq_ignore_ascii_case("Forbidden") {
        format!("{UNNAMED_THREAT} (HTTP {status} block page)")
    } else {
        format!("{reason} (HTTP {status})")
    }
}

/// Adds `t` unless a threat of that name is known; then fills in what the known one lacks.
fn add(out: &mut Vec<Threat>, t: Threat) {
    // The same name first: taking an unnamed threat when the name is already listed would
    // list it twice.
    let known = out.iter().position(|k| k.name == t.name).or_else(|| {
        out.iter()
            .position(|k| k.name == UNNAMED_THREAT && t.source != k.source)
    });
    if let Some(known) = known.map(|i| &mut out[i]) {
        if known.name == UNNAMED_THREAT {
            known.name = t.name;
        }
        known.kind = known.kind.or(t.kind);
        known.resolution = known.resolution.or(t.resolution);
        known.file = known.file.take().or(t.file);
        known.problem_id = known.problem_id.take().or(t.problem_id);
    } else {
        out.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HttpResponseHead, StatusCode};

    fn head(fields: &[(&str, &[u8])]) -> ResponseHead {
        let mut h = ResponseHead::new(StatusCode::OK);
        for (n, v) in fields {
            h.headers.push(
                crate::HeaderName::new(n.as_bytes().to_vec()).unwrap(),
                HeaderValue::new(v.to_vec()).unwrap(),
            );
        }
        h
    }

    // Found by the `verdict` fuzz target: an unnamed X-Infection-Found, then a named one,
    // then the same name from X-Violations-Found gave that name twice.
    #[test]
    fn a_known_name_wins_over_an_unnamed_threat() {
        let h = head(&[
            ("X-Infection-Found", b"Type=0; Resolution=2"),
            ("X-Infection-Found", b"Type=0; Resolution=2; Threat=Eicar;"),
            ("X-Virus-ID", b"Eicar"),
        ]);
        let t = threats(&h);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, [UNNAMED_THREAT, "Eicar"]);
    }

    // Found by the `verdict` fuzz target: a name of only a form feed is not clean for
    // `trim_ows` but trims to nothing.
    #[test]
    fn blank_names_become_unnamed() {
        let mut h = ResponseHead::new(StatusCode::OK);
        let mut res = HttpResponseHead::new(200, "OK").unwrap();
        res.headers.append("X-Virus-Name", "\x0c").unwrap();
        h.http_response = Some(res);
        assert_eq!(threats(&h)[0].name, UNNAMED_THREAT);
        let h = head(&[("X-Virus-ID", b"\x0b")]);
        assert_eq!(threats(&h)[0].name, UNNAMED_THREAT);
    }
}
