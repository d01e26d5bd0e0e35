//! What happens to an uploaded file after its scan: delete, quarantine or keep; audit
//! entries; alerts for the administrator and notices for the uploader.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::client::{Client, ScanMeta};
use crate::error::{Error, ErrorKind};
use crate::events::{Alert, AlertKind, Event, Notice};
use crate::identity::Uploader;
use crate::verdict::{ScanReport, Verdict, ser_duration_ms};

/// What to do with a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// Delete it.
    Delete,
    /// Move it into this folder.
    Quarantine(PathBuf),
    /// Leave it (and report).
    Keep,
}

/// The policy of an upload product.
///
/// Defaults follow the usual product behaviour: infected files are deleted; files whose scan
/// failed are kept (with an alert); modified files are kept (with an alert).
///
/// ```
/// use icap_client::{FileAction, Policy};
/// let p = Policy::default()
///     .with_on_infected(FileAction::Quarantine("/var/quarantine".into()))
///     .with_delete_on_scan_fail(true)
///     .with_audit_log("/var/log/icap-audit.jsonl");
/// assert!(p.delete_on_scan_fail);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// For `Infected`. Default [`FileAction::Delete`].
    pub on_infected: FileAction,
    /// For `Modified`. Default [`FileAction::Keep`].
    pub on_modified: FileAction,
    /// Delete files whose scan failed, and refuse uploads while no server is available
    /// ([`Guard::admit_upload`]). Default false.
    pub delete_on_scan_fail: bool,
    /// Append an audit entry per file to this JSON lines file.
    pub audit_log: Option<PathBuf>,
    /// Compute the SHA-256 for the audit entry when the scan did not (default true).
    pub audit_sha256: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            on_infected: FileAction::Delete,
            on_modified: FileAction::Keep,
            delete_on_scan_fail: false,
            audit_log: None,
            audit_sha256: true,
        }
    }
}

impl Policy {
    /// Sets [`Policy::on_infected`].
    pub fn with_on_infected(mut self, a: FileAction) -> Self {
        self.on_infected = a;
        self
    }
    /// Sets [`Policy::on_modified`].
    pub fn with_on_modified(mut self, a: FileAction) -> Self {
        self.on_modified = a;
        self
    }
    /// Sets [`Policy::delete_on_scan_fail`].
    pub fn with_delete_on_scan_fail(mut self, yes: bool) -> Self {
        self.delete_on_scan_fail = yes;
        self
    }
    /// Sets [`Policy::audit_log`].
    pub fn with_audit_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_log = Some(path.into());
        self
    }
}

/// What was done to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do (clean).
    None,
    /// Left in place.
    Kept,
    /// Deleted.
    Deleted,
    /// Moved to quarantine.
    Quarantined {
        /// Where it is now.
        to: PathBuf,
    },
    /// The policy said delete or quarantine, but that failed: the file is still there.
    ActionFailed {
        /// Why.
        error: String,
    },
}

impl Action {
    /// The word used in the audit log.
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

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// UTC time, RFC 3339.
    pub time: String,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: Option<String>,
    /// The server that answered (or was last tried).
    pub server: Option<String>,
    /// The service.
    pub service: Option<String>,
    /// `clean`, `infected`, `modified`, `not_scanned`, `failed`.
    pub verdict: &'static str,
    /// Threat names.
    pub threats: Vec<String>,
    /// What was done: `none`, `kept`, `deleted`, `quarantined`, `action_failed`.
    pub action: &'static str,
    /// Where a quarantined file went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined_to: Option<PathBuf>,
    /// Scan time.
    #[serde(serialize_with = "ser_duration_ms", rename = "duration_ms")]
    pub duration: Duration,
    /// Who uploaded.
    pub uploader: Option<Uploader>,
    /// A sentence, such as `ICAP removed <path> due to scan fail`.
    pub message: String,
    /// The error, for failed scans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of [`Guard::check_upload`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scan.
    pub report: ScanReport,
    /// What was done to the file.
    pub action: Action,
    /// The audit entry written.
    pub audit: AuditEntry,
}

