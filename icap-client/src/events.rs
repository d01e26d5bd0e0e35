//! Events a product subscribes to: alerts for the administrator, notices for the uploader,
//! audit entries, and server health changes.

use std::path::PathBuf;

use serde::Serialize;

use crate::identity::Uploader;
use crate::policy::AuditEntry;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A file was infected.
    Infected,
    /// A file could not be scanned because of a failure (server down, timeout, ...).
    ScanFailed,
    /// The server changed a file without naming a threat.
    Modified,
    /// A server was marked down.
    ServerDown,
    /// A server came back.
    ServerUp,
}

/// A message for the administrator (the "Manage Alerts" page of a product).
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// The file, if about a file.
    pub path: Option<PathBuf>,
    /// The server involved.
    pub server: Option<String>,
    /// A sentence for a person.
    pub message: String,
}

/// A message for the person who uploaded (a toast in the user's portal).
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// Who uploaded.
    pub uploader: Option<Uploader>,
    /// The file.
    pub path: PathBuf,
    /// A sentence for a person.
    pub message: String,
}

/// Everything the client and the upload guard announce. Subscribe with
/// [`Client::subscribe`](crate::Client::subscribe); a slow subscriber misses old events
/// (it gets `Lagged`), it never slows scanning down.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// For the administrator.
    Alert(Alert),
    /// For the uploader.
    Notice(Notice),
    /// An audit record (also written to the audit log, if one is configured).
    Audit(Box<AuditEntry>),
}
