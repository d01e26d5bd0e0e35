//! The one error type of the client, with kinds a caller can act on.

use std::fmt;
use std::sync::Arc;

/// Which part of a transaction ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake.
    TlsHandshake,
    /// Waiting for `100 Continue` after a preview.
    Continue,
    /// Sending the request: the server stopped reading.
    Send,
    /// Waiting for (more of) the response: the server went quiet.
    Response,
    /// The whole-scan deadline.
    Deadline,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Continue => "waiting for 100 Continue",
            Phase::Send => "sending the request",
            Phase::Response => "waiting for the response",
            Phase::Deadline => "scan deadline",
        })
    }
}

/// What went wrong with a certificate, for a diagnosis a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TlsProblem {
    /// The server's certificate chain does not lead to a trusted CA.
    UnknownIssuer,
    /// The certificate is not valid for the host name (or SNI override) used.
    NameMismatch,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotValidYet,
    /// The server asked for a client certificate and rejected ours (or we sent none).
    ClientCertRejected,
    /// The server refused the handshake (a `handshake_failure` alert while no client
    /// certificate was configured): no protocol version or cipher suite in common, or a
    /// server name it does not serve.
    Refused,
    /// Anything else (protocol versions, ciphers, a plain-TCP server on a TLS port...).
    Other,
}

/// The kind of an [`Error`]: what a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The TCP connection could not be opened (refused, unreachable, bind failed).
    Connect,
    /// The TLS handshake failed.
    Tls(TlsProblem),
    /// A timeout fired.
    Timeout(Phase),
    /// The server broke ICAP framing or sent something the request does not allow.
    Protocol,
    /// The server answered with a status the client cannot use (404, 405, 500, 503, ...).
    Status(u16),
    /// The server closed the connection (or reset it) before the response was complete.
    Closed,
    /// Every configured server is marked down; nothing was sent.
    Unavailable,
    /// Reading the local file or reader failed.
    Io,
    /// The configuration or a value given by the caller is invalid.
    Config,
    /// Something the server sent back is larger than the configured cap (an adapted body
    /// past `max_adapted_body`). Not a protocol error: the server may be right, we chose
    /// not to read that much.
    TooLarge,
    /// The file (or reader) did not hold what the scan announced: it ended before its
    /// declared size, went on past it, or changed size or modification time while it was
    /// being sent. Nothing was said about these bytes: the terminal chunk was not sent.
    Source,
}

/// An error of the client. Cheap to clone (the source is shared), so a verdict carrying it
/// can be broadcast to several subscribers.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    pub(crate) fn timeout(phase: Phase) -> Self {
        Error::new(ErrorKind::Timeout(phase), format!("timeout: {phase}"))
    }

    pub(crate) fn closed(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Closed, message)
    }

    /// Maps an I/O error on the ICAP socket: resets and EOFs are `Closed`, the rest too
    /// (the socket is gone either way), keeping the source.
    /// A TLS alert after the handshake (a rejected client certificate in TLS 1.3) is a
    /// TLS error.
    pub(crate) fn socket(e: std::io::Error, what: &str) -> Self {
        if e.get_ref()
            .is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>)
        {
            return tls_error(e, None);
        }
        Error::closed(what).with_source(e)
    }

    /// What kind of failure this is, the part a caller can act on (retry, fix the
    /// configuration, report the server).
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The connection could not be opened.
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }
    /// The TLS handshake failed.
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, ErrorKind::Tls(_))
    }
    /// What was wrong with TLS, if this is a TLS error.
    pub fn tls_problem(&self) -> Option<TlsProblem> {
        match self.kind {
            ErrorKind::Tls(p) => Some(p),
            _ => None,
        }
    }
    /// A timeout fired.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout(_))
    }
    /// Which phase timed out, if this is a timeout.
    pub fn timeout_phase(&self) -> Option<Phase> {
        match self.kind {
            ErrorKind::Timeout(p) => Some(p),
            _ => None,
        }
    }
    /// The server broke the protocol.
    pub fn is_protocol(&self) -> bool {
        self.kind == ErrorKind::Protocol
    }
    /// The ICAP status the server answered with, if that is the error.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Status(s) => Some(s),
            _ => None,
        }
    }
    /// The server closed or reset the connection.
    pub fn is_closed(&self) -> bool {
        self.kind == ErrorKind::Closed
    }
    /// Every server is marked down.
    pub fn is_unavailable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }
    /// The local file or reader could not be read.
    pub fn is_io(&self) -> bool {
        self.kind == ErrorKind::Io
    }
    /// Invalid configuration or caller input.
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }
    /// Something the server sent was larger than a configured cap.
    pub fn is_too_large(&self) -> bool {
        self.kind == ErrorKind::TooLarge
    }
    /// The file changed, or a reader ended early or went on, while it was being sent.
    pub fn is_source(&self) -> bool {
        self.kind == ErrorKind::Source
    }

    /// Whether this error says something about the server's health (and so counts towards
    /// marking it down): everything but local I/O and configuration errors.
    pub fn is_server_failure(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::Io | ErrorKind::Config | ErrorKind::Unavailable | ErrorKind::Source
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

/// `{}` prints this error's own level only, as hyper does: the cause is in
/// [`source()`](std::error::Error::source), so that a chain printer (anyhow's `{:#}`, the
/// CLI) shows each cause once. `{:#}` prints the whole chain, `a: b: c`, for a log line or
/// a JSON message that must stand alone.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if f.alternate() {
            let mut next = std::error::Error::source(self);
            while let Some(e) = next {
                write!(f, ": {e}")?;
                next = e.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Error", 2)?;
        let kind = match &self.kind {
            ErrorKind::Connect => "connect".to_owned(),
            ErrorKind::Tls(_) => "tls".to_owned(),
            ErrorKind::Timeout(_) => "timeout".to_owned(),
            ErrorKind::Protocol => "protocol".to_owned(),
            ErrorKind::Status(c) => format!("status_{c}"),
            ErrorKind::Closed => "closed".to_owned(),
            ErrorKind::Unavailable => "unavailable".to_owned(),
            ErrorKind::Io => "io".to_owned(),
            ErrorKind::Config => "config".to_owned(),
            ErrorKind::TooLarge => "too_large".to_owned(),
            ErrorKind::Source => "source".to_owned(),
        };
        st.serialize_field("kind", &kind)?;
        st.serialize_field("message", &format!("{self:#}"))?;
        st.end()
    }
}