/// Scans uploads and applies a [`Policy`]: the piece an upload product calls.
///
/// ```no_run
/// # async fn demo() -> Result<(), icap_client::Error> {
/// use icap_client::{Client, Guard, Policy, Uploader};
/// let client = Client::builder().server("icap://av.example.net/avscan").build()?;
/// let guard = Guard::new(client, Policy::default().with_delete_on_scan_fail(true))?;
/// guard.admit_upload().await?; // refuse the upload while the server is down
/// // ... receive the file ...
/// let outcome = guard.check_upload("/srv/uploads/a.pdf", Some(&Uploader::new("alice"))).await;
/// println!("{} -> {}", outcome.report.verdict.label(), outcome.action.label());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Guard {
    client: Client,
    policy: Policy,
    audit: Option<Arc<Mutex<std::fs::File>>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard; opens (creates, appends to) the audit log if the policy names one.
    pub fn new(client: Client, policy: Policy) -> Result<Self, Error> {
        let audit = match &policy.audit_log {
            Some(p) => Some(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        Error::config(format!("audit log {}: {e}", p.display())).with_source(e)
                    })?,
            ))),
            None => None,
        };
        if let FileAction::Quarantine(dir) = &policy.on_infected {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::config(format!("quarantine folder {}: {e}", dir.display())).with_source(e)
            })?;
        }
        Ok(Guard {
            client,
            policy,
            audit,
        })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Events: alerts, notices, audit entries.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.client.subscribe()
    }

    /// Whether a new upload may be accepted. With `delete_on_scan_fail`, uploads are
    /// refused (`Err`, kind `Unavailable`) while no ICAP server is available; the check is
    /// immediate while servers are marked down, and probes with `OPTIONS` otherwise (a
    /// cached fresh answer counts). Without it, always `Ok`.
    pub async fn admit_upload(&self) -> Result<(), Error> {
        if !self.policy.delete_on_scan_fail {
            return Ok(());
        }
        self.client.check_available().await
    }

    /// Scans an uploaded file and applies the policy.
    pub async fn check_upload(
        &self,
        path: impl AsRef<Path>,
        uploader: Option<&Uploader>,
    ) -> Outcome {
        let path = path.as_ref();
        let meta = ScanMeta {
            filename: path.file_name().map(|n| n.to_string_lossy().into_owned()),
            uploader: uploader.cloned(),
            ..ScanMeta::default()
        };
        let report = self.client.scan_file(path, &meta).await;
        self.apply(path, report, uploader).await
    }

    /// Applies the policy to a file already scanned.
    pub async fn apply(
        &self,
        path: &Path,
        report: ScanReport,
        uploader: Option<&Uploader>,
    ) -> Outcome {
        let mut sha256 = report.sha256.clone();
        if sha256.is_none() && self.policy.audit_sha256 {
            sha256 = file_sha256(path).await;
        }
        let size = match tokio::fs::metadata(path).await {
            Ok(m) => m.len(),
            Err(_) => report.size,
        };
        let shown = path.display().to_string();
        let name = path
            .file_name()
            .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
        let server = report.server.clone();
        let alert = |kind, message: String| {
            Event::Alert(Alert {
                kind,
                path: Some(path.to_path_buf()),
                server: server.clone(),
                message,
            })
        };
        let notice = |message: String| {
            Event::Notice(Notice {
                uploader: uploader.cloned(),
                path: path.to_path_buf(),
                message,
            })
        };
        let mut events = Vec::new();
        let (action, message) = match &report.verdict {
            Verdict::Clean => (Action::None, format!("ICAP scan of {shown}: clean")),
            Verdict::Infected { threats } => {
                let names = threats
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let action = act(path, &self.policy.on_infected).await;
                let done = match &action {
                    Action::Deleted => "the file was deleted".to_owned(),
                    Action::Quarantined { to } => format!("the file was moved to {}", to.display()),
                    Action::Kept => "the file was kept (policy: report only)".to_owned(),
                    Action::ActionFailed { error } => format!("REMOVING THE FILE FAILED: {error}"),
                    Action::None => String::new(),
                };
                events.push(alert(
                    AlertKind::Infected,
                    format!("Virus found in {shown}: {names}; {done}"),
                ));
                events.push(notice(format!(
                    "The file {name} contains a virus ({names}) and was not accepted"
                )));
                (action, format!("ICAP found {names} in {shown}; {done}"))
            }
            Verdict::Modified { .. } => {
                let action = act(path, &self.policy.on_modified).await;
                events.push(alert(
                    AlertKind::Modified,
                    format!(
                        "The ICAP server changed {shown} without naming a threat ({})",
                        action.label()
                    ),
                ));
                (action, format!("ICAP modified {shown}"))
            }
            Verdict::NotScanned { reason } => (
                Action::Kept,
                format!(
                    "ICAP did not scan {shown}: {}",
                    serde_json::to_string(reason).unwrap_or_default()
                ),
            ),
            Verdict::Failed { error } => {
                if self.policy.delete_on_scan_fail {
                    let action = act(path, &FileAction::Delete).await;
                    let message = match &action {
                        Action::Deleted => format!("ICAP removed {shown} due to scan fail"),
                        _ => format!("ICAP scan of {shown} failed and removing it failed too"),
                    };
                    events.push(alert(
                        AlertKind::ScanFailed,
                        format!("ICAP scan of {shown} failed: {error}; the file was removed"),
                    ));
                    events.push(notice(format!(
                        "The file {name} could not be scanned for viruses and was removed"
                    )));
                    (action, message)
                } else {
                    events.push(alert(
                        AlertKind::ScanFailed,
                        format!(
                            "ICAP scan of {shown} failed: {error}; the file was kept unscanned"
                        ),
                    ));
                    events.push(notice(format!(
                        "The file {name} could not be scanned for viruses"
                    )));
                    (
                        Action::Kept,
                        format!("ICAP scan of {shown} failed: {error}"),
                    )
                }
            }
        };
        let audit = AuditEntry {
            time: rfc3339(SystemTime::now()),
            path: path.to_path_buf(),
            size,
            sha256,
            server: report.server.clone(),
            service: report.service.clone(),
            verdict: report.verdict.label(),
            threats: report
                .verdict
                .threats()
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            action: action.label(),
            quarantined_to: match &action {
                Action::Quarantined { to } => Some(to.clone()),
                _ => None,
            },
            duration: report.duration,
            uploader: uploader.cloned(),
            message,
            error: report.verdict.error().map(ToString::to_string),
        };
        if let Some(f) = &self.audit {
            let mut line = serde_json::to_vec(&audit).expect("audit entries serialise");
            line.push(b'\n');
            let mut f = f.lock().expect("audit lock");
            if let Err(e) = f.write_all(&line) {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
        tracing::info!(path = %shown, verdict = audit.verdict, action = audit.action, "{}", audit.message);
        for e in events {
            self.client.emit(e);
        }
        self.client.emit(Event::Audit(Box::new(audit.clone())));
        Outcome {
            report,
            action,
            audit,
        }
    }
}

async fn act(path: &Path, what: &FileAction) -> Action {
    match what {
        FileAction::Keep => Action::Kept,
        FileAction::Delete => match tokio::fs::remove_file(path).await {
            Ok(()) => Action::Deleted,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Action::Deleted,
            Err(e) => Action::ActionFailed {
                error: e.to_string(),
            },
        },
        FileAction::Quarantine(dir) => match quarantine(path, dir).await {
            Ok(to) => Action::Quarantined { to },
            Err(e) => Action::ActionFailed {
                error: e.to_string(),
            },
        },
    }
}

async fn quarantine(path: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let io =
        |e: std::io::Error| Error::new(ErrorKind::Io, format!("quarantine: {e}")).with_source(e);
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let to = dir.join(format!("{stamp}-{name}"));
    if tokio::fs::rename(path, &to).await.is_err() {
        // Across file systems: copy, then remove the original.
        tokio::fs::copy(path, &to).await.map_err(io)?;
        tokio::fs::remove_file(path).await.map_err(io)?;
    }
    Ok(to)
}

async fn file_sha256(path: &Path) -> Option<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use sha2::{Digest, Sha256};
        use std::io::Read;
        let mut f = std::fs::File::open(path).ok()?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Some(crate::client::hex(h.finalize().into()))
    })
    .await
    .ok()
    .flatten()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, proleptic Gregorian).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400).cast_signed();
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_answers() {
        let at = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20.000Z");
    }
}
