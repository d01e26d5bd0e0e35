//! Text that reaches the terminal: names from files and servers escaped when they hold
//! control characters, durations in milliseconds.

use std::time::Duration;

/// Quoted and escaped, for messages that echo what the user typed.
pub(crate) fn escape(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

/// Text from a file name or a server, printed as is unless it holds a control character
/// (a line break would forge an output line, an escape sequence would drive the terminal):
/// then quoted and escaped.
pub(crate) fn shown(s: &str) -> String {
    if s.chars().any(char::is_control) {
        escape(s)
    } else {
        s.to_owned()
    }
}

/// [`shown`] for a path (lossy UTF-8).
pub(crate) fn shown_path(p: &std::path::Path) -> String {
    shown(&p.to_string_lossy())
}

/// `12.3 ms`, or `-` when not measured.
pub(crate) fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0),
    )
}
