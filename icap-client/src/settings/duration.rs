//! Durations as the configuration file and the flags write them: seconds, or text such
//! as `"250ms"`, `"5s"`, `"2m"`, `"1h"` (parsed by `humantime`), bounded by [`MAX_TIMEOUT`].

use std::time::Duration;

use serde::Deserialize;

use crate::config::MAX_TIMEOUT;
use crate::error::{Error, escaped};

/// A duration: a number of seconds or text such as `"250ms"`, `"5s"`, `"2m"`, `"1h"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationSetting {
    /// Seconds.
    Seconds(f64),
    /// Text.
    Text(String),
}

/// Why a duration setting was refused. Each holds the setting and the value as given
/// (escaped, so that a control character cannot break the message); its text says only
/// why, the [`Error`] it is the source of names the setting and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not a number with a known unit.
    #[error("not a duration (250ms, 5s, 2m, 1h, 1h 30m or a number of seconds)")]
    Invalid {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
    /// Below zero.
    #[error("a duration cannot be negative")]
    Negative {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
    /// NaN or infinite.
    #[error("not a finite number")]
    NotFinite {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
    /// Too large for any clock (longer than about 584 billion years).
    #[error("too large (timeouts are cut to 365 days anyway)")]
    TooLarge {
        /// The setting.
        setting: String,
        /// The value, escaped.
        value: String,
    },
}

impl DurationError {
    fn into_error(self) -> Error {
        // Hyper's rule: this level names the setting and the value, the source says why.
        let (Self::Invalid { setting, value }
        | Self::Negative { setting, value }
        | Self::NotFinite { setting, value }
        | Self::TooLarge { setting, value }) = &self;
        Error::config(format!("{setting} = {value}")).with_source(self.clone())
    }
}

impl DurationSetting {
    /// The duration of the setting named `setting` (named in the error), at most
    /// [`MAX_TIMEOUT`]: longer ones are cut to it.
    pub fn get(&self, setting: &str) -> Result<Duration, Error> {
        match self {
            DurationSetting::Seconds(s) => {
                seconds(*s, setting, &s.to_string()).map_err(DurationError::into_error)
            }
            DurationSetting::Text(t) => parse_duration_of(setting, t),
        }
    }
}

fn seconds(secs: f64, setting: &str, shown: &str) -> Result<Duration, DurationError> {
    let (setting, value) = (setting.to_owned(), escaped(shown));
    if secs.is_nan() || secs.is_infinite() {
        return Err(DurationError::NotFinite { setting, value });
    }
    if secs < 0.0 {
        return Err(DurationError::Negative { setting, value });
    }
    Duration::try_from_secs_f64(secs)
        .map(|d| d.min(MAX_TIMEOUT))
        .map_err(|_| DurationError::TooLarge { setting, value })
}

/// Parses a bare number of seconds (`"1.5"`) or humantime's duration text (`"250ms"`,
/// `"5s"`, `"2m"`, `"2min"`, `"1h"`, `"1h 30m"`), at most [`MAX_TIMEOUT`] (longer ones are
/// cut to it).
pub fn parse_duration(t: &str) -> Result<Duration, Error> {
    parse_duration_of("duration", t)
}

/// [`parse_duration`] for the setting named `setting`, which the error names.
pub fn parse_duration_of(setting: &str, t: &str) -> Result<Duration, Error> {
    let trimmed = t.trim();
    let (setting_s, value) = (setting.to_owned(), escaped(t));
    // A bare number is seconds, fractions and signs included (humantime wants a unit).
    if let Ok(n) = trimmed.parse::<f64>() {
        return seconds(n, setting, t).map_err(DurationError::into_error);
    }
    if trimmed.starts_with('-') {
        return Err(DurationError::Negative {
            setting: setting_s,
            value,
        }
        .into_error());
    }
    match humantime::parse_duration(trimmed) {
        Ok(d) => Ok(d.min(MAX_TIMEOUT)),
        Err(humantime::DurationError::NumberOverflow) => Err(DurationError::TooLarge {
            setting: setting_s,
            value,
        }
        .into_error()),
        Err(_) => Err(DurationError::Invalid {
            setting: setting_s,
            value,
        }
        .into_error()),
    }
}
