//! What the audit log records per file: the typed [`AuditEntry`] and the [`Action`] taken,
//! and the one JSON line each entry becomes. Imports only values from below (verdict,
//! identity), so the client, the events and the guard can all name it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::identity::Uploader;
use crate::verdict::{VerdictKind, ser_duration_ms};

/// What was done to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do: the file is clean.
    None,
    /// Left in place, as the policy says for this verdict.
    Kept,
    /// Deleted (or already gone).
    Deleted,
    /// Moved to quarantine.
    Quarantined {
        /// Where it is now.
        to: PathBuf,
    },
    /// The policy said delete or quarantine, but that failed: the file is still there.
    ActionFailed {
        /// The I/O error, as text.
        error: String,
    },
}

impl Action {
    /// The word used in the audit log: `none`, `kept`, `deleted`, `quarantined`,
    /// `action_failed`.
    pub fn label(&self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Kept => "kept",
            Action::Deleted => "deleted",
            Action::Quarantined { .. } => "quarantined",
            Action::ActionFailed { .. } => "action_failed",
        }
    }
}

/// One line of the audit log. Serializes to the JSON line the log has always had:
/// `time` as RFC 3339 UTC with milliseconds, `verdict` and `action` as their labels, a
/// `quarantined_to` key only for a quarantined file, the scan time as `duration_ms`.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// When the policy was applied.
    pub time: SystemTime,
    /// The uploaded file, where it was when it was scanned.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: Option<String>,
    /// The server that answered (or was last tried).
    pub server: Option<String>,
    /// The service name of that server (the URL's path).
    pub service: Option<String>,
    /// The outcome of the scan.
    pub verdict: VerdictKind,
    /// Threat names, empty unless infected.
    pub threats: Vec<String>,
    /// What was done to the file.
    pub action: Action,
    /// Wall time of the scan (not of the action); `duration_ms` in the JSON line.
    pub duration: Duration,
    /// Who uploaded, if the product said so.
    pub uploader: Option<Uploader>,
    /// A sentence, such as `ICAP removed <path> due to scan fail`.
    pub message: String,
    /// The error, for failed scans.
    pub error: Option<String>,
}

impl AuditEntry {
    /// Where a quarantined file went; `None` for any other action.
    pub fn quarantined_to(&self) -> Option<&PathBuf> {
        match &self.action {
            Action::Quarantined { to } => Some(to),
            _ => None,
        }
    }
}

/// The wire form of an [`AuditEntry`], field for field in the order of the log line.
#[derive(Serialize)]
struct AuditLine<'a> {
    time: String,
    path: &'a PathBuf,
    size: u64,
    sha256: &'a Option<String>,
    server: &'a Option<String>,
    service: &'a Option<String>,
    verdict: VerdictKind,
    threats: &'a [String],
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    quarantined_to: Option<&'a PathBuf>,
    #[serde(serialize_with = "ser_duration_ms", rename = "duration_ms")]
    duration: Duration,
    uploader: &'a Option<Uploader>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: &'a Option<String>,
}

impl Serialize for AuditEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AuditLine {
            time: rfc3339(self.time),
            path: &self.path,
            size: self.size,
            sha256: &self.sha256,
            server: &self.server,
            service: &self.service,
            verdict: self.verdict,
            threats: &self.threats,
            action: self.action.label(),
            quarantined_to: self.quarantined_to(),
            duration: self.duration,
            uploader: &self.uploader,
            message: &self.message,
            error: &self.error,
        }
        .serialize(s)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, by `humantime`. The time is first clamped to what it can
/// print (1970 to 9999): it panics before the epoch and fails past the year 9999, and an
/// audit entry's time is a public field anyone can set.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    // 9999-12-31T23:59:59.999Z, the last instant humantime prints.
    let last = SystemTime::UNIX_EPOCH + Duration::from_millis(253_402_300_799_999);
    humantime::format_rfc3339_millis(t.clamp(SystemTime::UNIX_EPOCH, last)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserType;

    #[test]
    fn rfc3339_known_answers() {
        let at = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20.000Z");
        // Out of range: clamped, never a panic.
        let before = SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(5));
        if let Some(b) = before {
            assert_eq!(rfc3339(b), "1970-01-01T00:00:00.000Z");
        }
        assert_eq!(at(300_000_000_000), "9999-12-31T23:59:59.999Z");
    }

    fn entry(action: Action, verdict: VerdictKind, error: Option<&str>) -> AuditEntry {
        AuditEntry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            path: "/up/a.com".into(),
            size: 68,
            sha256: Some("ab".into()),
            server: Some("icap://127.0.0.1:1344/avscan".into()),
            service: Some("avscan".into()),
            verdict,
            threats: vec!["Eicar-Test-Signature".into()],
            action,
            duration: Duration::from_micros(1500),
            uploader: Some(Uploader::new("bob").with_user_type(UserType::Full)),
            message: "m".into(),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn the_json_line_is_pinned() {
        let uploader = serde_json::to_string(&Uploader::new("bob").with_user_type(UserType::Full))
            .expect("serialises");
        let line = serde_json::to_string(&entry(
            Action::Quarantined {
                to: "/q/1-a.com".into(),
            },
            VerdictKind::Infected,
            None,
        ))
        .expect("serialises");
        assert_eq!(
            line,
            format!(
                r#"{{"time":"2023-11-14T22:13:20.123Z","path":"/up/a.com","size":68,"sha256":"ab","server":"icap://127.0.0.1:1344/avscan","service":"avscan","verdict":"infected","threats":["Eicar-Test-Signature"],"action":"quarantined","quarantined_to":"/q/1-a.com","duration_ms":1.5,"uploader":{uploader},"message":"m"}}"#
            )
        );
        let line = serde_json::to_string(&entry(
            Action::ActionFailed {
                error: "denied".into(),
            },
            VerdictKind::NotScanned,
            Some("boom"),
        ))
        .expect("serialises");
        assert!(
            line.contains(r#""verdict":"not_scanned","threats":["Eicar-Test-Signature"],"action":"action_failed","duration_ms":1.5,"#),
            "{line}"
        );
        assert!(line.ends_with(r#""message":"m","error":"boom"}"#), "{line}");
    }
}