/// `s` quoted and escaped as Rust escapes a string (`\r`, `\n`, `\u{1b}`, ...), for error
/// messages that echo user or peer input: whatever it holds, the message stays on one line
/// and shows what was really given.
pub(crate) fn escaped(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

/// A path for an error message: quoted and escaped as [`escaped`] does.
pub(crate) fn escaped_path(p: &std::path::Path) -> String {
    escaped(&p.to_string_lossy())
}

/// Classifies a TLS handshake failure from the rustls error inside an I/O error.
/// `client_cert` says whether a client certificate was configured (`None`: not known here);
/// only then is a `handshake_failure` alert read as a rejection of that certificate.
pub(crate) fn tls_error(e: std::io::Error, client_cert: Option<bool>) -> Error {
    use rustls::{AlertDescription, CertificateError};
    let problem = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsProblem::UnknownIssuer
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsProblem::NameMismatch
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsProblem::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsProblem::NotValidYet
            }
            _ => TlsProblem::Other,
        },
        Some(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown,
        )) => TlsProblem::ClientCertRejected,
        Some(rustls::Error::AlertReceived(AlertDescription::HandshakeFailure)) => {
            if client_cert == Some(true) {
                TlsProblem::ClientCertRejected
            } else {
                TlsProblem::Refused
            }
        }
        _ => TlsProblem::Other,
    };
    let what = match problem {
        TlsProblem::UnknownIssuer => "certificate not trusted (unknown issuer)",
        TlsProblem::NameMismatch => "certificate not valid for this host name",
        TlsProblem::Expired => "certificate expired",
        TlsProblem::NotValidYet => "certificate not valid yet",
        TlsProblem::ClientCertRejected => "the server rejected the client certificate",
        TlsProblem::Refused if client_cert.is_none() => {
            "the server refused the TLS handshake (or the client certificate)"
        }
        TlsProblem::Refused => "the server refused the TLS handshake",
        TlsProblem::Other => "TLS handshake failed",
    };
    Error::new(ErrorKind::Tls(problem), what).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Error::config("CA file \"/x\"").with_source(io);
        assert_eq!(e.to_string(), "CA file \"/x\"");
        assert_eq!(format!("{e:#}"), "CA file \"/x\": gone");
        assert_eq!(
            std::error::Error::source(&e).map(ToString::to_string),
            Some("gone".into())
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["message"], "CA file \"/x\": gone");
        // anyhow's chain printer, as the CLI uses it.
        assert_eq!(anyhow_like(&e), "CA file \"/x\": gone");
    }

    /// The chain as anyhow's `{:#}` prints it: each level's `{}` joined by ": ".
    fn anyhow_like(e: &Error) -> String {
        let mut s = e.to_string();
        let mut next = std::error::Error::source(e);
        while let Some(c) = next {
            s.push_str(": ");
            s.push_str(&c.to_string());
            next = c.source();
        }
        s
    }

    #[test]
    fn escaped_keeps_one_line() {
        assert_eq!(escaped("avscan"), "\"avscan\"");
        assert_eq!(escaped("a\r\nb\u{1b}\""), r#""a\r\nb\u{1b}\"""#);
        assert!(!escaped("x\r\ny").contains(['\r', '\n']));
    }

    fn alert(a: rustls::AlertDescription) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(a),
        )
    }

    #[test]
    fn handshake_failure_blames_the_certificate_only_when_one_was_sent() {
        use rustls::AlertDescription::{CertificateRequired, HandshakeFailure};
        let e = tls_error(alert(HandshakeFailure), Some(false));
        assert_eq!(e.tls_problem(), Some(TlsProblem::Refused));
        assert_eq!(e.to_string(), "the server refused the TLS handshake");
        assert!(
            format!("{e:#}").starts_with("the server refused the TLS handshake: "),
            "{e:#}"
        );
        let e = tls_error(alert(HandshakeFailure), Some(true));
        assert_eq!(e.tls_problem(), Some(TlsProblem::ClientCertRejected));
        assert!(
            e.to_string().contains("rejected the client certificate"),
            "{e:#}"
        );
        let e = tls_error(alert(HandshakeFailure), None);
        assert_eq!(e.tls_problem(), Some(TlsProblem::Refused));
        let e = tls_error(alert(CertificateRequired), Some(false));
        assert_eq!(e.tls_problem(), Some(TlsProblem::ClientCertRejected));
    }
}
