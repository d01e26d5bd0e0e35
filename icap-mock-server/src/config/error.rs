//! What can be wrong with a configuration, and the two readers shared by its parts.

use std::path::{Path, PathBuf};

use icap_proto::Method;

use crate::proxy::upstream::UpstreamError;
use crate::replay::ReplayError;

/// What is wrong with a configuration (a file, or a rule posted to the admin API). The
/// messages are the ones the mock has always printed; the fields say where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not TOML, or does not fit the schema (an unknown key, a wrong type).
    #[error("{message}")]
    Toml {
        /// toml's own description, with the line and a caret.
        message: String,
        /// The 1-based line of the mistake, when toml knows it.
        line: Option<usize>,
    },
    /// A file the configuration names could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file the configuration names.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An upstream URL or CA is unusable.
    #[error("{source}")]
    Upstream {
        /// The key (`service.upstream`, `service.upstream_ca`, ...).
        key: &'static str,
        /// What is wrong with it.
        source: UpstreamError,
    },
    /// A `recorded:DIR` dialect names a directory that is not a recording.
    #[error("{source}")]
    Replay {
        /// The key (`rule.then.dialect`).
        key: &'static str,
        /// Why the recording cannot be loaded.
        source: ReplayError,
    },
    /// A key has a value the mock does not understand.
    #[error("{message}")]
    Invalid {
        /// The key, dotted (`service.methods`, `rule.then.verdict`, `tls`, ...).
        key: &'static str,
        /// What is wrong with the value.
        message: String,
    },
}

impl ConfigError {
    /// The key the error is about, when there is one.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            ConfigError::Upstream { key, .. }
            | ConfigError::Replay { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Toml { .. } | ConfigError::Read { .. } => None,
        }
    }

    pub(super) fn invalid(key: &'static str) -> impl FnOnce(String) -> ConfigError {
        move |message| ConfigError::Invalid { key, message }
    }

    pub(super) fn upstream(key: &'static str) -> impl FnOnce(UpstreamError) -> ConfigError {
        move |source| ConfigError::Upstream { key, source }
    }
}

/// Reads a file for the configuration, naming it in the error.
pub(super) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn parse_method(key: &'static str, s: &str) -> Result<Method, ConfigError> {
    Method::from_bytes(s.trim().to_ascii_uppercase().as_bytes()).ok_or_else(|| {
        ConfigError::Invalid {
            key,
            message: format!("unknown ICAP method {s:?}"),
        }
    })
}
