//! What happens to an uploaded file after its scan: delete, quarantine or keep; audit
//! entries; alerts for the administrator and notices for the uploader.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::audit::{Action, AuditEntry};
use crate::client::{Client, ScanMeta};
use crate::error::{Error, ErrorKind};
use crate::events::{Alert, AlertKind, Event, HealthEvent, HealthSink, Notice};
use crate::identity::Uploader;
use crate::verdict::{ScanReport, Verdict};

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
    /// The guard's own events; the client's health changes are forwarded into it.
    events: broadcast::Sender<Event>,
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
                        Error::config(format!("audit log {}", p.display())).with_source(e)
                    })?,
            ))),
            None => None,
        };
        if let FileAction::Quarantine(dir) = &policy.on_infected {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::config(format!("quarantine folder {}", dir.display())).with_source(e)
            })?;
        }
        let (events, _) = broadcast::channel(1024);
        // Forwarded synchronously, so a server-down alert comes before the scan-failed
        // alert of the same upload. A weak sender: the client (and its clones) may outlive
        // the guard, and the guard's subscribers must see the channel close with it.
        client.forward_health(ForwardHealth(events.downgrade()));
        Ok(Guard {
            client,
            policy,
            audit,
            events,
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

    /// Events from now on: alerts (the client's server-down and server-up among them),
    /// notices and audit entries.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn emit(&self, e: Event) {
        // No subscriber is fine: events are optional for the embedding product.
        let _ = self.events.send(e);
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
    #[allow(clippy::too_many_lines)] // one verdict through the policy in order (action, quarantine or delete, audit, notice); each step may fail the next
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
                // The notice says what happened to the file: "not accepted" only when
                // the policy took it away.
                let fate = match &action {
                    Action::Deleted | Action::Quarantined { .. } => " and was not accepted",
                    Action::Kept | Action::None => "; it was kept (policy: report only)",
                    Action::ActionFailed { .. } => "; removing it failed",
                };
                events.push(notice(format!(
                    "The file {name} contains a virus ({names}){fate}"
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
                        format!("ICAP scan of {shown} failed: {error:#}; the file was removed"),
                    ));
                    events.push(notice(format!(
                        "The file {name} could not be scanned for viruses and was removed"
                    )));
                    (action, message)
                } else {
                    events.push(alert(
                        AlertKind::ScanFailed,
                        format!(
                            "ICAP scan of {shown} failed: {error:#}; the file was kept unscanned"
                        ),
                    ));
                    events.push(notice(format!(
                        "The file {name} could not be scanned for viruses"
                    )));
                    (
                        Action::Kept,
                        format!("ICAP scan of {shown} failed: {error:#}"),
                    )
                }
            }
        };
        let audit = AuditEntry {
            time: SystemTime::now(),
            path: path.to_path_buf(),
            size,
            sha256,
            server: report.server.clone(),
            service: report.service.clone(),
            verdict: report.verdict.kind(),
            threats: report
                .verdict
                .threats()
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            action: action.clone(),
            duration: report.duration,
            uploader: uploader.cloned(),
            message,
            error: report.verdict.error().map(|e| format!("{e:#}")),
        };
        if let Some(f) = &self.audit {
            let mut line = serde_json::to_vec(&audit).expect("audit entries serialise");
            line.push(b'\n');
            let mut f = f.lock().expect("audit lock");
            if let Err(e) = f.write_all(&line) {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
        tracing::info!(path = %shown, verdict = audit.verdict.label(), action = audit.action.label(), "{}", audit.message);
        for e in events {
            self.emit(e);
        }
        self.emit(Event::Audit(Box::new(audit.clone())));
        Outcome {
            report,
            action,
            audit,
        }
    }
}

/// The guard's end of its client's health changes: each becomes an [`Alert`] on the
/// guard's channel while the guard lives.
struct ForwardHealth(broadcast::WeakSender<Event>);

impl HealthSink for ForwardHealth {
    fn deliver(&self, h: &HealthEvent) {
        if let Some(tx) = self.0.upgrade() {
            // No subscriber is fine: events are optional for the embedding product.
            let _ = tx.send(Event::Alert(Alert::from(h)));
        }
    }
    fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
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
                error: format!("{e:#}"),
            },
        },
    }
}

async fn quarantine(path: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let io = |e: std::io::Error| Error::new(ErrorKind::Io, "quarantine").with_source(e);
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
        Some(format!("{:x}", h.finalize()))
    })
    .await
    .ok()
    .flatten()
}
