//! Events a product subscribes to: server health changes (the [`Client`](crate::Client)'s
//! own channel) and, from the [`Guard`](crate::Guard), alerts for the administrator,
//! notices for the uploader and audit entries, with the health changes forwarded as alerts.

use std::path::PathBuf;

use serde::Serialize;

use crate::audit::AuditEntry;
use crate::identity::Uploader;

/// A server's health changed: what a bare [`Client`](crate::Client) announces on
/// [`Client::subscribe`](crate::Client::subscribe). A [`Guard`](crate::Guard) forwards each
/// as an [`Alert`] of kind [`AlertKind::ServerDown`] or [`AlertKind::ServerUp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "health", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthEvent {
    /// Enough failures within the health window: scans skip the server until its revival
    /// delay has passed and an `OPTIONS` probe succeeds.
    Down {
        /// The server URL.
        server: String,
        /// A sentence for a person, naming the last failure.
        message: String,
    },
    /// A server that was down answered again (a probe or a scan succeeded).
    Up {
        /// The server URL.
        server: String,
        /// A sentence for a person.
        message: String,
    },
}

impl HealthEvent {
    /// The server URL the change is about.
    pub fn server(&self) -> &str {
        match self {
            HealthEvent::Down { server, .. } | HealthEvent::Up { server, .. } => server,
        }
    }
    /// The sentence for a person.
    pub fn message(&self) -> &str {
        match self {
            HealthEvent::Down { message, .. } | HealthEvent::Up { message, .. } => message,
        }
    }
}

impl From<&HealthEvent> for Alert {
    fn from(h: &HealthEvent) -> Self {
        let kind = match h {
            HealthEvent::Down { .. } => AlertKind::ServerDown,
            HealthEvent::Up { .. } => AlertKind::ServerUp,
        };
        Alert {
            kind,
            path: None,
            server: Some(h.server().to_owned()),
            message: h.message().to_owned(),
        }
    }
}

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

/// Everything the upload guard announces, its client's health changes included. Subscribe
/// with [`Guard::subscribe`](crate::Guard::subscribe); a slow subscriber misses old events
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
